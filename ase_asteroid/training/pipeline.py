"""``asteroid train``: run a TrainConfig, writing a checkpoint after each stage with its
parent and metrics in the checkpoint's history, and the stage's per-epoch metrics
(train loss, validation force and energy MAE) to ``STAGE_epochs.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..checkpoint import save_checkpoint
from ..data import Dataset, read_dataset
from ..evaluation import evaluate
from ..models import ForceField, config_from_dict
from .config import DataSpec, TrainConfig
from .loop import FitConfig, fit
from .stages import bias_weights, force_bias, new_model, weighted


def load_data(path: str) -> Dataset:
    if path.startswith("demo:"):
        from ..demo_data import load_demo
        return load_demo(path.removeprefix("demo:"))
    return read_dataset(path)


def _split(spec: DataSpec) -> tuple[Dataset, Dataset]:
    data = load_data(spec.path)
    train = spec.train if spec.train >= 0 else len(data) - spec.val
    start = train if spec.val_start is None else spec.val_start
    if start < train or start + spec.val > len(data):
        raise ValueError(f"{spec.path}: validation perm[{start}:{start + spec.val}] must follow the training set "
                         f"perm[:{train}] and fit in its {len(data)} configurations")
    perm = np.random.default_rng(spec.seed).permutation(len(data))
    return data.subset(perm[:train]), data.subset(perm[start:start + spec.val])


class _Recorder:
    """Writes each stage's checkpoint with its parent and data hashes."""

    def __init__(self, out: Path) -> None:
        self.out, self.parent = out, None
        out.mkdir(parents=True, exist_ok=True)

    def save(self, model, stage: str, train: Dataset, seconds: float, epochs: list[dict]) -> Path:
        model.history[-1].update(stage=stage, parent=self.parent, seconds=round(seconds, 1))
        (self.out / f"{stage}_epochs.json").write_text(json.dumps(epochs, indent=1))
        path = save_checkpoint(model, self.out / f"{stage}.ckpt", data_hashes={stage: train.content_hash()})
        self.parent = path.name
        return path


def run_stages(method: str, model_config, train: Dataset, val: Dataset, cheap: Dataset | None,
               cheap_val: Dataset | None, gamma_eV_per_A: float, fit_config: FitConfig, pretrain_fit: FitConfig,
               out, seed: int = 0, progress: bool = True) -> tuple[ForceField, dict[str, Path]]:
    """The stages of `method` (see config.METHODS), a checkpoint per stage in `out`; the
    only place they are chained. Returns the final model and {stage: checkpoint path}."""
    recorder, paths = _Recorder(Path(out)), {}

    def stage(name, model, data, data_val, config):
        start = time.perf_counter()
        model, record = fit(model, data, data_val, config, progress)
        paths[name] = recorder.save(model, name, data, time.perf_counter() - start, record["history"])
        return model

    if method == "standard":
        return stage("standard", new_model(model_config, train, seed=seed), train, val, fit_config), paths
    weighted_cheap = cheap
    if method == "asteroid":
        first = stage("bias_identification", new_model(model_config, train, cheap, seed), train, val, fit_config)
        weighted_cheap = weighted(cheap, bias_weights(force_bias(first, cheap), gamma_eV_per_A))
    recorder.parent = None  # pre-training starts from scratch
    final = stage("pretrained", new_model(model_config, train, cheap, seed + 1), weighted_cheap, cheap_val,
                  pretrain_fit)
    if method != "cheap_only":
        final = stage("fine_tuned", final, train, val, fit_config)  # from the pre-trained weights
    return final, paths


def run_training(config: TrainConfig, progress: bool = True) -> dict:
    """Train as configured; returns {stage: checkpoint path} and the test evaluation, if any."""
    train, val = _split(config.accurate)
    cheap_train, cheap_val = _split(config.cheap) if config.cheap else (None, None)
    model_config = config_from_dict({"species": sorted(set(train.species) | set(cheap_train.species if cheap_train else ())),
                                     **config.model})
    final, paths = run_stages(config.method, model_config, train, val, cheap_train, cheap_val, config.gamma_eV_per_A,
                              config.fit, config.pretrain_fit, config.out, config.seed, progress)
    result = {"checkpoints": {k: str(v) for k, v in paths.items()}}
    if config.test:
        result["test"] = evaluate(final, load_data(config.test))
    return result
