"""Energy along one stretched bond: where a model's potential flattens that the reference's does not.

A stability sweep tells which bond breaks (``bond: O-H (atoms 9-13) ...``); this tells why.
Atom J is moved along the I→J direction (every other atom stays), so the bond length runs
over the starting length + each stretch; each model's energy there, relative to its energy
at the start, is compared with a reference method's. A model whose curve levels off where the
reference keeps rising lets the bond come apart once a run puts that much energy into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from ase_asteroid.figures import pyplot as _pyplot
from ase_asteroid.figures import save_figure


def stretched(molecule: Atoms, i: int, j: int, stretches_A: Sequence[float]) -> np.ndarray:
    """Positions [S, n, 3] (Å): atom j moved along i→j so that |r_j − r_i| = start + stretch."""
    n = len(molecule)
    if not (0 <= i < n and 0 <= j < n) or i == j:
        raise ValueError(f"--bond {i} {j}: two different atoms of the molecule's {n} (0-based) are needed")
    start = molecule.positions
    direction = start[j] - start[i]
    length = float(np.linalg.norm(direction))
    if length + min(stretches_A) <= 0:
        raise ValueError(f"a stretch of {min(stretches_A):g} Å would put atom {j} on or past atom {i} "
                         f"(bond length {length:.3f} Å)")
    positions = np.repeat(start[None], len(stretches_A), axis=0)
    positions[:, j] = start[i] + direction / length * (length + np.asarray(stretches_A, float))[:, None]
    return positions


def bond_scan(predictors: dict, molecule: Atoms, i: int, j: int, stretches_A: Sequence[float]) -> dict[str, np.ndarray]:
    """{name: energies (eV) relative to the unstretched molecule} for each predictor (a
    Predictor or MethodPredictor: anything with predict(numbers, positions))."""
    positions = np.concatenate([molecule.positions[None], stretched(molecule, i, j, stretches_A)])
    curves = {}
    for name, predictor in predictors.items():
        energies, _ = predictor.predict(molecule.numbers, positions)
        curves[name] = np.asarray(energies[1:], float) - float(energies[0])
    return curves


def format_scan(curves: dict[str, np.ndarray], stretches_A: Sequence[float], molecule: Atoms, i: int, j: int) -> str:
    """A markdown table: one row per stretch, one column per model (energy rise, eV)."""
    symbols = molecule.get_chemical_symbols()
    length = molecule.get_distance(i, j)
    names = list(curves)
    lines = [f"Energy rise (eV) as the {symbols[i]}-{symbols[j]} bond (atoms {i}-{j}, {length:.3f} Å at the start) "
             "is stretched, atom j moved along the bond, every other atom fixed.", "",
             "| stretch (Å) | length (Å) | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for k, s in enumerate(stretches_A):
        lines.append(f"| {s:+.2f} | {length + s:.3f} | " + " | ".join(f"{curves[n][k]:.3f}" for n in names) + " |")
    return "\n".join(lines)


def plot_scan(curves: dict[str, np.ndarray], stretches_A: Sequence[float], molecule: Atoms, i: int, j: int,
              path: Path) -> None:
    plt = _pyplot()
    symbols = molecule.get_chemical_symbols()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    lengths = molecule.get_distance(i, j) + np.asarray(stretches_A, float)
    for name, energies in curves.items():
        ax.plot(lengths, energies, "o-", markersize=4, label=name)
    ax.set_xlabel(f"{symbols[i]}-{symbols[j]} bond length, atoms {i}-{j} (Å)")
    ax.set_ylabel("energy rise (eV)")
    ax.legend(fontsize=8)
    save_figure(fig, path)
