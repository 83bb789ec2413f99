"""One Langevin MD run through ASE (``asteroid-md run``), stopped at divergence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from tqdm import tqdm

from .divergence import DivergenceCriteria, DivergenceMonitor
from .langevin import LangevinParameters, ase_langevin, maxwell_boltzmann_velocities


@dataclass
class MDResult:
    steps_completed: int
    stable: bool
    reason: str
    time_ps: float


def run_md(atoms: Atoms, calculator, params: LangevinParameters, steps: int, seed: int = 0,
           traj: str | None = None, traj_every: int = 10, criteria: DivergenceCriteria = DivergenceCriteria(),
           progress: bool = True) -> MDResult:
    """Langevin MD of `atoms` with `calculator`, checking divergence after every step."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    monitor = DivergenceMonitor(atoms, params.temperature_K, criteria)
    atoms.set_velocities(maxwell_boltzmann_velocities(atoms.get_masses(), params.temperature_K, rng))
    dyn = ase_langevin(atoms, params, rng)
    writer = None
    if traj:
        from ase.io.trajectory import Trajectory
        writer = Trajectory(traj, "w", atoms)
        dyn.attach(writer.write, interval=traj_every)
    reason = ""
    with tqdm(total=steps, desc="MD", unit="step", disable=not progress) as bar:
        for step in range(1, steps + 1):
            dyn.run(1)
            bar.update(1)
            reason = monitor.check(atoms.positions, atoms.get_forces(), atoms.get_velocities()) or ""
            if reason:
                break
    if writer is not None:
        writer.close()
    return MDResult(step, not reason, reason, step * params.timestep_fs / 1000.0)
