"""Batched MD vs serial ASE Langevin: throughput with the same model.

    python bench/md_throughput.py --replicas 20 --steps 40 --write docs/benchmarks.md

Aspirin (21 atoms, first configuration of the shared MD17 CCSD test file, or RDKit if
absent), 500 K. Serial: ASE's Langevin with AsteroidCalculator at 0.5 fs, one run after
the other, one calculator call per step. Batched: simulations.batched with all replicas
in one force evaluation per step; sweep: the default 5 step sizes x the replicas in one
batch, as `asteroid-md stability` runs them. Divergence checks stay on in every path, with
thresholds wide enough that the untrained models used here keep every run alive (so all
do the same number of steps). The paths alternate over several rounds, so that a change
in the machine's load hits them alike.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from docs_section import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17" / "aspirin_ccsd-test.npz"


def aspirin():
    from ase import Atoms
    if DATA.exists():
        from ase_asteroid.data import read_dataset
        c = read_dataset(DATA)[0]
        return Atoms(numbers=c.numbers, positions=c.positions)
    from ase_asteroid.labels.gaff2 import atoms_from_rdkit, rdkit_molecule
    return atoms_from_rdkit(rdkit_molecule(smiles="CC(=O)OC1=CC=CC=C1C(=O)O"))


def measure(backend: str, replicas: int, steps: int, rounds: int, sweep_fs: tuple[float, ...]) -> dict:
    """Run-steps per second of the serial path, the batched replicas and the batched sweep
    (every step size of `sweep_fs` x the replicas), alternated over `rounds` so that the paths
    see the same machine load; medians, and the range of the speed-ups."""
    import torch
    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
    from simulations.batched import BatchedLangevin, RunSpec, model_forces
    from simulations.divergence import DivergenceCriteria, DivergenceMonitor
    from simulations.langevin import LangevinParameters, ase_langevin, maxwell_boltzmann_velocities

    start = aspirin()
    config = (MACEConfig if backend == "mace" else EGNNConfig)(species=(1, 6, 8))
    model = build_model(config, seed=0, dtype=torch.float32).eval()
    loose = DivergenceCriteria(bond_deviation_A=100, max_distance_increase_A=100, max_temperature_factor=1e6)
    params = LangevinParameters(0.5, 500)

    def serial() -> float:
        t0 = time.perf_counter()
        for replica in range(replicas):
            atoms = start.copy()
            atoms.calc = AsteroidCalculator(model)
            rng = np.random.default_rng(replica)
            atoms.set_velocities(maxwell_boltzmann_velocities(atoms.get_masses(), 500, rng))
            monitor, dyn = DivergenceMonitor(start, 500, loose), ase_langevin(atoms, params, rng)
            for _ in range(steps):
                dyn.run(1)
                monitor.check(atoms.positions, atoms.get_forces(), atoms.get_velocities())
        return replicas * steps / (time.perf_counter() - t0)

    def batched(step_sizes_fs=(0.5,)) -> float:
        specs = [RunSpec(LangevinParameters(dt, 500), steps, seed=r) for dt in step_sizes_fs for r in range(replicas)]
        t0 = time.perf_counter()
        BatchedLangevin(start, model_forces(model, start.numbers), specs, loose).run(progress=False)
        return len(specs) * steps / (time.perf_counter() - t0)

    batched()  # warm-up: the first calls of MACE's TorchScript'd parts are slow
    rates = {"serial": [], "batched": [], "sweep": []}
    for _ in range(rounds):
        rates["serial"].append(serial())
        rates["batched"].append(batched())
        rates["sweep"].append(batched(sweep_fs))
    speedups = [b / s for b, s in zip(rates["batched"], rates["serial"])]
    return {"backend": backend, **{k: float(np.median(v)) for k, v in rates.items()},
            "speedup": float(np.median(speedups)), "speedup_range": (min(speedups), max(speedups)),
            "sweep_speedup": float(np.median([b / s for b, s in zip(rates["sweep"], rates["serial"])])),
            "sweep_runs": len(sweep_fs) * replicas,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["mace", "egnn"], choices=["mace", "egnn"])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    import torch
    from simulations.stability import SweepConfig
    sweep_fs = SweepConfig.step_sizes_fs  # asteroid-md stability's default sweep
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = [f"Aspirin, {args.replicas} replicas x {args.steps} steps at 500 K, float32, "
             f"{torch.get_num_threads()} threads; untrained default models. Medians of {args.rounds} rounds that "
             "alternate the paths (range of the speed-up over the rounds in brackets). Sweep: the default "
             f"{len(sweep_fs)} step sizes x {args.replicas} replicas in one batch, as "
             "`asteroid-md stability` runs them. The full default sweep (1 ps: 4000 steps at 0.25 fs) "
             "takes at most 4000 sweep steps (runs that finish or diverge drop out of the batch).", "",
             "| model | serial ASE (run-steps/s) | batched replicas (run-steps/s) | speed-up | "
             "sweep batch (run-steps/s) | sweep speed-up | full default sweep, upper bound | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for backend in args.backends:
        r = measure(backend, args.replicas, args.steps, args.rounds, sweep_fs)
        print(r, flush=True)
        bound_h = 4000 * r["sweep_runs"] / r["sweep"] / 3600
        low, high = r["speedup_range"]
        lines.append(f"| {backend} | {r['serial']:.1f} | {r['batched']:.1f} | {r['speedup']:.1f}x ({low:.1f}-{high:.1f}) | "
                     f"{r['sweep']:.1f} | {r['sweep_speedup']:.1f}x | {bound_h:.1f} h | {r['peak_rss_MB']:.0f} |")
    report("\n".join(lines), "md-throughput",
           "python bench/md_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]), args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
