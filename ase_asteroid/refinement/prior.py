"""Labels from the Lennard-Jones prior head (the head itself: models/prior.py), for joint
training and test-time training."""

from __future__ import annotations

import torch

from ..data import Dataset
from ..graph import batch_configurations
from ..models.prior import PRIOR_FIDELITY, LJPrior

__all__ = ["PRIOR_FIDELITY", "LJPrior", "prior_labelled"]


def prior_labelled(data, prior: LJPrior, weight: float = 1.0, batch_size: int = 100) -> Dataset:
    """Copies of the configurations labelled by the prior, with fidelity PRIOR_FIDELITY."""
    configs, out = list(data), []
    for start in range(0, len(configs), batch_size):
        chunk = configs[start:start + batch_size]
        batch = batch_configurations(chunk, 1.0).to(dtype=torch.float64)
        with torch.no_grad():
            energy, forces = prior(batch)
        for g, c in enumerate(chunk):
            a, b = int(batch.ptr[g]), int(batch.ptr[g + 1])
            out.append(c.with_(energy=float(energy[g]), forces=forces[a:b].numpy().copy(), fidelity=PRIOR_FIDELITY,
                               weight=c.weight * weight))
    return Dataset(out, f"{getattr(data, 'source', '')} labelled by the LJ prior")
