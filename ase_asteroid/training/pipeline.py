"""``asteroid train``: run a TrainConfig, writing a checkpoint after each stage with its
parent and metrics in the checkpoint's history, and the stage's per-epoch metrics
(learning rate, train loss, validation force and energy MAE) to ``STAGE_epochs.json`` and
``STAGE_epochs.csv``. With ``resume=True`` finished stages are loaded from their
checkpoints and an interrupted stage continues from its ``STAGE.state.safetensors``."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ..data import Dataset, read_dataset
from ..data.tools import split_indices
from ..delta import subtract_baseline
from ..refinement.prior import prior_labelled
from ..refinement.radius import mean_spectrum
from ..models import ForceField, config_from_dict
from .config import DataSpec, TrainConfig
from .loop import FitConfig, errors, fit
from .stages import bias_weights, force_bias, new_model, unlabelled, weighted


@dataclass(frozen=True)
class Splits:
    """The data of a run: accurate train/val, the cheap (or unlabelled) train/val, and the
    training sets of further fidelities (multi_head)."""

    train: Dataset
    val: Dataset
    cheap: Dataset | None = None
    cheap_val: Dataset | None = None
    more: tuple[Dataset, ...] = ()


def _split(spec: DataSpec) -> tuple[Dataset, Dataset]:
    data = read_dataset(spec.path, labels=spec.labels, energy_unit=spec.energy_unit, force_unit=spec.force_unit)
    train = spec.train if spec.train >= 0 else len(data) - spec.val
    start = train if spec.val_start is None else spec.val_start
    if start < train or start + spec.val > len(data):
        raise ValueError(f"{spec.path}: validation perm[{start}:{start + spec.val}] must follow the training set "
                         f"perm[:{train}] and fit in its {len(data)} configurations")
    train_part, _, val_part = split_indices(len(data), [train, start - train, spec.val], spec.seed)
    return data.subset(train_part), data.subset(val_part)


class _Stages:
    """Runs one stage at a time on fit(), writing its checkpoint (with its parent), its
    per-epoch log, and its loop state for resuming."""

    def __init__(self, out: Path, resume: bool, progress: bool, prior_weight: float = 0.1) -> None:
        self.out, self.resume, self.progress, self.prior_weight = out, resume, progress, prior_weight
        self.parent, self.paths = None, {}
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, model: ForceField, data: Dataset, val: Dataset, config: FitConfig) -> ForceField:
        path, state = self.out / f"{name}.ckpt", self.out / f"{name}.state.safetensors"
        if self.resume and path.exists():
            model = _finished_stage(name, path, data, config)
        else:
            if not self.resume:
                state.unlink(missing_ok=True)
            start = time.perf_counter()
            train = data
            if model.extras.prior is not None and config.objective == "labels":  # joint training with the prior head
                train = data + prior_labelled(data, model.extras.prior, self.prior_weight)
            model, record = fit(model, train, val, config, self.progress, state_path=state)
            model.extras.graph_spectrum = {"cutoff_A": model.cutoff, "spectrum": mean_spectrum(data, model.cutoff)}
            model.extras.history[-1].update(stage=name, parent=self.parent, seconds=round(time.perf_counter() - start, 1))
            _write_log(self.out / f"{name}_epochs", record["history"])
            save_checkpoint(model, path, data_hashes={name: data.content_hash()})
        self.paths[name], self.parent = path, path.name
        return model


def _finished_stage(name: str, path: Path, data: Dataset, config: FitConfig) -> ForceField:
    """The model of a finished stage, for --resume; ValueError if the data it was trained on
    (its stored content hash) or its training config differ from this run's."""
    meta = read_metadata(path)
    stored, now = meta.get("data_hashes", {}).get(name), data.content_hash()
    if stored is not None and stored != now:
        raise ValueError(f"{path}: stage {name!r} was trained on different data (content hash {stored[:12]}, "
                         f"now {now[:12]}); train without --resume, or into another --out")
    saved = (meta.get("history") or [{}])[-1].get("config")
    wanted = json.loads(json.dumps(asdict(config)))
    if saved is not None and saved != wanted:
        changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        raise ValueError(f"{path}: stage {name!r} was trained with a different config ({', '.join(changed)} "
                         f"changed); train without --resume, or into another --out")
    return load_checkpoint(path)


def _write_log(stem: Path, history: list[dict]) -> None:
    stem.parent.joinpath(stem.name + ".json").write_text(json.dumps(history, indent=1))  # stems may hold dots (γ)
    with open(stem.parent / (stem.name + ".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def run_stages(config: TrainConfig, splits: Splits, progress: bool = True, resume: bool = False
               ) -> tuple[ForceField, dict[str, Path]]:
    """The stages of `config.method` (see config.METHODS), a checkpoint per stage in
    `config.out`; the only place they are chained. Returns the final model and
    {stage: checkpoint path}. With several γ, each is pre-trained and fine-tuned and the
    one with the lowest validation force MAE after fine-tuning is returned (and recorded
    in ``gamma_search.json``); its checkpoint is also under "fine_tuned"."""
    stages = _Stages(Path(config.out), resume, progress, config.prior_weight)
    everything = [splits.train, *([splits.cheap] if splits.cheap else []), *splits.more]
    species = sorted(set().union(*(d.species for d in everything)))
    num_heads = len(dict.fromkeys(f for d in everything for f in d.fidelities)) if config.method == "multi_head" else 1
    model_config = config_from_dict({"species": species, "num_heads": num_heads + bool(config.prior), **config.model})
    seed = config.seed
    scratch, pretrain, finetune = (config.fit_config(kind) for kind in ("scratch", "pretrain", "finetune"))
    prior = _prior(config.prior, species, splits.cheap or splits.train) if config.prior else None

    def fresh(with_cheap: bool = True, seed_offset: int = 0, accurate: Dataset = splits.train) -> ForceField:
        cheap = [splits.cheap, *splits.more] if with_cheap and splits.cheap else None
        return new_model(model_config, accurate, cheap, seed + seed_offset, config.torch_dtype, prior)

    if config.method == "standard":
        return stages.run("standard", fresh(False), splits.train, splits.val, scratch), stages.paths
    if config.method == "multi_head":
        model = fresh()
        data = Dataset([c.with_(weight=c.weight * config.head_loss_weights.get(c.fidelity, 1.0))
                        for d in [splits.train] * config.accurate_repeats + everything[1:] for c in d])
        return stages.run("multi_head", model, data, splits.val, scratch), stages.paths
    if config.method == "delta":
        train, val = (subtract_baseline(d, config.delta_baseline, progress)[0] for d in (splits.train, splits.val))
        model = fresh(False, accurate=train)
        model.extras.delta_baseline = config.delta_baseline
        return stages.run("delta", model, train, val, scratch), stages.paths
    if config.method == "score_matching":
        sm_fit = replace(pretrain, objective="score_matching", temperature_K=config.temperature_K)
        pretrained = stages.run("score_matching", fresh(False, 1), unlabelled(splits.cheap), splits.val, sm_fit)
        return stages.run("fine_tuned", pretrained, splits.train, splits.val, finetune), stages.paths
    if config.method != "asteroid":  # pretrain_finetune (γ = ∞) or cheap_only
        stages.parent = None
        final = stages.run("pretrained", fresh(seed_offset=1), splits.cheap, splits.cheap_val, pretrain)
        if config.method == "pretrain_finetune":
            final = stages.run("fine_tuned", final, splits.train, splits.val, finetune)
        return final, stages.paths
    first = stages.run("bias_identification", fresh(), splits.train, splits.val, scratch)
    bias = force_bias(first, splits.cheap)
    candidates = []
    for gamma in config.gammas:
        suffix = f"_gamma{gamma:g}" if len(config.gammas) > 1 else ""
        stages.parent = None  # pre-training starts from scratch
        pretrained = stages.run(f"pretrained{suffix}", fresh(seed_offset=1), weighted(splits.cheap, bias_weights(bias, gamma)),
                                splits.cheap_val, pretrain)
        tuned = stages.run(f"fine_tuned{suffix}", pretrained, splits.train, splits.val, finetune)
        candidates.append((errors(tuned, splits.val)["force_mae_eV_per_A"], gamma, tuned, f"fine_tuned{suffix}"))
    best = min(candidates, key=lambda c: c[0])
    (Path(config.out) / "gamma_search.json").write_text(json.dumps(
        {"chosen_gamma_eV_per_A": best[1], "val_force_mae_eV_per_A": {f"{g:g}": e for e, g, _, _ in candidates},
         "bias_quartiles_eV_per_A": np.percentile(bias, [25, 50, 75]).tolist()}, indent=1))
    stages.paths["fine_tuned"] = stages.paths[best[3]]
    return best[2], stages.paths


def _prior(kind: str, species, data: Dataset):
    """The LJ prior of a run: UFF parameters ("lj-uff"), or fitted to `data`'s forces ("lj")."""
    from ..models.prior import LJPrior
    prior = LJPrior(species)
    if kind == "lj":
        prior.fit(data)
    return prior


def splits_from_config(config: TrainConfig) -> Splits:
    train, val = _split(config.accurate)
    cheap, cheap_val = _split(config.cheap) if config.cheap else (None, None)
    more = tuple(_split(spec)[0] for spec in config.more_cheap)
    if cheap is not None and config.cost_ratio:
        affordable = int((config.accurate_budget - len(train)) * config.cost_ratio)
        if affordable < 1:
            raise ValueError(f"cost_ratio/accurate_budget: {config.accurate_budget} accurate labels minus the "
                             f"{len(train)} used leave nothing to spend on cheap labels")
        cheap = cheap.subset(range(min(affordable, len(cheap))))
    return Splits(train, val, cheap, cheap_val, more)


#: What a training run writes into its output folder (and all that overwrite removes).
RESULT_PATTERNS = ("*.ckpt", "*.state.safetensors", "*_epochs.csv", "*_epochs.json", "gamma_search.json")


def earlier_results(out) -> list[Path]:
    """The files of an earlier training run in the folder `out`."""
    return sorted({p for pattern in RESULT_PATTERNS for p in Path(out).glob(pattern)})


def prepare_out_folder(out, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse (FileExistsError) an output folder that holds an earlier run's results unless
    `resume` (continue it) or `overwrite` (its result files are removed first; nothing else)."""
    if resume and overwrite:
        raise ValueError("resume continues the earlier run and overwrite discards it: choose one")
    found = earlier_results(out)
    if not found or resume:
        return
    if not overwrite:
        names = ", ".join(p.name for p in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise FileExistsError(f"{out} holds results of an earlier run ({names}): continue it with --resume "
                              "or replace them with --overwrite")
    for path in found:
        path.unlink()


def run_training(config: TrainConfig, progress: bool = True, resume: bool = False,
                 overwrite: bool = False) -> dict:
    """Train as configured; returns {stage: checkpoint path}, the final checkpoint
    ("final": the chosen fine-tuned one, else the last stage's) and the data sizes. The
    test set (config.test) is evaluated by the caller, through the Predictor. An output
    folder with earlier results needs `resume` or `overwrite` (prepare_out_folder)."""
    prepare_out_folder(config.out, resume, overwrite)
    splits = splits_from_config(config)
    _, paths = run_stages(config, splits, progress, resume)
    final = paths.get("fine_tuned") or list(paths.values())[-1]
    return {"checkpoints": {k: str(v) for k, v in paths.items()}, "final": str(final),
            "data": {"accurate": len(splits.train), "cheap": len(splits.cheap) if splits.cheap else 0}}
