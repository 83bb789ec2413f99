"""The labeler interface: a level of theory that gives energies (eV) and forces (eV/Å).

A labeler is small and picklable (it travels to worker processes and Dask workers); its
ASE calculator is built lazily, once per process. ``prepare(atoms)`` runs once in the
parent before any labelling, so bad input fails before work starts.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


class LabelError(ValueError):
    """A method cannot label this input (unknown method, element it cannot handle, ...)."""


class Labeler:
    """Base class. Subclasses set ``method``, ``fidelity``, ``level_of_theory`` and
    implement ``make_calculator``; ``prepare`` may check or set up per-molecule data."""

    method: str = ""
    fidelity: str = ""
    level_of_theory: str = ""

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_calculator", None)  # rebuilt in each process
        return state

    def prepare(self, atoms: Atoms) -> None:
        """Check (and set up for) the molecule before labelling; LabelError if unsupported."""

    def make_calculator(self) -> Calculator:
        raise NotImplementedError

    @property
    def calculator(self) -> Calculator:
        if getattr(self, "_calculator", None) is None:
            self._calculator = self.make_calculator()
        return self._calculator

    def label(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """(energy in eV, forces [n, 3] in eV/Å) of one configuration."""
        work = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        work.calc = self.calculator
        return float(work.get_potential_energy()), np.array(work.get_forces())


def check_elements(atoms: Atoms, allowed: set[int], method: str) -> None:
    """LabelError naming the elements `method` cannot handle."""
    bad = sorted(set(atoms.get_chemical_symbols()[i] for i, z in enumerate(atoms.numbers)
                     if int(z) not in allowed))
    if bad:
        raise LabelError(f"method {method!r} cannot handle element(s) {', '.join(bad)}")
