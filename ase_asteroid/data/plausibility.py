"""Does a dataset look like it is in the units it was read in? A warning, not an error:
an MD17-style npz written in eV, or an extxyz written in kcal/mol, reads without complaint
in the assumed unit and gives errors 23x off. Two checks, in eV and eV/Å after conversion:

* forces: the 95th percentile of the per-atom |F|. Molecules sampled at 300-1000 K (MD17,
  rMD17, xTB, DFT) give 3-5 eV/Å, soft force fields (LJ) ~0.5; a kcal/mol/Å file read as
  eV/Å gives ~90, an eV/Å file read as kcal/mol/Å ~0.15. Plausible: 0.25..25 eV/Å.
* energies: |E| of a structure cannot exceed its atoms' total energies, bounded here by
  the Thomas-Fermi estimate 0.7687 Z^(7/3) Hartree per atom (above the true values for
  every element) times 1.5; a kcal/mol file read as eV exceeds it 15-fold.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import units as _ase

#: Plausible 95th percentile of per-atom force magnitudes (eV/Å), whatever the method.
FORCE_P95_RANGE_eV_PER_A = (0.25, 25.0)


class UnitWarning(UserWarning):
    """Labels look like they are in a different unit than the one they were read in."""


def energy_bound_eV(numbers) -> float:
    """An upper bound of |total energy| (eV) of a structure of these atoms."""
    z = np.asarray(numbers, dtype=float)
    return 1.5 * float(np.sum(0.7687 * z ** (7 / 3))) * _ase.Hartree


def unit_problems(configs, energy_unit: str, force_unit: str) -> list[str]:
    """What looks wrong with the labels of `configs` (already converted to eV, eV/Å) given
    the units they were read in; empty if nothing does."""
    problems = []
    forces = [c.forces for c in configs if c.forces is not None and len(c.numbers) > 1]
    if forces:
        p95 = float(np.percentile(np.linalg.norm(np.concatenate(forces), axis=1), 95))
        low, high = FORCE_P95_RANGE_eV_PER_A
        if not low <= p95 <= high:
            problems.append(f"forces read as {force_unit} have a 95th-percentile |F| per atom of {p95:.3g} eV/Å, "
                            f"outside the {low:g}..{high:g} eV/Å of sampled molecules (near-equilibrium "
                            "geometries can be smaller)")
    worst = max((abs(c.energy) / energy_bound_eV(c.numbers) for c in configs if c.energy is not None), default=0.0)
    if worst > 1:
        problems.append(f"energies read as {energy_unit} reach {worst:.3g} times the largest possible total "
                        "energy of their atoms")
    return problems


def warn_if_implausible(configs, source: str, energy_unit: str, force_unit: str) -> None:
    """UnitWarning naming the file, what looks wrong, and the option that fixes it."""
    problems = unit_problems(configs, energy_unit, force_unit)
    if problems:
        warnings.warn(f"{source}: {'; '.join(problems)}. If the file is in other units, say so with "
                      "energy_unit/force_unit (--energy-unit/--force-unit), e.g. 'eV' and 'eV/Å' or "
                      "'kcal/mol' and 'kcal/mol/Å'", UnitWarning, stacklevel=3)
