"""A Lennard-Jones labeler with UFF per-element parameters (the formula: ase_asteroid/lj.py)
over all pairs of the molecule (no exclusions, no cutoff). It is a microsecond-cheap,
deliberately crude fidelity: bonded pairs sit deep in the repulsive wall.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..lj import UFF, pair_terms, uff_pair_parameters
from .base import Labeler, check_elements


def lj_energy_forces(numbers, positions) -> tuple[float, np.ndarray]:
    """UFF Lennard-Jones energy (eV) and forces (eV/Å) over all atom pairs (see ase_asteroid.lj)."""
    numbers = np.asarray(numbers)
    i, j = np.triu_indices(len(numbers), 1)
    pair_energy, pull = pair_terms(positions[j] - positions[i], *uff_pair_parameters(numbers[i], numbers[j]))
    forces = np.zeros_like(positions)
    np.add.at(forces, i, pull)
    np.add.at(forces, j, -pull)
    return float(np.sum(pair_energy)), forces


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
