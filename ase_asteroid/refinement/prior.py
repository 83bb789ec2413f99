"""Labels from a prior, for joint training and test-time training: the Lennard-Jones prior
head's (models/prior.py, in torch) or a labelling method's (GFN2-xTB, GAFF2, ...), computed
by the same labeller code as ``asteroid data label`` (labels/runner.label_one)."""

from __future__ import annotations

import torch

from ..data import Dataset
from ..graph import batch_configurations
from ..models.prior import METHOD_PRIORS, PRIOR_FIDELITY, LJPrior, MethodPrior

__all__ = ["METHOD_PRIORS", "PRIOR_FIDELITY", "LJPrior", "MethodPrior", "method_labels", "prior_labelled"]


def prior_labelled(data, prior: LJPrior | MethodPrior, weight: float = 1.0, batch_size: int = 100,
                   cache: dict | None = None) -> Dataset:
    """Copies of the configurations labelled by the prior, with fidelity ``prior.fidelity``
    and their loss weights times `weight`. A method prior's labels are looked up in, and
    added to, `cache` if one is given (training's stages label the same geometries again)."""
    configs = list(data)
    if isinstance(prior, MethodPrior):
        labels = _cached(configs, prior.kind, {} if cache is None else cache)
    else:
        labels = _lj_labels(configs, prior, batch_size)
    out = [c.with_(energy=energy, forces=forces, fidelity=prior.fidelity, weight=c.weight * weight)
           for c, (energy, forces) in zip(configs, labels)]
    return Dataset(out, f"{getattr(data, 'source', '')} labelled by the {prior.kind} prior")


def _lj_labels(configs, prior: LJPrior, batch_size: int) -> list:
    labels = []
    for start in range(0, len(configs), batch_size):
        chunk = configs[start:start + batch_size]
        batch = batch_configurations(chunk, 1.0).to(dtype=torch.float64)
        with torch.no_grad():
            energy, forces = prior(batch)
        labels += [(float(energy[g]), forces[int(batch.ptr[g]):int(batch.ptr[g + 1])].numpy().copy())
                   for g in range(len(chunk))]
    return labels


def _cached(configs, method: str, cache: dict) -> list:
    """method_labels of `configs`, computing only those whose (method, numbers, positions) `cache` lacks."""
    keys = [(method, c.numbers.tobytes(), c.positions.tobytes()) for c in configs]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    cache.update(zip([keys[i] for i in todo], method_labels([configs[i] for i in todo], method)))
    return [cache[k] for k in keys]


def method_labels(configs, method: str) -> list:
    """(energy eV, forces [n, 3] eV/Å) of each configuration by `method`, exactly as
    ``asteroid data label --method METHOD`` computes them: one labeller per molecule
    (sequence of atomic numbers), prepared on its first configuration, then ``label_one``.
    LabelError naming the configuration if the method fails on one."""
    from ..labels import LabelError, get_labeler
    from ..labels.runner import label_one

    labelers, labels = {}, []
    for index, c in enumerate(configs):
        key = tuple(int(z) for z in c.numbers)
        if key not in labelers:
            labelers[key] = get_labeler(method)
            labelers[key].prepare(c.to_atoms())
        result = label_one(labelers[key], index, c.numbers, c.positions)
        if "error" in result:
            raise LabelError(f"the {method} prior could not label configuration {index}: {result['error']}")
        labels.append((result["energy"], result["forces"]))
    return labels
