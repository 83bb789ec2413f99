"""Test-time training (TTT): adapt a copy of a model to the structures at hand by a few
gradient steps on its auxiliary prior head's loss, with that prior's labels computed for
these structures (Lennard-Jones: microseconds; GFN2-xTB: ~10 ms for ethanol; GAFF2: a
parametrisation per molecule, then milliseconds), the readout heads frozen and the
representation layers trained; then predict with the main head. The model passed in, and
its checkpoint, are never changed.

TTT is for structures the model has not learnt. With the default gate, it adapts only
when the prior head's loss on the structures at hand exceeds `gate` times its loss on the
training structures (``model.extras.prior_train_loss``, stored by training): adapting
where there is nothing to learn only adds noise. Measured (docs/benchmarks.md, "Test-time
refinement"): the ratio was 0.1-1.9 on the training molecules' test sets, where always
adapting changed errors by -0.6 to +7.4 %, and 66-128 on unseen molecules, where TTT lowered
them by 15-20 %."""

from __future__ import annotations

import copy
import time

import torch

from ..data import Dataset
from ..losses import energy_force_loss
from .prior import prior_labelled
from .settings import TTTSettings


def adapt_to_structures(model, configs, settings: TTTSettings = TTTSettings()) -> tuple[object, dict]:
    """(adapted copy, or `model` itself if the gate holds it back; {"prior", "adapted",
    "seconds", "label_seconds", "prior_loss_train", "prior_loss_before", "prior_loss_after",
    "structures"}) for `configs`; seconds include the labels. A model without a stored
    training loss (trained before the gate existed) is always adapted."""
    prior = model.extras.prior
    if prior is None or prior.fidelity not in model.fidelities:
        raise ValueError("test-time training needs a model trained jointly with a prior head "
                         "(train with `prior: gfn2-xtb`, `gaff2` or `lj`); this one has none")
    start = time.perf_counter()
    labelled = prior_labelled(configs, prior)
    label_seconds = time.perf_counter() - start
    report = {"prior": prior.kind, "label_seconds": label_seconds, "structures": len(labelled),
              "prior_loss_train": model.extras.prior_train_loss}
    if settings.gate and model.extras.prior_train_loss is not None:
        before = prior_loss(model, labelled)
        if before <= settings.gate * model.extras.prior_train_loss:  # learnt already: nothing to adapt to
            return model, {**report, "adapted": False, "seconds": time.perf_counter() - start,
                           "prior_loss_before": before, "prior_loss_after": before}
    adapted = copy.deepcopy(model).train()
    trainable = list(adapted.representation_parameters())
    for p in adapted.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    batch = adapted.batch_of(labelled)
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
    return adapted, {**report, "adapted": True, "seconds": time.perf_counter() - start,
                     "prior_loss_before": losses[0], "prior_loss_after": losses[-1]}


def prior_loss(model, labelled, batch_size: int = 50) -> float:
    """The prior head's force loss (mean squared error over atoms and components, (eV/Å)²,
    unweighted) on structures labelled by the prior (refinement.prior.prior_labelled)."""
    configs = [c.with_(weight=1.0) for c in labelled]
    total, atoms = 0.0, 0
    for begin in range(0, len(configs), batch_size):
        batch = model.batch_of(configs[begin:begin + batch_size])
        loss = energy_force_loss(model(batch), batch, rho=0.0)
        total, atoms = total + float(loss.detach()) * batch.num_atoms, atoms + batch.num_atoms
    return total / atoms


def store_prior_reference(model, structures, cache: dict | None = None) -> float:
    """Set ``model.extras.prior_train_loss`` to the prior head's loss on `structures` (its
    training structures; a method prior's labels are taken from `cache` where present) and
    return it: the reference of TTT's gate. Training does this for every model with a prior."""
    value = prior_loss(model, prior_labelled(Dataset(list(structures)), model.extras.prior, cache=cache))
    model.extras.prior_train_loss = value
    return value
