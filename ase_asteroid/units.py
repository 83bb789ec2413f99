"""The one place where units are converted.

Inside the package everything is in ASE's units: energies in eV, lengths in Å,
forces in eV/Å, time in fs, temperature in K. Files and reports may use other
units; they are converted here, on the way in and on the way out, and nowhere else.

The MD17 family of files (sGDML, rMD17) stores kcal/mol and kcal/mol/Å.
1 eV = 23.0605480 kcal/mol (ASE's CODATA 2014 constants).
"""

from __future__ import annotations

import numpy as np
from ase import units as _ase

#: Energy units, in eV per unit.
ENERGY_UNITS: dict[str, float] = {
    "eV": 1.0,
    "meV": 1e-3,
    "kcal/mol": _ase.kcal / _ase.mol,
    "kJ/mol": _ase.kJ / _ase.mol,
    "Hartree": _ase.Hartree,
}

#: Length units, in Å per unit.
LENGTH_UNITS: dict[str, float] = {"Å": 1.0, "Bohr": _ase.Bohr, "nm": 10.0}

_LENGTH_ALIASES = {"A": "Å", "Ang": "Å", "Angstrom": "Å", "angstrom": "Å", "bohr": "Bohr"}
_ENERGY_ALIASES = {"ev": "eV", "hartree": "Hartree", "Ha": "Hartree", "kcal/mol": "kcal/mol"}


def _lookup(unit: str, table: dict[str, float], aliases: dict[str, str], kind: str) -> float:
    name = aliases.get(unit, unit)
    if name not in table:
        known = ", ".join(table)
        raise ValueError(f"unknown {kind} unit {unit!r}; known: {known}")
    return table[name]


def energy_factor(unit: str) -> float:
    """eV per `unit` (e.g. ``energy_factor("kcal/mol") == 0.04336...``)."""
    return _lookup(unit, ENERGY_UNITS, _ENERGY_ALIASES, "energy")


def length_factor(unit: str) -> float:
    """Å per `unit`."""
    return _lookup(unit, LENGTH_UNITS, _LENGTH_ALIASES, "length")


def force_factor(unit: str) -> float:
    """eV/Å per `unit`, where `unit` is written ``"<energy>/<length>"``, e.g. ``"kcal/mol/Å"``."""
    energy, sep, length = unit.rpartition("/")
    if not sep or not energy:
        raise ValueError(f"force unit {unit!r} must look like 'energy/length', e.g. 'kcal/mol/Å'")
    return energy_factor(energy) / length_factor(length)


def to_eV(values, unit: str) -> np.ndarray:
    """Energies in `unit` -> eV."""
    return np.asarray(values, dtype=np.float64) * energy_factor(unit)


def to_eV_per_A(values, unit: str) -> np.ndarray:
    """Forces in `unit` (``"energy/length"``) -> eV/Å."""
    return np.asarray(values, dtype=np.float64) * force_factor(unit)


def to_A(values, unit: str) -> np.ndarray:
    """Lengths in `unit` -> Å."""
    return np.asarray(values, dtype=np.float64) * length_factor(unit)


def from_eV(values, unit: str) -> np.ndarray:
    """Energies in eV -> `unit`."""
    return np.asarray(values, dtype=np.float64) / energy_factor(unit)


def from_eV_per_A(values, unit: str) -> np.ndarray:
    """Forces in eV/Å -> `unit` (``"energy/length"``), e.g. ``"kcal/mol/Å"`` for MD17 tables."""
    return np.asarray(values, dtype=np.float64) / force_factor(unit)
