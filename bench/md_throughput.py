"""Batched MD sweep vs serial ASE Langevin: throughput with the same model.

    python bench/md_throughput.py --replicas 20 --steps 40 --write docs/benchmarks.md

Aspirin (21 atoms, first configuration of the shared MD17 CCSD test file, or RDKit if
absent), 500 K, 0.5 fs. Serial: ASE's Langevin with AsteroidCalculator, one run after the
other, one calculator call per step. Batched: simulations.batched with all replicas in
one force evaluation per step. Divergence checks stay on in both, with thresholds wide
enough that the untrained models used here keep every run alive (so both do the same
number of steps). Also: the wall time of one batched step with all runs of the default
sweep alive (5 step sizes x 20 replicas), times the 4000 steps that the 0.25 fs runs of
1 ps need, as an upper bound for the full default sweep (runs that finish or diverge drop
out of the batch, so later steps are cheaper).
"""

from __future__ import annotations

import argparse
import resource
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


def measure(backend: str, replicas: int, steps: int) -> dict:
    import torch
    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
    from simulations.batched import BatchedLangevin, RunSpec, model_forces
    from simulations.divergence import DivergenceCriteria
    from simulations.langevin import LangevinParameters, ase_langevin, maxwell_boltzmann_velocities
    from simulations.divergence import DivergenceMonitor

    start = aspirin()
    config = (MACEConfig if backend == "mace" else EGNNConfig)(species=(1, 6, 8))
    model = build_model(config, seed=0, dtype=torch.float32).eval()
    loose = DivergenceCriteria(bond_deviation_A=100, max_distance_increase_A=100, max_temperature_factor=1e6)
    params = LangevinParameters(0.5, 500)
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
    serial = time.perf_counter() - t0
    specs = [RunSpec(params, steps, seed=r) for r in range(replicas)]
    t0 = time.perf_counter()
    BatchedLangevin(start, model_forces(model, start.numbers), specs, loose).run(progress=False)
    batched = time.perf_counter() - t0
    sweep_specs = [RunSpec(LangevinParameters(dt, 500), 5, seed=r)
                   for dt in (0.25, 0.5, 1.0, 2.0, 3.0) for r in range(20)]
    engine = BatchedLangevin(start, model_forces(model, start.numbers), sweep_specs, loose)
    t0 = time.perf_counter()
    engine.run(progress=False)
    per_sweep_step = (time.perf_counter() - t0) / 5
    return {"backend": backend, "serial_s": serial, "batched_s": batched,
            "run_steps": replicas * steps, "sweep_step_s": per_sweep_step,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    import torch
    lines = [f"Aspirin, {args.replicas} replicas x {args.steps} steps of 0.5 fs at 500 K, float32, "
             f"{torch.get_num_threads()} threads; untrained default models.", "",
             "| model | serial ASE (run-steps/s) | batched (run-steps/s) | speed-up | one step of the full default sweep (100 runs) | full default sweep, upper bound | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for backend in ("mace", "egnn"):
        r = measure(backend, args.replicas, args.steps)
        print(r, flush=True)
        bound_h = r["sweep_step_s"] * 4000 / 3600
        lines.append(f"| {backend} | {r['run_steps'] / r['serial_s']:.1f} | {r['run_steps'] / r['batched_s']:.1f} | "
                     f"{r['serial_s'] / r['batched_s']:.1f}x | {r['sweep_step_s']:.2f} s | {bound_h:.1f} h | {r['peak_rss_MB']:.0f} |")
    report("\n".join(lines), "md-throughput",
           f"python bench/md_throughput.py --replicas {args.replicas} --steps {args.steps} --write {args.write}", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
