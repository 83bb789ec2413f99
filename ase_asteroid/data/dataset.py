"""Configurations and datasets, always in eV and Å."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols


class DataError(ValueError):
    """A data file or dataset is malformed; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Configuration:
    """One labelled (or unlabelled) structure.

    numbers: [n] atomic numbers; positions: [n, 3] Å; energy: eV or None;
    forces: [n, 3] eV/Å or None; fidelity: level-of-theory label such as
    ``"ccsd(t)"``, ``"pbe"`` or ``"gfn2-xtb"``; weight: loss weight (default 1);
    cell: [3, 3] Å or None; pbc: three booleans.
    """

    numbers: np.ndarray
    positions: np.ndarray
    energy: float | None = None
    forces: np.ndarray | None = None
    fidelity: str = "unknown"
    weight: float = 1.0
    cell: np.ndarray | None = None
    pbc: tuple[bool, bool, bool] = (False, False, False)

    def __post_init__(self) -> None:
        n = len(self.numbers)
        if np.shape(self.positions) != (n, 3):
            raise DataError(f"positions have shape {np.shape(self.positions)}, expected ({n}, 3)")
        if self.forces is not None and np.shape(self.forces) != (n, 3):
            raise DataError(f"forces have shape {np.shape(self.forces)}, expected ({n}, 3)")
        if any(p for p in self.pbc) and self.cell is None:
            raise DataError("a periodic configuration needs a cell")

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def with_(self, **changes) -> "Configuration":
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_atoms(self) -> Atoms:
        """An ase.Atoms (labels, if any, in ``info``/``arrays`` as eV and eV/Å)."""
        atoms = Atoms(numbers=self.numbers, positions=self.positions,
                      cell=self.cell, pbc=self.pbc)
        atoms.info["fidelity"] = self.fidelity
        atoms.info["weight"] = self.weight
        if self.energy is not None:
            atoms.info["energy"] = self.energy
        if self.forces is not None:
            atoms.arrays["forces"] = np.array(self.forces)
        return atoms

    @property
    def formula(self) -> str:
        return Atoms(numbers=self.numbers).get_chemical_formula()


@dataclass(eq=False)
class Dataset(Sequence):
    """An ordered collection of configurations with where they came from.

    source: file(s) or description; source_units: the units of the file before
    conversion (e.g. ``{"energy": "kcal/mol", "forces": "kcal/mol/Å"}``).
    """

    configurations: list[Configuration]
    source: str = ""
    source_units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.configurations)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        return self.configurations[index]

    def __iter__(self) -> Iterator[Configuration]:
        return iter(self.configurations)

    def subset(self, indices) -> "Dataset":
        """The configurations at `indices` (any iterable of ints), in that order."""
        return Dataset([self.configurations[int(i)] for i in indices],
                       self.source, dict(self.source_units))

    def __add__(self, other: "Dataset") -> "Dataset":
        source = " + ".join(s for s in (self.source, other.source) if s)
        return Dataset(self.configurations + other.configurations, source,
                       {**other.source_units, **self.source_units})

    @property
    def species(self) -> tuple[int, ...]:
        """Sorted atomic numbers present."""
        return tuple(sorted({int(z) for c in self for z in c.numbers}))

    @property
    def fidelities(self) -> tuple[str, ...]:
        """Fidelity labels present, in order of first appearance."""
        return tuple(dict.fromkeys(c.fidelity for c in self))

    def with_fidelity(self, fidelity: str) -> "Dataset":
        """Only the configurations of one fidelity."""
        return self.subset(i for i, c in enumerate(self) if c.fidelity == fidelity)

    def content_hash(self) -> str:
        """sha256 over numbers, positions and labels: identifies the data in a checkpoint's history."""
        digest = hashlib.sha256()
        for c in self:
            for array in (c.numbers, c.positions, c.forces):
                if array is not None:
                    digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
            digest.update(repr((c.energy, c.fidelity, c.weight)).encode())
        return digest.hexdigest()


def element_symbol(z: int) -> str:
    """'H' for 1; 'Z=200' for numbers ASE does not know."""
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"
