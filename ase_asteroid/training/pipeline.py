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
from ..refinement.radius import training_spectra
from ..refinement.ttt import store_prior_reference
from ..models import ForceField
from .config import DataSpec, TrainConfig
from .loop import FitConfig, errors, fit
from .stages import bias_spread, bias_weights, force_bias, new_model, unlabelled, weighted


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
        self.parent, self.paths, self.prior_labels = None, {}, {}  # prior_labels: a method prior's, by geometry
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
                train = data + prior_labelled(data, model.extras.prior, self.prior_weight, cache=self.prior_labels)
            model, record = fit(model, train, val, config, self.progress, state_path=state)
            if model.extras.prior is not None and config.objective == "labels":  # TTT's gate reference
                store_prior_reference(model, data, cache=self.prior_labels)
            model.extras.graph_spectrum = training_spectra(data, model.cutoff)
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


@dataclass(frozen=True)
class Fresh:
    """Where a stage that starts from a new model gets it: weights from the run's seed +
    `seed_offset`; with `cheap_references` the model also carries the reference energies of
    the cheap fidelities (it trains on them, or predicts on them)."""

    seed_offset: int = 0
    cheap_references: bool = True


@dataclass(frozen=True)
class Stage:
    """One stage of a method: `name` (its checkpoint, ``NAME.ckpt``), `recipe` (the stage
    kind of recipes.KINDS: scratch | joint | pretrain | finetune), `data` (a key of STAGE_DATA: its
    training and validation sets), `start` (Fresh: a new model, no parent; None: the previous
    stage's model, whose checkpoint becomes the parent), `objective` (replaces the recipe's,
    with the config's temperature_K) and `per_gamma` (repeated for every γ of the config,
    the γ search)."""

    name: str
    recipe: str
    data: str
    start: Fresh | None = None
    objective: str | None = None
    per_gamma: bool = False


_PRETRAIN = Stage("pretrained", "pretrain", "cheap", Fresh(seed_offset=1))
_FINETUNE = Stage("fine_tuned", "finetune", "accurate")

#: method (config.METHODS) -> its stages, in order: the only place they are chained.
STAGES: dict[str, tuple[Stage, ...]] = {
    "standard": (Stage("standard", "scratch", "accurate", Fresh(cheap_references=False)),),
    "multi_head": (Stage("multi_head", "joint", "all_fidelities", Fresh()),),
    "delta": (Stage("delta", "scratch", "minus_baseline", Fresh(cheap_references=False)),),
    "cheap_only": (_PRETRAIN,),
    "pretrain_finetune": (_PRETRAIN, _FINETUNE),
    "score_matching": (Stage("score_matching", "pretrain", "unlabelled_cheap", Fresh(1, cheap_references=False),
                             objective="score_matching"), _FINETUNE),
    "asteroid": (Stage("bias_identification", "scratch", "accurate", Fresh()),
                 replace(_PRETRAIN, data="bias_weighted_cheap", per_gamma=True), replace(_FINETUNE, per_gamma=True)),
}


@dataclass(frozen=True)
class StageData:
    """What a stage trains and validates on, and `accurate`: the data a fresh model's
    accurate-fidelity reference energies are fitted to; `baseline`: the Δ baseline
    subtracted from the labels, which a fresh model records (it adds it at inference)."""

    train: Dataset
    val: Dataset
    accurate: Dataset
    baseline: str | None = None


class _Run:
    """One run of a method's stages: the data, the model config, the LJ prior, and the
    models of finished stages (the bias of the cheap labels comes from one)."""

    def __init__(self, config: TrainConfig, splits: Splits, progress: bool, resume: bool) -> None:
        self.config, self.splits, self.progress = config, splits, progress
        self.stages = _Stages(Path(config.out), resume, progress, config.prior_weight)
        self.everything = [splits.train, *([splits.cheap] if splits.cheap else []), *splits.more]
        self.model_config = config.model_for(self.everything)
        self.prior = _prior(config.prior, self.model_config.species, splits.cheap or splits.train) \
            if config.prior else None
        self.models: dict[str, ForceField] = {}
        self._bias = None

    def stage(self, stage: Stage, previous: ForceField | None, gamma: float | None = None) -> ForceField:
        """Run `stage` (from `previous`, or a fresh model) and return its model."""
        data = STAGE_DATA[stage.data](self, gamma)
        fit_config = self.config.fit_config(stage.recipe)
        if stage.objective:
            fit_config = replace(fit_config, objective=stage.objective, temperature_K=self.config.temperature_K)
        model = previous
        if stage.start is not None:
            model, self.stages.parent = self.fresh(stage.start, data), None
        self.models[stage.name] = self.stages.run(stage.name, model, data.train, data.val, fit_config)
        return self.models[stage.name]

    def fresh(self, start: Fresh, data: StageData) -> ForceField:
        cheap = [self.splits.cheap, *self.splits.more] if start.cheap_references and self.splits.cheap else None
        model = new_model(self.model_config, data.accurate, cheap, self.config.seed + start.seed_offset,
                          self.config.torch_dtype, self.prior, self.stages.prior_labels)
        if data.baseline:
            model.extras.delta_baseline = data.baseline
        return model

    def gammas(self) -> tuple[float, ...]:
        """The γ grid, eV/Å: the config's, or its fractions of B's interquartile range."""
        fractions = self.config.gamma_iqr_fractions
        if not fractions:
            return self.config.gammas
        q1, q3 = np.percentile(self.bias(), [25, 75])
        return tuple(float(f"{f * (q3 - q1):.4g}") for f in fractions)

    def bias(self) -> np.ndarray:
        """B(x) of every cheap configuration, from the bias-identification stage's model."""
        if self._bias is None:
            self._bias = force_bias(self.models["bias_identification"], self.splits.cheap)
        return self._bias


def _accurate(run: _Run, gamma) -> StageData:
    return StageData(run.splits.train, run.splits.val, run.splits.train)


def _cheap(run: _Run, gamma) -> StageData:
    return StageData(run.splits.cheap, run.splits.cheap_val, run.splits.train)


def _bias_weighted_cheap(run: _Run, gamma: float) -> StageData:
    cheap = weighted(run.splits.cheap, bias_weights(run.bias(), gamma))
    return StageData(cheap, run.splits.cheap_val, run.splits.train)


def _unlabelled_cheap(run: _Run, gamma) -> StageData:
    """The cheap geometries without labels; model selection on the accurate validation set."""
    return StageData(unlabelled(run.splits.cheap), run.splits.val, run.splits.train)


def _all_fidelities(run: _Run, gamma) -> StageData:
    """Every fidelity at once (the accurate data accurate_repeats times), each configuration's
    loss weighted by head_loss_weights of its fidelity."""
    config, splits = run.config, run.splits
    data = Dataset([c.with_(weight=c.weight * config.head_loss_weights.get(c.fidelity, 1.0))
                    for d in [splits.train] * config.accurate_repeats + run.everything[1:] for c in d])
    return StageData(data, splits.val, splits.train)


def _minus_baseline(run: _Run, gamma) -> StageData:
    """The accurate labels minus the Δ baseline's."""
    baseline = run.config.delta_baseline
    train, val = (subtract_baseline(d, baseline, run.progress)[0] for d in (run.splits.train, run.splits.val))
    return StageData(train, val, train, baseline)


#: Stage.data -> its training and validation sets in a run (the γ of the γ search, if any).
STAGE_DATA = {"accurate": _accurate, "cheap": _cheap, "bias_weighted_cheap": _bias_weighted_cheap,
              "unlabelled_cheap": _unlabelled_cheap, "all_fidelities": _all_fidelities,
              "minus_baseline": _minus_baseline}


def run_stages(config: TrainConfig, splits: Splits, progress: bool = True, resume: bool = False
               ) -> tuple[ForceField, dict[str, Path]]:
    """The stages of `config.method` (STAGES), a checkpoint per stage in `config.out`.
    Returns the final model and {stage: checkpoint path}. The stages marked per_gamma are
    run once per γ, and the model with the lowest validation force MAE after the last of
    them is returned (see _gamma_search); its checkpoint is also under that stage's name."""
    run, model = _Run(config, splits, progress, resume), None
    for stage in STAGES[config.method]:
        if not stage.per_gamma:
            model = run.stage(stage, model)
    searched = [stage for stage in STAGES[config.method] if stage.per_gamma]
    if searched:
        model = _gamma_search(run, searched, model)
    return model, run.stages.paths


def _gamma_search(run: _Run, stages: list[Stage], start: ForceField | None) -> ForceField:
    """`stages` once per γ (names suffixed ``_gammaG`` when there are several), each from
    `start`; returns the model with the lowest validation force MAE after the last stage,
    records the choice in ``gamma_search.json`` and files its checkpoint under the last
    stage's plain name."""
    gammas, candidates = run.gammas(), []
    for gamma in gammas:
        suffix = f"_gamma{gamma:g}" if len(gammas) > 1 else ""
        model = start
        for stage in stages:
            model = run.stage(replace(stage, name=stage.name + suffix), model, gamma)
        candidates.append((errors(model, run.splits.val)["force_mae_eV_per_A"], gamma, model, stages[-1].name + suffix))
    best = min(candidates, key=lambda c: c[0])
    (Path(run.config.out) / "gamma_search.json").write_text(json.dumps(
        {"chosen_gamma_eV_per_A": best[1], "val_force_mae_eV_per_A": {f"{g:g}": e for e, g, _, _ in candidates},
         **bias_spread(run.bias()),
         "gamma_iqr_fractions": list(run.config.gamma_iqr_fractions)}, indent=1))
    run.stages.paths[stages[-1].name] = run.stages.paths[best[3]]
    return best[2]


def _prior(kind: str, species, data: Dataset):
    """The prior of a run: LJ with UFF parameters ("lj-uff") or fitted to `data`'s forces
    ("lj"), or a labelling method ("gfn2-xtb", "gaff2", ...), whose labeller is checked on
    `data`'s first configuration now (a missing program or element fails before training)."""
    from ..models.prior import LJPrior, MethodPrior
    if kind in ("lj", "lj-uff"):
        prior = LJPrior(species)
        if kind == "lj":
            prior.fit(data)
        return prior
    from ..labels import get_labeler
    get_labeler(kind).prepare(data[0].to_atoms())
    return MethodPrior(kind)


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
