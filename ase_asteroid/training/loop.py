"""The one training loop (``fit``) for every stage.

Adam or AdamW (optionally AMSGrad) on the weighted energy/force loss; a linear
learning-rate warm-up, then either a cosine decay to ``min_lr`` over the run or a
reduce-on-plateau rule (the rate is multiplied by ``plateau_factor`` whenever the
validation force MAE has not improved for ``plateau_patience`` epochs); an optional stage
two (as mace-torch's) from epoch ``round(stage_two_at x epochs)`` with the energy weight
``stage_two_rho`` and the rate capped at ``stage_two_lr``; gradient-norm clipping; an exponential moving average
(EMA) of the weights, which is what is validated and kept; the best-validation weights
kept and early stopping; seeded shuffling; a progress bar with live errors; a per-epoch
history. With ``state_path`` the whole loop state is written after every epoch, so that a
crash or Ctrl-C loses at most one epoch and calling ``fit`` again with the same arguments
continues where it stopped, with the same result as an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_training_state, save_training_state
from ..data import Dataset, fit_energy_references
from ..graph import collate, graph_from_configuration
from ..models import ForceField, predict_in_batches
from ..models.config import check_types
from .force_gradients import METHODS as FORCE_GRADIENTS
from .force_gradients import default_epsilon, loss_and_backward
from ..losses import KINDS, score_matching_loss

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine", "plateau")
OBJECTIVES = ("labels", "score_matching")


@dataclass(frozen=True)
class FitConfig:
    """epochs; batch_size (configurations); lr; optimizer (adam | adamw), amsgrad and
    weight_decay; rho (energy weight, Eq. 1); loss kind (mse | mae | huber); warmup_epochs
    (linear ramp); schedule: "cosine" (from lr down to min_lr over all epochs) or "plateau"
    (plateau_patience / plateau_factor, down to min_lr, on the validation force MAE);
    stage_two_at (fraction of the epochs after which stage two starts; 0 = no stage two),
    stage_two_rho (its energy weight) and stage_two_lr (its rate cap; 0 = no cap): the best
    weights are chosen among stage-two epochs only, since stage two trades a little force
    error for energy error; ema_decay (0 = no EMA); clip_grad_norm (0 = no clipping); early_stopping_patience
    (epochs without improvement before stopping; 0 = never); objective: "labels" (the
    energy/force loss) or "score_matching" (losses.score_matching_loss on the configurations'
    geometries at temperature_K, labels unused); force_grad: how the force loss's parameter
    gradient is taken (double_backprop | central_difference with step force_grad_epsilon_A Å,
    0 = the paper's 1e-5 in float64 and 1e-3 in float32 | forward_mode; see
    force_gradients.py); seed (shuffling, projections)."""

    epochs: int = 100
    batch_size: int = 5
    lr: float = 0.01
    optimizer: str = "adam"
    amsgrad: bool = False
    weight_decay: float = 0.0
    rho: float = 0.01
    loss: str = "mse"
    warmup_epochs: int = 0
    schedule: str = "plateau"
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    min_lr: float = 1e-5
    stage_two_at: float = 0.0
    stage_two_rho: float = 0.5
    stage_two_lr: float = 1e-3
    ema_decay: float = 0.99
    clip_grad_norm: float = 10.0
    early_stopping_patience: int = 0
    objective: str = "labels"
    force_grad: str = "double_backprop"
    force_grad_epsilon_A: float = 0.0
    temperature_K: float = 0.0
    seed: int = 0

    @property
    def stage_two_epoch(self) -> int | None:
        """The first epoch (0-based) of stage two, or None without one."""
        return round(self.stage_two_at * self.epochs) if self.stage_two_at else None

    def in_stage_two(self, epoch: int) -> bool:
        return self.stage_two_epoch is not None and epoch >= self.stage_two_epoch

    def rho_at(self, epoch: int) -> float:
        """The energy weight of the loss in `epoch` (0-based): stage two's once it has started."""
        return self.stage_two_rho if self.in_stage_two(epoch) else self.rho

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("epochs", "batch_size"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_epochs", "plateau_patience", "early_stopping_patience", "weight_decay",
                     "clip_grad_norm", "min_lr"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("rho", "stage_two_rho", "stage_two_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.stage_two_lr >= 0:
            raise ValueError(f"stage_two_lr must not be negative, got {self.stage_two_lr}")
        if not 0 < self.plateau_factor <= 1:
            raise ValueError(f"plateau_factor must be in (0, 1], got {self.plateau_factor}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.loss not in KINDS:
            raise ValueError(f"loss must be one of {KINDS}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.force_grad not in FORCE_GRADIENTS:
            raise ValueError(f"force_grad must be one of {FORCE_GRADIENTS}, got {self.force_grad!r}")
        if not self.force_grad_epsilon_A >= 0:
            raise ValueError(f"force_grad_epsilon_A must not be negative (Å), got {self.force_grad_epsilon_A}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective == "score_matching" and not self.temperature_K > 0:
            raise ValueError(f"score matching needs the sampling temperature_K (> 0), got {self.temperature_K}")


def errors(model: ForceField, data: Dataset, batch_size: int = 50) -> dict[str, float]:
    """Force MAE (eV/Å) and energy MAE (eV) of `model` on `data`."""
    force_errors, energy_errors = [], []
    for batch, out in predict_in_batches(model, data, batch_size):
        force_errors.append((out["forces"] - batch.forces).abs().detach().reshape(-1))
        energy_errors.append((out["energy"] - batch.energy).abs().detach())
    return {"force_mae_eV_per_A": float(torch.cat(force_errors).mean()),
            "energy_mae_eV": float(torch.cat(energy_errors).mean())}


def refit_energy_references(model: ForceField, data: Dataset, batch_size: int = 50) -> None:
    """Absorb the constant part of the energy error into the reference energies.

    The energy term carries a small weight (rho), so training leaves the energy offset
    nearly unconstrained; the per-fidelity, per-element least-squares fit of the residuals
    E_true - E_model (the same fit as the initial references) removes it exactly.
    """
    labelled = [c for c in data if c.energy is not None]
    predicted = [p for _, out in predict_in_batches(model, labelled, batch_size, compute_forces=False)
                 for p in out["energy"].detach().double().numpy()]
    residuals = [c.with_(energy=c.energy - float(p)) for c, p in zip(labelled, predicted)]
    if not residuals:
        return
    corrections = fit_energy_references(Dataset(residuals), model.species)
    references = model.energy_references
    for fidelity, per_element in corrections.items():
        if fidelity in references:
            references[fidelity] = {z: e + per_element[z] for z, e in references[fidelity].items()}
    model.set_normalization(references, float(model.scale), float(model.shift))


class _EMA:
    """Exponential moving average of a model's parameters. The decay ramps up as
    min(decay, (1 + t) / (10 + t)) over the updates t, so that short runs are not pinned
    to the initial weights."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters()}

    def update(self, model: torch.nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            for k, p in model.named_parameters():
                self.shadow[k].mul_(decay).add_(p.detach(), alpha=1 - decay)

    def swapped_into(self, model: torch.nn.Module) -> dict:
        """Load the averages into `model`; returns the live weights to restore."""
        live = {k: p.detach().clone() for k, p in model.named_parameters()}
        self._copy(model, self.shadow)
        return live

    @staticmethod
    def _copy(model: torch.nn.Module, values: dict) -> None:
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(values[k])


class _Schedule:
    """Learning rate = warm-up ramp x (cosine: min_lr + (lr - min_lr)(1 + cos(π t/T))/2 over
    the T steps of the run; plateau: lr x plateau scale, at least min_lr, the scale
    multiplied by plateau_factor after plateau_patience epochs without a new best), capped
    at stage_two_lr in stage two."""

    def __init__(self, config: FitConfig, steps_per_epoch: int) -> None:
        self.config, self.steps_per_epoch = config, steps_per_epoch
        self.scale, self.bad_epochs = 1.0, 0

    def lr(self, step: int) -> float:
        c = self.config
        warmup_steps = c.warmup_epochs * self.steps_per_epoch
        ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
        if c.schedule == "cosine":
            progress = step / (c.epochs * self.steps_per_epoch)
            rate = c.min_lr + (c.lr - c.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            rate = max(c.lr * self.scale, c.min_lr)
        if c.stage_two_lr and c.in_stage_two(step // self.steps_per_epoch):
            rate = min(rate, c.stage_two_lr)
        return rate * ramp

    def end_epoch(self, improved: bool) -> None:
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        if self.config.schedule == "plateau" and self.config.plateau_patience and \
                self.bad_epochs >= self.config.plateau_patience:
            self.scale *= self.config.plateau_factor
            self.bad_epochs = 0


def _optimizer(model: torch.nn.Module, config: FitConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, amsgrad=config.amsgrad)


def fit(model: ForceField, train: Dataset, val: Dataset, config: FitConfig = FitConfig(),
        progress: bool = True, state_path=None) -> tuple[ForceField, dict]:
    """Train `model` in place; returns it with its best-validation (EMA) weights, and a record.

    `state_path`: where the loop state goes after every epoch; if the file exists, training
    resumes from it (the file is removed once training has finished).
    """
    loop = _Loop(model, train, config)
    if state_path is not None and Path(state_path).exists():
        loop.resume(state_path)
    bar = tqdm(range(loop.state["epoch"], config.epochs), desc="fit", unit="epoch", disable=not progress,
               initial=loop.state["epoch"], total=config.epochs)
    for epoch in bar:
        epoch_start = time.perf_counter()
        if epoch == config.stage_two_epoch:  # a new objective: the best is chosen among its epochs
            loop.state["best"] = float("inf")
        metrics = loop.validate(epoch, loop.train_epoch(epoch), val, epoch_start)
        if state_path is not None:
            loop.save(state_path)
        bar.set_postfix(val_force_mae_meV_per_A=f"{1000 * metrics['force_mae_eV_per_A']:.1f}",
                        lr=f"{metrics['lr']:.1e}")
        if config.early_stopping_patience and \
                _epochs_since_best(loop.state["history"]) >= config.early_stopping_patience:
            break
    record = loop.finish(train)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    return model, record


class _Loop:
    """The moving parts of one fit(): the training graphs, the optimiser, schedule, EMA and
    random streams, and the loop state (epoch, best validation force MAE and its weights,
    per-epoch history), which is what a state file saves and restores."""

    def __init__(self, model: ForceField, train: Dataset, config: FitConfig) -> None:
        index = model.fidelity_rows()
        self.model, self.config = model, config
        self.graphs = [graph_from_configuration(c, model.cutoff, index).to(dtype=model.dtype) for c in train]
        self.steps_per_epoch = -(-len(self.graphs) // config.batch_size)
        self.optimizer, self.schedule = _optimizer(model, config), _Schedule(config, self.steps_per_epoch)
        self.ema = _EMA(model, config.ema_decay) if config.ema_decay else None
        self.rngs = (np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed))
        self.epsilon = config.force_grad_epsilon_A or default_epsilon(model.dtype)
        self.state = {"epoch": 0, "best": float("inf"), "best_state": copy.deepcopy(model.state_dict()),
                      "history": []}

    def resume(self, path) -> None:
        self.state = _load_state(path, self.model, self.optimizer, self.schedule, self.ema, self.rngs, self.config)

    def save(self, path) -> None:
        _save_state(path, self.state, self.model, self.optimizer, self.schedule, self.ema, self.rngs, self.config)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training graphs in a seeded random order; returns the mean loss."""
        self.model.train()
        size, losses = self.config.batch_size, []
        order = self.rngs[0].permutation(len(self.graphs))
        for step, start in enumerate(range(0, len(order), size)):
            for group in self.optimizer.param_groups:
                group["lr"] = self.schedule.lr(epoch * self.steps_per_epoch + step)
            losses.append(self._step(collate([self.graphs[i] for i in order[start:start + size]]), epoch))
        return float(np.mean(losses))

    def _step(self, batch, epoch: int) -> float:
        """One optimiser step on `batch` (gradient clipping, then the EMA update); its loss."""
        self.optimizer.zero_grad()
        if self.config.objective == "score_matching":
            loss = score_matching_loss(self.model, batch, self.config.temperature_K, self.rngs[1])
            loss.backward()
        else:
            loss = loss_and_backward(self.model, batch, self.config.rho_at(epoch), self.config.loss,
                                     self.config.force_grad, self.epsilon)
        if self.config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        if self.ema:
            self.ema.update(self.model)
        return float(loss.detach())

    def validate(self, epoch: int, train_loss: float, val: Dataset, epoch_start: float) -> dict:
        """Measure the (EMA) weights on `val`, keep them if they are the best so far, advance
        the schedule, and append the epoch's metrics to the history; returns them."""
        state = self.state
        live = self.ema.swapped_into(self.model) if self.ema else None
        metrics = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "rho": self.config.rho_at(epoch),
                   "train_loss": train_loss, **errors(self.model, val)}
        improved = not metrics["force_mae_eV_per_A"] >= state["best"]  # NaN (unlabelled val): keep the latest
        if improved:
            state["best"], state["best_state"] = metrics["force_mae_eV_per_A"], copy.deepcopy(self.model.state_dict())
        if live is not None:
            _EMA._copy(self.model, live)
        self.schedule.end_epoch(improved)
        before = state["history"][-1]["elapsed_s"] if state["history"] else 0.0
        metrics["elapsed_s"] = round(before + time.perf_counter() - epoch_start, 2)  # training + validation
        state["history"].append(metrics)
        state["epoch"] = epoch + 1
        return metrics

    def finish(self, train: Dataset) -> dict:
        """Load the best weights, refit the energy references to `train`, and record the
        run in the model's history; returns the record (with the per-epoch history)."""
        self.model.load_state_dict(self.state["best_state"])
        self.model.eval()
        refit_energy_references(self.model, train)
        record = {"stage": "fit", "config": asdict(self.config), "epochs": self.state["epoch"],
                  "best_val_force_mae_eV_per_A": self.state["best"], "history": self.state["history"]}
        self.model.extras.history.append({k: v for k, v in record.items() if k != "history"})
        return record


def _epochs_since_best(history: list[dict]) -> int:
    maes = [h["force_mae_eV_per_A"] for h in history]
    return len(maes) - 1 - int(np.argmin(maes))


def _save_state(path, state, model, optimizer, schedule, ema, rngs, config) -> None:
    """The loop state as tensors + JSON (checkpoint.save_training_state): nothing is pickled."""
    optim = optimizer.state_dict()
    tensors = {**_prefixed("model", model.state_dict()), **_prefixed("best", state["best_state"]),
               **(_prefixed("ema", ema.shadow) if ema else {}), "generator": rngs[1].get_state()}
    optim_meta = {}
    for index, values in optim["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value
            else:
                optim_meta[f"{index}/{key}"] = value
    save_training_state(path, tensors, {
        "epoch": state["epoch"], "best": state["best"], "history": state["history"], "config": asdict(config),
        "schedule": [schedule.scale, schedule.bad_epochs], "ema_updates": ema.updates if ema else None,
        "rng": rngs[0].bit_generator.state, "param_groups": optim["param_groups"], "optimizer_values": optim_meta})


def _prefixed(prefix: str, tensors: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in tensors.items()}


def _unprefixed(prefix: str, tensors: dict) -> dict:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def _load_state(path, model, optimizer, schedule, ema, rngs, config) -> dict:
    tensors, saved = load_training_state(path)
    if saved["config"] != asdict(config):
        changed = sorted(k for k in saved["config"] if saved["config"][k] != asdict(config).get(k))
        raise ValueError(f"{path}: saved with a different training config ({', '.join(changed)} differ); "
                         "resume with the same settings or delete the file to start over")
    model.load_state_dict(_unprefixed("model", tensors))
    optim_state: dict = {}
    for key, value in [*_unprefixed("optimizer", tensors).items(), *saved["optimizer_values"].items()]:
        index, name = key.split("/", 1)
        optim_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": optim_state, "param_groups": saved["param_groups"]})
    schedule.scale, schedule.bad_epochs = saved["schedule"]
    if ema:
        ema.shadow, ema.updates = _unprefixed("ema", tensors), saved["ema_updates"]
    rngs[0].bit_generator.state = saved["rng"]
    rngs[1].set_state(tensors["generator"])
    return {"epoch": saved["epoch"], "best": saved["best"], "best_state": _unprefixed("best", tensors),
            "history": saved["history"]}
