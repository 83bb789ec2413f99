"""Test-time training (TTT): adapt a copy of a model to the structures at hand by a few
gradient steps on its auxiliary Lennard-Jones prior head (labels cost microseconds), the
readout heads frozen and the representation layers trained; then predict with the main
head. The model passed in, and its checkpoint, are never changed."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from ..graph import batch_configurations
from ..training.losses import energy_force_loss
from .prior import PRIOR_FIDELITY, prior_labelled


@dataclass(frozen=True)
class TTTSettings:
    """steps and lr of the optimiser (sgd with momentum, or adam) on the prior's force loss."""

    steps: int = 50
    lr: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0:
            raise ValueError(f"TTT needs steps >= 1 and lr > 0, got steps={self.steps}, lr={self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"TTT optimizer must be sgd or adam, got {self.optimizer!r}")


def adapt_to_structures(model, configs, settings: TTTSettings = TTTSettings()) -> tuple[object, dict]:
    """(adapted copy, {"seconds", "prior_loss_before", "prior_loss_after"}) for `configs`."""
    if getattr(model, "prior", None) is None or PRIOR_FIDELITY not in model.fidelities:
        raise ValueError("test-time training needs a model trained jointly with a prior head "
                         "(train with `prior: lj`); this one has none")
    start = time.perf_counter()
    adapted = copy.deepcopy(model).train()
    trainable = [p for name, p in adapted.named_parameters() if "readout" not in name]
    for name, p in adapted.named_parameters():
        p.requires_grad_("readout" not in name)
    labelled = prior_labelled(configs, adapted.prior)
    index = {f: i for i, f in enumerate(adapted.fidelities)}
    batch = batch_configurations(list(labelled), adapted.cutoff, index).to(dtype=adapted.dtype)
    if settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(trainable, lr=settings.lr, momentum=settings.momentum)
    else:
        optimizer = torch.optim.Adam(trainable, lr=settings.lr)
    losses = []
    for _ in range(settings.steps + 1):
        optimizer.zero_grad()
        loss = energy_force_loss(adapted(batch), batch, rho=0.0)
        losses.append(float(loss.detach()))
        if len(losses) > settings.steps:
            break
        loss.backward()
        optimizer.step()
    for p in adapted.parameters():
        p.requires_grad_(True)
    adapted.eval()
    return adapted, {"seconds": time.perf_counter() - start, "prior_loss_before": losses[0],
                     "prior_loss_after": losses[-1], "structures": len(labelled)}
