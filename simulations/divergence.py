"""Divergence criteria, checked as a run goes so that a diverged run stops at once.

- ``non_finite``: NaN or inf in positions or forces;
- ``max_distance`` (the ASTEROID paper's): the largest interatomic distance exceeds that of
  the starting structure by more than ``max_distance_increase_A``;
- ``bond`` (Fu et al. 2023, "Forces are not enough"): some bond — bonds from ASE's natural
  cutoffs of the starting structure — deviates from its starting length by more than
  ``bond_deviation_A`` (default 0.5 Å);
- ``temperature``: the instantaneous temperature exceeds ``max_temperature_factor`` times
  the bath temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import NeighborList, natural_cutoffs

from .langevin import kinetic_temperature_K


@dataclass(frozen=True)
class DivergenceCriteria:
    """Thresholds: bond_deviation_A (Å), max_distance_increase_A (Å), max_temperature_factor (×T)."""

    bond_deviation_A: float = 0.5
    max_distance_increase_A: float = 2.0
    max_temperature_factor: float = 5.0

    def __post_init__(self) -> None:
        for name in ("bond_deviation_A", "max_distance_increase_A", "max_temperature_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def bonds_of(atoms: Atoms) -> np.ndarray:
    """[n_bonds, 2] atom pairs bonded by ASE's natural cutoffs (covalent radii)."""
    neighbours = NeighborList(natural_cutoffs(atoms), self_interaction=False, bothways=False)
    neighbours.update(atoms)
    pairs = [(i, int(j)) for i in range(len(atoms)) for j in neighbours.get_neighbors(i)[0]]
    return np.array(sorted(pairs), dtype=int).reshape(-1, 2)


class DivergenceMonitor:
    """Checks one run against its starting structure; ``check`` returns a reason or None."""

    def __init__(self, start: Atoms, temperature_K: float, criteria: DivergenceCriteria = DivergenceCriteria()):
        self.criteria = criteria
        self.masses = start.get_masses()
        self.symbols = start.get_chemical_symbols()
        self.bonds = bonds_of(start)
        self.bond_lengths = self._bond_lengths(start.positions)
        self.max_distance = self._max_distance(start.positions)
        self.max_temperature_K = criteria.max_temperature_factor * temperature_K

    def _bond_lengths(self, positions: np.ndarray) -> np.ndarray:
        return np.linalg.norm(positions[self.bonds[:, 0]] - positions[self.bonds[:, 1]], axis=1)

    @staticmethod
    def _max_distance(positions: np.ndarray) -> float:
        return float(np.max(np.linalg.norm(positions[:, None] - positions[None], axis=-1)))

    def bond_deviation(self, positions: np.ndarray) -> float:
        """Largest |bond length - starting length| (Å); 0 for a molecule without bonds."""
        return self._worst_bond(positions)[1]

    def _worst_bond(self, positions: np.ndarray) -> tuple[int, float]:
        """(index into self.bonds, its |length - starting length| in Å) of the bond that deviates most."""
        if len(self.bonds) == 0:
            return -1, 0.0
        deviations = np.abs(self._bond_lengths(positions) - self.bond_lengths)
        worst = int(np.argmax(deviations))
        return worst, float(deviations[worst])

    def check(self, positions: np.ndarray, forces: np.ndarray, velocities: np.ndarray) -> str | None:
        """The first criterion that fires, as a short reason, or None if the run is fine."""
        if not (np.isfinite(positions).all() and np.isfinite(forces).all()):
            return "non_finite"
        worst, deviation = self._worst_bond(positions)
        if deviation > self.criteria.bond_deviation_A:
            i, j = self.bonds[worst]
            return (f"bond: {self.symbols[i]}-{self.symbols[j]} (atoms {i}-{j}) deviation {deviation:.2f} Å > "
                    f"{self.criteria.bond_deviation_A} Å")
        growth = self._max_distance(positions) - self.max_distance
        if growth > self.criteria.max_distance_increase_A:
            return f"max_distance: +{growth:.2f} Å > {self.criteria.max_distance_increase_A} Å"
        temperature = kinetic_temperature_K(velocities, self.masses)
        if temperature > self.max_temperature_K:
            return f"temperature: {temperature:.0f} K > {self.max_temperature_K:.0f} K"
        return None
