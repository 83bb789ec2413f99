"""Test-time radius refinement (RR): pick the graph cutoff at which a structure's graph
looks most like the training graphs.

The spectrum of the symmetric normalised Laplacian L = I − D^{-1/2} A D^{-1/2} (A: atoms
within the cutoff; an isolated atom has L_ii = 0) summarises connectivity. Training stores
the mean spectrum (each sorted in decreasing order and zero-padded to the largest molecule)
at the trained cutoff; at test time the candidate cutoff whose spectrum is nearest (squared
L2, both padded to the same length) is chosen, and the model runs with its radial basis
and envelope rescaled to that cutoff.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..models.radial import is_bessel_basis, is_polynomial_cutoff

#: Candidate cutoffs relative to the trained one (Å).
DEFAULT_OFFSETS_A = tuple(np.round(np.arange(-1.0, 1.01, 0.25), 2))


def laplacian_spectrum(positions: np.ndarray, cutoff_A: float) -> np.ndarray:
    """Eigenvalues of the normalised Laplacian of the cutoff graph, in decreasing order."""
    positions = np.asarray(positions, dtype=float)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    adjacency = ((distances < cutoff_A) & ~np.eye(len(positions), dtype=bool)).astype(float)
    degree = adjacency.sum(1)
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    laplacian = np.diag((degree > 0).astype(float)) - inv_sqrt[:, None] * adjacency * inv_sqrt[None]
    return np.sort(np.linalg.eigvalsh(laplacian))[::-1]


def _padded(spectrum: np.ndarray, length: int) -> np.ndarray:
    return np.pad(spectrum, (0, max(0, length - len(spectrum))))


def mean_spectrum(configs, cutoff_A: float, max_configurations: int = 500) -> list[float]:
    """The mean zero-padded spectrum of (up to `max_configurations` of) the configurations."""
    configs = list(configs)[:max_configurations]
    spectra = [laplacian_spectrum(c.positions, cutoff_A) for c in configs]
    length = max(len(s) for s in spectra)
    return np.mean([_padded(s, length) for s in spectra], axis=0).tolist()


def choose_cutoff(reference: dict, structures, offsets_A=DEFAULT_OFFSETS_A) -> tuple[float, dict]:
    """(cutoff, {candidate: mean squared distance}) for a list of structures' positions;
    `reference` holds the trained "cutoff_A" and its "spectrum" (see mean_spectrum)."""
    trained, target = reference["cutoff_A"], np.asarray(reference["spectrum"])
    distances = {}
    for offset in offsets_A:
        cutoff = round(trained + float(offset), 3)
        if cutoff <= 0:
            continue
        spectra = [laplacian_spectrum(p, cutoff) for p in structures]
        length = max(max(len(s) for s in spectra), len(target))
        distances[cutoff] = float(np.mean([np.sum((_padded(s, length) - _padded(target, length)) ** 2)
                                           for s in spectra]))
    best = min(distances, key=lambda c: (distances[c], abs(c - trained)))
    return best, distances


def with_cutoff(model, cutoff_A: float):
    """A copy of `model` that builds its graphs at `cutoff_A`, with every Bessel radial basis
    and polynomial envelope rescaled to it (the weights are shared values, not retrained).
    Both backends' radial modules are recognised by their buffers, so nothing imports mace here."""
    adapted = copy.deepcopy(model)
    ratio = float(model.cutoff) / cutoff_A
    with torch.no_grad():
        for module in adapted.modules():
            if is_bessel_basis(module):
                module.bessel_weights.mul_(ratio)
                module.prefactor.fill_(float(np.sqrt(2.0 / cutoff_A)))
                module.r_max.fill_(cutoff_A)
            elif is_polynomial_cutoff(module):
                module.r_max.fill_(cutoff_A)
    adapted.cutoff = float(cutoff_A)
    return adapted
