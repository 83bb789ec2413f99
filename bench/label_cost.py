"""CPU-seconds per label of each labelling method on ethanol and aspirin.

    python bench/label_cost.py --write docs/benchmarks.md

Geometries: RDKit embedding (MMFF) of the SMILES, then small random displacements
(0.02 Å, seeded) so each call is a fresh configuration. CPU time (process_time, all
threads) per label, median over the repeats; one-off set-up (GAFF2 parametrisation,
the first call) is excluded. The ratios to GFN2-xTB are what ASTEROID's budgets use.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from docs_section import report  # bench/ is on sys.path when run as a script

MOLECULES = {"ethanol": "CCO", "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O"}
#: method -> repeats per molecule (None: skip that molecule, too costly here)
METHODS = {"lj": (20, 20), "gaff2": (20, 20), "gfn1-xtb": (10, 10), "gfn2-xtb": (10, 10),
           "pyscf:b3lyp/6-31g*": (3, 2), "pyscf:mp2/6-31g*": (2, None), "pyscf:ccsd(t)/6-31g": (1, None)}


def cost(method: str, atoms, repeats: int, seed: int = 0) -> float:
    from ase_asteroid.labels import get_labeler

    labeler = get_labeler(method)
    labeler.prepare(atoms)
    labeler.label(atoms)  # set-up and warm-up
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(repeats):
        moved = atoms.copy()
        moved.positions += rng.normal(scale=0.02, size=moved.positions.shape)
        start = time.process_time()
        labeler.label(moved)
        times.append(time.process_time() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    from ase_asteroid.labels.gaff2 import atoms_from_rdkit, rdkit_molecule

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    molecules = {name: atoms_from_rdkit(rdkit_molecule(smiles=s)) for name, s in MOLECULES.items()}
    rows = []
    for method, repeats in METHODS.items():
        seconds = {}
        for (name, atoms), n in zip(molecules.items(), repeats):
            seconds[name] = cost(method, atoms, n) if n else None
            print(method, name, seconds[name], flush=True)
        rows.append((method, seconds))
    xtb = dict(rows)["gfn2-xtb"]
    lines = ["| method | ethanol CPU-s/label | × GFN2-xTB | aspirin CPU-s/label | × GFN2-xTB |", "|---|---|---|---|---|"]
    for method, seconds in rows:
        cells = []
        for name in MOLECULES:
            s = seconds[name]
            cells += ["not run", ""] if s is None else [f"{s:.3g}", f"{s / xtb[name]:.3g}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    report("Median CPU-seconds per label (all threads), RDKit geometries displaced by 0.02 Å.\n\n" + "\n".join(lines),
           "label-cost", f"python bench/label_cost.py --write {args.write}", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
