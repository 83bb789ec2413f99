"""Build a force field, save it, and drive ASE molecular dynamics with it.

    python examples/ethanol_calculator.py --backend mace --out model.ckpt
    python examples/ethanol_calculator.py --backend egnn --data tests/fixtures/ethanol_gfn2-xtb.extxyz

The model is untrained (training arrives with `asteroid train`), so its energies mean
nothing yet; what this shows is the plumbing a trained model uses: checkpoint ->
AsteroidCalculator -> ASE Langevin MD, and energy conservation in NVE (forces are the
exact gradient of the energy). Reference energies and scale come from --data if given.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from ase import units
from ase.build import molecule
from ase.io import write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary
from ase.md.verlet import VelocityVerlet

from ase_asteroid import AsteroidCalculator, save_checkpoint
from ase_asteroid.data import fit_energy_references, force_rms, read_dataset
from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
from simulations.langevin import maxwell_boltzmann_velocities


def make_model(backend: str, data_path: str | None, dtype: torch.dtype):
    config = (MACEConfig if backend == "mace" else EGNNConfig)(species=(1, 6, 8))
    model = build_model(config, seed=0, dtype=dtype)
    if data_path:
        data = read_dataset(data_path)
        model.set_normalization(fit_energy_references(data), scale=force_rms(data))
    return model


def nve_drift(atoms, timestep_fs: float, steps: int) -> float:
    """Largest |E_total(t) - E_total(0)| (eV) over a velocity-Verlet run."""
    total = lambda: atoms.get_potential_energy() + atoms.get_kinetic_energy()
    start, worst = total(), 0.0
    dyn = VelocityVerlet(atoms, timestep_fs * units.fs)
    for _ in range(steps):
        dyn.run(1)
        worst = max(worst, abs(total() - start))
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["mace", "egnn"], default="mace")
    parser.add_argument("--data", help="labelled data to fit reference energies and scale to")
    parser.add_argument("--out", default="model.ckpt")
    parser.add_argument("--langevin-steps", type=int, default=100)
    parser.add_argument("--nve-steps", type=int, default=200)
    parser.add_argument("--nve-timestep-fs", type=float, default=0.1)
    parser.add_argument("--float64", action="store_true", help="run in double precision")
    args = parser.parse_args(argv)

    dtype = torch.float64 if args.float64 else torch.float32
    path = save_checkpoint(make_model(args.backend, args.data, dtype), args.out)
    atoms = molecule("CH3CH2OH")
    write("ethanol.xyz", atoms)
    atoms.calc = AsteroidCalculator(path)
    atoms.set_velocities(maxwell_boltzmann_velocities(atoms.get_masses(), 300, np.random.default_rng(0)))
    Stationary(atoms)
    start = time.perf_counter()
    Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False,
             rng=np.random.default_rng(0)).run(args.langevin_steps)
    elapsed = time.perf_counter() - start
    print(f"{args.backend}: {args.langevin_steps} Langevin steps (0.5 fs, 300 K) in {elapsed:.2f} s, "
          f"final T = {atoms.get_temperature():.0f} K")
    drift = nve_drift(atoms, args.nve_timestep_fs, args.nve_steps)
    print(f"{args.backend}: NVE {args.nve_steps} x {args.nve_timestep_fs} fs, max |ΔE_total| = "
          f"{drift * 1e3:.4f} meV ({drift * 1e3 / len(atoms):.5f} meV/atom), dtype {dtype}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
