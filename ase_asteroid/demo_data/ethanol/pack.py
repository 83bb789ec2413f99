"""Pack the labelled extxyz files of make_ethanol.sh into the compact npz files shipped here.

sGDML layout (R, z, E, F, theory) in kcal/mol and kcal/mol/Å like the MD17 files, plus
``idx``: each configuration's frame index in its GAFF2 trajectory, which pairs the
fidelities. R and F are stored as float32 (1e-7 relative precision) to keep the package small.
"""

import sys
from pathlib import Path

import numpy as np

from ase_asteroid import units
from ase_asteroid.labels.runner import read_done

THEORY = {"gaff2": "GAFF2", "gfn2-xtb": "GFN2-xTB", "b3lyp": "B3LYP/6-31G*"}


def pack(source: Path, target: Path, theory: str) -> None:
    frames = read_done(source)
    np.savez_compressed(
        target,
        R=np.array([a.positions for a in frames], dtype=np.float32),
        z=frames[0].numbers,
        E=units.from_eV([a.get_potential_energy() for a in frames], "kcal/mol"),
        F=units.from_eV_per_A(np.array([a.get_forces() for a in frames]), "kcal/mol/Å").astype(np.float32),
        idx=np.array([a.info["source_index"] for a in frames]),
        theory=np.array(theory), name=np.array("ethanol"))
    print(f"{target.name}: {len(frames)} configurations, {target.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    raw = Path(sys.argv[1])
    here = Path(__file__).parent
    for part, prefix in (("configs", "ethanol"), ("test_configs", "ethanol_test")):
        for method, theory in THEORY.items():
            pack(raw / f"{part}_{method}.extxyz", here / f"{prefix}_{method}.npz", theory)
