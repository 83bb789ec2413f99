"""Training throughput of our fit() loop vs mace-torch's own trainer (mace_run_train), same
MACE size, same data, same dtype, batch size and thread count, in the same run.

    python bench/training_throughput.py --molecule ethanol --write docs/benchmarks.md

Data: the first 250 configurations of the shared MD17 CCSD(T)/CCSD train file (train) and the
next 50 (validation, evaluated every epoch by both). Model: MACE, 32 channels, L = 1 (hidden
irreps 32x0e + 32x1o), max_ell 3, correlation 3, 2 interactions, r_max 5 Å. Each trainer runs
for 1 and for 1 + E epochs in separate processes; configurations per second =
E x 250 / (difference in wall time), which removes start-up and set-up costs from both.
Rounds alternate between the two trainers, so load from other jobs affects both alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from docs_section import report
from mace_peer import e0s_argument, train_command

FILES = {"ethanol": "ethanol_ccsd_t-train.npz", "aspirin": "aspirin_ccsd-train.npz"}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17"


def write_extxyz(molecule: str, folder: Path) -> tuple[Path, Path]:
    from ase_asteroid.data import read_dataset
    from ase_asteroid.labels.runner import write_frames

    data = read_dataset(DATA / FILES[molecule])
    paths = []
    for name, part in (("train", data.subset(range(250))), ("valid", data.subset(range(250, 300)))):
        frames = []
        for c in part:
            atoms = c.to_atoms()
            atoms.info["REF_energy"], atoms.arrays["REF_forces"] = c.energy, c.forces
            frames.append(atoms)
        paths.append(folder / f"{name}.extxyz")
        write_frames(paths[-1], frames)
    return tuple(paths)


def run_mace(molecule: str, train: Path, valid: Path, epochs: int, dtype: str, folder: Path) -> float:
    from ase_asteroid.data import read_dataset
    e0s = e0s_argument(read_dataset(DATA / FILES[molecule]).subset(range(250)))
    command = train_command("peer", train, valid, e0s, epochs, dtype, folder)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=folder)
    return time.perf_counter() - start


def run_ours(molecule: str, epochs: int, dtype: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--ours", str(epochs), "--dtype", dtype, "--molecule", molecule],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def ours_in_process(molecule: str, epochs: int, dtype: str) -> None:
    import torch

    from ase_asteroid.data import read_dataset
    from ase_asteroid.models import MACEConfig
    from ase_asteroid.training.loop import fit
    from ase_asteroid.training.recipes import recipe
    from ase_asteroid.training.stages import new_model

    data = read_dataset(DATA / FILES[molecule])
    train, val = data.subset(range(250)), data.subset(range(250, 300))
    model = new_model(MACEConfig(species=data.species), train, dtype=getattr(torch, dtype))
    fit(model, train, val, recipe("mace", "scratch", {"epochs": epochs, "batch_size": 10}), progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecule", choices=list(FILES), default="ethanol")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--extra-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ours", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    if args.ours:
        ours_in_process(args.molecule, args.ours, args.dtype)
        return 0
    rates = {"ours": [], "mace_run_train": []}
    with tempfile.TemporaryDirectory() as tmp:
        train, valid = write_extxyz(args.molecule, Path(tmp))
        for _ in range(args.rounds):
            for who in rates:
                times = []
                for epochs in (1, 1 + args.extra_epochs):
                    folder = Path(tmp) / f"{who}{epochs}"
                    folder.mkdir(exist_ok=True)
                    times.append(run_ours(args.molecule, epochs, args.dtype) if who == "ours"
                                 else run_mace(args.molecule, train, valid, epochs, args.dtype, folder))
                rates[who].append(args.extra_epochs * 250 / (times[1] - times[0]))
                print(f"{who}: {rates[who][-1]:.1f} configurations/s", file=sys.stderr, flush=True)
    ours, peer = np.median(rates["ours"]), np.median(rates["mace_run_train"])
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    text = (f"{args.molecule}, MACE 32x0e+32x1o, {args.dtype}, batch 10, 250 train + 50 validation every epoch, "
            f"OMP_NUM_THREADS={threads}, median of {args.rounds} rounds of (1 vs {1 + args.extra_epochs} epochs).\n\n"
            "| trainer | configurations/s | ratio to mace_run_train |\n|---|---|---|\n"
            f"| ase_asteroid fit() | {ours:.1f} | {ours / peer:.2f} |\n| mace_run_train | {peer:.1f} | 1.00 |\n\n"
            f"All rounds: ours {[round(r, 1) for r in rates['ours']]}, mace_run_train "
            f"{[round(r, 1) for r in rates['mace_run_train']]}; peak RSS of this driver "
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB (largest child).")
    report(text, f"training-throughput-{args.molecule}",
           f"python bench/training_throughput.py --molecule {args.molecule} --dtype {args.dtype}", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
