"""Test-time training (TTT): adapt a copy of a model to the structures at hand by a few
gradient steps on its auxiliary prior head's loss, with that prior's labels computed for
these structures (Lennard-Jones: microseconds; GFN2-xTB: ~10 ms for ethanol; GAFF2: a
parametrisation per molecule, then milliseconds), the readout heads frozen and the
representation layers trained; then predict with the main head. The model passed in, and
its checkpoint, are never changed."""

from __future__ import annotations

import copy
import time

import torch

from ..graph import batch_configurations
from ..losses import energy_force_loss
from .prior import prior_labelled
from .settings import TTTSettings


def adapt_to_structures(model, configs, settings: TTTSettings = TTTSettings()) -> tuple[object, dict]:
    """(adapted copy, {"prior", "seconds", "label_seconds", "prior_loss_before",
    "prior_loss_after", "structures"}) for `configs`; seconds include the labels."""
    prior = model.extras.prior
    if prior is None or prior.fidelity not in model.fidelities:
        raise ValueError("test-time training needs a model trained jointly with a prior head "
                         "(train with `prior: gfn2-xtb`, `gaff2` or `lj`); this one has none")
    start = time.perf_counter()
    labelled = prior_labelled(configs, prior)
    label_seconds = time.perf_counter() - start
    adapted = copy.deepcopy(model).train()
    trainable = list(adapted.representation_parameters())
    for p in adapted.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
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
    return adapted, {"prior": prior.kind, "seconds": time.perf_counter() - start, "label_seconds": label_seconds,
                     "prior_loss_before": losses[0], "prior_loss_after": losses[-1], "structures": len(labelled)}
