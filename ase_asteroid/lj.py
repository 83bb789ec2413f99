"""The Lennard-Jones formula with UFF per-element parameters (Rappé et al. 1992), once:

    E = Σ_{i<j} D_ij [ (r⁰_ij / r)^12 − 2 (r⁰_ij / r)^6 ],  r⁰_ij = √(x_i x_j),  D_ij = √(D_i D_j)

used by the LJ labeller (labels/lj.py, numpy) and the LJ prior head (models/prior.py,
torch): :func:`pair_terms` works on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import numpy as np

from . import units

#: UFF (x_i in Å, D_i in kcal/mol) by atomic number.
UFF = {1: (2.886, 0.044), 5: (4.083, 0.180), 6: (3.851, 0.105), 7: (3.660, 0.069),
       8: (3.500, 0.060), 9: (3.364, 0.050), 14: (4.295, 0.402), 15: (4.147, 0.305),
       16: (4.035, 0.274), 17: (3.947, 0.227), 35: (4.189, 0.251), 53: (4.500, 0.339)}


def uff_pair_parameters(first, second) -> tuple[np.ndarray, np.ndarray]:
    """(r⁰ in Å, D in eV) of the element pairs (first[k], second[k]) by UFF's mixing rule."""
    x = {z: p[0] for z, p in UFF.items()}
    depth = {z: float(units.to_eV(p[1], "kcal/mol")) for z, p in UFF.items()}
    a, b = np.asarray(first, dtype=int), np.asarray(second, dtype=int)
    r_min = np.sqrt(np.array([x[z] for z in a]) * np.array([x[z] for z in b]))
    return r_min, np.sqrt(np.array([depth[z] for z in a]) * np.array([depth[z] for z in b]))


def pair_terms(vectors, r_min, depth):
    """(pair energies [P] eV, dE/dr_j [P, 3] eV/Å) for pair vectors r_j − r_i [P, 3] (Å);
    the force on j is −dE/dr_j and on i +dE/dr_j. numpy or torch in, the same out."""
    r = (vectors ** 2).sum(-1) ** 0.5
    ratio6 = (r_min / r) ** 6
    energy = depth * (ratio6 ** 2 - 2 * ratio6)
    de_dr = depth * 12 * (ratio6 - ratio6 ** 2) / r
    return energy, (de_dr / r)[:, None] * vectors
