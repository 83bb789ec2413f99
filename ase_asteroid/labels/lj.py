"""A Lennard-Jones labeler with UFF per-element parameters (Rappé et al. 1992).

    E = Σ_{i<j} D_ij [ (x_ij / r)^12 - 2 (x_ij / r)^6 ],  x_ij = √(x_i x_j),  D_ij = √(D_i D_j)

over all pairs of the molecule (no exclusions, no cutoff). It is a microsecond-cheap,
deliberately crude fidelity: bonded pairs sit deep in the repulsive wall.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from .base import Labeler, check_elements

#: UFF (x_i in Å, D_i in kcal/mol) by atomic number.
UFF = {1: (2.886, 0.044), 5: (4.083, 0.180), 6: (3.851, 0.105), 7: (3.660, 0.069),
       8: (3.500, 0.060), 9: (3.364, 0.050), 14: (4.295, 0.402), 15: (4.147, 0.305),
       16: (4.035, 0.274), 17: (3.947, 0.227), 35: (4.189, 0.251), 53: (4.500, 0.339)}


def lj_energy_forces(numbers, positions) -> tuple[float, np.ndarray]:
    """UFF Lennard-Jones energy (eV) and forces (eV/Å) over all atom pairs."""
    x = np.array([UFF[int(z)][0] for z in numbers])
    depth = units.to_eV(np.array([UFF[int(z)][1] for z in numbers]), "kcal/mol")
    i, j = np.triu_indices(len(numbers), 1)
    vectors = positions[j] - positions[i]
    r = np.linalg.norm(vectors, axis=1)
    ratio6 = (np.sqrt(x[i] * x[j]) / r) ** 6
    d = np.sqrt(depth[i] * depth[j])
    energy = float(np.sum(d * (ratio6 ** 2 - 2 * ratio6)))
    de_dr = d * (-12 * ratio6 ** 2 + 12 * ratio6) / r          # dE/dr per pair
    pair_force = (de_dr / r)[:, None] * vectors                # = dE/dr_j = -F_j
    forces = np.zeros_like(positions)
    np.add.at(forces, i, pair_force)
    np.add.at(forces, j, -pair_force)
    return energy, forces


class UFFLennardJones(Calculator):
    """ASE calculator for :func:`lj_energy_forces`."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = lj_energy_forces(self.atoms.numbers, self.atoms.positions)
        self.results = {"energy": energy, "forces": forces}


class LJLabeler(Labeler):
    method = fidelity = "lj"
    level_of_theory = "Lennard-Jones (UFF parameters)"

    def prepare(self, atoms) -> None:
        check_elements(atoms, set(UFF), self.method)

    def make_calculator(self):
        return UFFLennardJones()
