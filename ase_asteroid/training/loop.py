"""The one training loop (``fit``): Adam on the weighted energy/force loss, seeded
shuffling, validation after every epoch, the best-validation weights kept, energy
references refitted to the trained model, a progress bar with live errors and a
per-epoch history.

Not yet here (see the training issue): EMA, warm-up and plateau schedules, resume.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..data import Dataset, fit_energy_references
from ..graph import collate, graph_from_configuration
from ..models import ForceField, predict_in_batches
from .losses import KINDS, energy_force_loss


@dataclass(frozen=True)
class FitConfig:
    """epochs; batch_size (configurations); lr (Adam); rho (energy weight, Eq. 1); loss kind; seed."""

    epochs: int = 100
    batch_size: int = 10
    lr: float = 1e-3
    rho: float = 0.01
    loss: str = "mse"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.rho <= 1:
            raise ValueError(f"rho must be in [0, 1], got {self.rho}")
        if self.loss not in KINDS:
            raise ValueError(f"loss must be one of {KINDS}, got {self.loss!r}")


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


def fit(model: ForceField, train: Dataset, val: Dataset, config: FitConfig = FitConfig(),
        progress: bool = True) -> tuple[ForceField, dict]:
    """Train `model` in place; returns it with its best-validation weights, and a record."""
    index = {f: i for i, f in enumerate(model.fidelities)}
    graphs = [graph_from_configuration(c, model.cutoff, index).to(dtype=model.dtype) for c in train]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    best, best_state, history = float("inf"), copy.deepcopy(model.state_dict()), []
    bar = tqdm(range(config.epochs), desc="fit", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        losses = []
        order = rng.permutation(len(graphs))
        for start in range(0, len(order), config.batch_size):
            batch = collate([graphs[i] for i in order[start:start + config.batch_size]])
            optimizer.zero_grad()
            loss = energy_force_loss(model(batch), batch, config.rho, config.loss)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), **errors(model, val)}
        history.append(metrics)
        if metrics["force_mae_eV_per_A"] < best:
            best, best_state = metrics["force_mae_eV_per_A"], copy.deepcopy(model.state_dict())
        bar.set_postfix(val_force_mae_meV_per_A=f"{1000 * metrics['force_mae_eV_per_A']:.1f}")
    model.load_state_dict(best_state)
    model.eval()
    refit_energy_references(model, train)
    record = {"stage": "fit", "config": asdict(config), "epochs": config.epochs,
              "best_val_force_mae_eV_per_A": best, "history": history}
    model.history.append({k: v for k, v in record.items() if k != "history"})
    return model, record
