"""Test-time radius refinement (RR): pick the graph cutoff at which a structure's graph
looks most like the training graphs of its size.

The spectrum of the symmetric normalised Laplacian L = I − D^{-1/2} A D^{-1/2} (A: atoms
within the cutoff; an isolated atom has L_ii = 0) summarises connectivity. Training stores,
per atom count, the mean spectrum (sorted in decreasing order) of its training graphs at
the trained cutoff and their spread: the largest squared L2 distance of one of them to
that mean. At test time each structure is compared with the reference of its own atom
count, or of the nearest one, resampled to the structure's length (the sorted spectrum read
as a quantile function, so sizes compare as spectral densities, never by zero padding).

The trained cutoff is kept when the structures lie within the training spread at it (they
look like training graphs), and otherwise unless a candidate cutoff is nearer by more than
the margin: its mean distance at most (1 − RR_MARGIN) times the trained cutoff's. The model
then runs with its radial basis and envelope rescaled to the chosen cutoff
(``ForceField.with_cutoff``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

#: Candidate cutoffs relative to the trained one (Å).
DEFAULT_OFFSETS_A = tuple(np.round(np.arange(-1.0, 1.01, 0.25), 2))

#: A candidate cutoff replaces the trained one only if its mean squared spectral distance is
#: below (1 − RR_MARGIN) times the trained cutoff's (and the structures lie outside the
#: training spread at the trained cutoff).
RR_MARGIN = 0.2


def laplacian_spectrum(positions: np.ndarray, cutoff_A: float) -> np.ndarray:
    """Eigenvalues of the normalised Laplacian of the cutoff graph, in decreasing order."""
    positions = np.asarray(positions, dtype=float)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    adjacency = ((distances < cutoff_A) & ~np.eye(len(positions), dtype=bool)).astype(float)
    degree = adjacency.sum(1)
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    laplacian = np.diag((degree > 0).astype(float)) - inv_sqrt[:, None] * adjacency * inv_sqrt[None]
    return np.sort(np.linalg.eigvalsh(laplacian))[::-1]


def _resampled(spectrum, length: int) -> np.ndarray:
    """A sorted spectrum resampled to `length` values (linear interpolation of its quantiles)."""
    spectrum = np.asarray(spectrum, dtype=float)
    if len(spectrum) == length:
        return spectrum
    return np.interp(np.linspace(0, 1, length), np.linspace(0, 1, len(spectrum)), spectrum)


def training_spectra(configs, cutoff_A: float, max_per_size: int = 200) -> dict:
    """Radius refinement's reference for a training set: {"cutoff_A", "spectra": {atom
    count: mean spectrum}, "spread": {atom count: largest squared distance of a training
    spectrum to that mean}} from up to `max_per_size` configurations of each atom count
    (JSON keys: the atom counts as strings)."""
    by_size = defaultdict(list)
    for c in configs:
        if len(by_size[len(c.numbers)]) < max_per_size:
            by_size[len(c.numbers)].append(laplacian_spectrum(c.positions, cutoff_A))
    spectra, spread = {}, {}
    for size, group in sorted(by_size.items()):
        mean = np.mean(group, axis=0)
        spectra[str(size)] = mean.tolist()
        spread[str(size)] = float(max(np.sum((s - mean) ** 2) for s in group))
    return {"cutoff_A": float(cutoff_A), "spectra": spectra, "spread": spread}


def reference_for(reference: dict, size: int) -> tuple[np.ndarray, float]:
    """(mean spectrum, spread) of the atom count nearest `size` (the larger on a tie). A
    reference written before per-size spectra ({"spectrum"}: one zero-padded mean) is one
    size with no spread."""
    if "spectra" not in reference:
        return np.asarray(reference["spectrum"], dtype=float), 0.0
    nearest = min(reference["spectra"], key=lambda n: (abs(int(n) - size), -int(n)))
    return np.asarray(reference["spectra"][nearest], dtype=float), float(reference["spread"].get(nearest, 0.0))


def _distance(positions: np.ndarray, cutoff_A: float, target: np.ndarray) -> float:
    spectrum = laplacian_spectrum(positions, cutoff_A)
    return float(np.sum((spectrum - _resampled(target, len(spectrum))) ** 2))


def choose_cutoff(reference: dict, structures, offsets_A=DEFAULT_OFFSETS_A,
                  margin: float = RR_MARGIN) -> tuple[float, dict]:
    """(cutoff, {candidate: mean squared distance}) for a list of structures' positions
    [n_i, 3] (Å); `reference` as written by :func:`training_spectra` (its "cutoff_A" is the
    trained cutoff). See the module's docstring for the rule and the margin."""
    trained = reference["cutoff_A"]
    targets = [reference_for(reference, len(p)) for p in structures]
    distances = {}
    for offset in offsets_A:
        cutoff = round(trained + float(offset), 3)
        if cutoff > 0:
            distances[cutoff] = float(np.mean([_distance(p, cutoff, target)
                                               for p, (target, _) in zip(structures, targets)]))
    at_trained = distances[round(trained, 3)]
    spread = float(np.mean([s for _, s in targets]))
    best = min(distances, key=lambda c: (distances[c], abs(c - trained)))
    if at_trained <= spread or distances[best] > (1 - margin) * at_trained:
        return trained, distances
    return best, distances
