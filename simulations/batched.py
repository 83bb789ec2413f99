"""Many Langevin runs of one molecule advanced together: one batched force evaluation per
step for every run still alive. Each run has its own timestep and random stream, and
follows exactly the arithmetic of ASE's Langevin (see langevin.py), so a run here matches
the serial ASE run with the same seed to floating-point tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from ase import Atoms
from tqdm import tqdm

from .divergence import DivergenceCriteria, DivergenceMonitor
from .langevin import LangevinParameters, kinetic_temperature_K, maxwell_boltzmann_velocities

#: positions [R, n, 3] Å -> forces [R, n, 3] eV/Å
ForceFunction = Callable[[np.ndarray], np.ndarray]


def model_forces(model, numbers: np.ndarray, fidelity: str | None = None) -> ForceFunction:
    """Batched forces of an ase_asteroid ForceField through its Predictor (all runs in one
    graph batch, the Δ baseline added for a Δ-learning model)."""
    from ase_asteroid.predictor import Predictor

    return Predictor(model, fidelity).force_function(Atoms(numbers=numbers))


@dataclass(frozen=True)
class RunSpec:
    """One run: Langevin parameters, number of steps, seed, and whether to keep its frames."""

    params: LangevinParameters
    steps: int
    seed: int | Sequence[int]
    keep_frames: bool = False


@dataclass
class RunResult:
    """What happened to one run. time_ps is when it stopped (diverged or finished)."""

    spec: RunSpec
    stable: bool = True
    steps_completed: int = 0
    reason: str = ""
    trace: list[tuple[float, float, float]] = field(default_factory=list)  # (time_ps, T_K, bond dev Å)
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def time_ps(self) -> float:
        return self.steps_completed * self.spec.params.timestep_fs / 1000.0


class BatchedLangevin:
    """Advance many runs of `start` together. ``forces`` evaluates [R, n, 3] positions."""

    def __init__(self, start: Atoms, forces: ForceFunction, specs: Sequence[RunSpec],
                 criteria: DivergenceCriteria = DivergenceCriteria(), record_every: int = 10) -> None:
        if not specs:
            raise ValueError("no runs to simulate")
        self.start, self.force_function, self.specs = start, forces, list(specs)
        self.masses = start.get_masses()
        self.record_every = record_every
        self.monitors = [DivergenceMonitor(start, s.params.temperature_K, criteria) for s in specs]
        self.rngs = [np.random.default_rng(s.seed) for s in specs]
        self.results = [RunResult(s) for s in specs]
        coefficients = [s.params.coefficients(self.masses) for s in specs]
        self.c1, self.c2 = (np.array([c[k] for c in coefficients])[:, None, None] for k in (0, 1))
        self.c3, self.c4, self.c5 = (np.array([c[k] for c in coefficients]) for k in (2, 3, 4))
        self.dt = np.array([s.params.dt for s in specs])[:, None, None]
        self.positions = np.repeat(start.positions[None], len(specs), axis=0).astype(np.float64)
        self.velocities = np.array([maxwell_boltzmann_velocities(self.masses, s.params.temperature_K, rng)
                                    for s, rng in zip(specs, self.rngs)])
        self.forces = self.force_function(self.positions)

    def alive(self) -> np.ndarray:
        return np.array([r.stable and r.steps_completed < r.spec.steps for r in self.results])

    def step(self, runs: np.ndarray) -> int:
        """One Langevin step of the runs with these indices (one force evaluation for all);
        returns the steps that runs diverging now will not take."""
        m = self.masses[None, :, None]
        noise = np.array([[rng.standard_normal((len(self.masses), 3)) for _ in range(2)]
                          for rng in (self.rngs[i] for i in runs)])
        xi, eta = noise[:, 0], noise[:, 1]
        c1, c2, c3, c4, c5, dt = self.c1[runs], self.c2[runs], self.c3[runs], self.c4[runs], self.c5[runs], self.dt[runs]
        rnd_pos, rnd_vel = c5 * eta, c3 * xi - c4 * eta
        v = self.velocities[runs] + c1 * self.forces[runs] / m - c2 * self.velocities[runs] + rnd_vel
        x_old = self.positions[runs]
        x = x_old + dt * v + rnd_pos
        v = (x - x_old - rnd_pos) / dt
        with np.errstate(all="ignore"):
            f = self.force_function(x)
        v = v + c1 * f / m - c2 * v + rnd_vel
        self.positions[runs], self.velocities[runs], self.forces[runs] = x, v, f
        return sum(self._after_step(i, x[k], f[k], v[k]) for k, i in enumerate(runs))

    def _after_step(self, i: int, x, f, v) -> int:
        result = self.results[i]
        result.steps_completed += 1
        reason = self.monitors[i].check(x, f, v)
        if result.steps_completed % self.record_every == 0 or reason:
            trace_deviation = self.monitors[i].bond_deviation(x) if np.isfinite(x).all() else float("nan")
            result.trace.append((result.time_ps, kinetic_temperature_K(v, self.masses), trace_deviation))
            if result.spec.keep_frames:
                result.frames.append(x.copy())
        if reason:
            result.stable, result.reason = False, reason
            return result.spec.steps - result.steps_completed
        return 0

    def run(self, progress: bool = True, description: str = "MD",
            on_finish: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
        """Step until every run has finished or diverged; ``on_finish(index, result)`` is
        called for each run as soon as it stops (so its result can be saved at once)."""
        total = sum(s.steps for s in self.specs)
        with tqdm(total=total, desc=description, unit="step", disable=not progress) as bar:
            while (alive := np.flatnonzero(self.alive())).size:
                skipped = self.step(alive)
                bar.update(len(alive) + skipped)
                if on_finish is not None:
                    for i in np.setdiff1d(alive, np.flatnonzero(self.alive())):
                        on_finish(int(i), self.results[i])
        return self.results
