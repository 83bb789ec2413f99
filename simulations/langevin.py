"""Langevin dynamics in explicit units, step for step the same as ASE's ``Langevin``.

ASE's integrator (Vanden-Eijnden & Ciccotti 2006, as in ase.md.langevin, fixcm=False)
per step, with forces F, masses m, timestep dt, friction γ and k_B T:

    σ = √(2 k_B T γ / m)
    c1 = dt/2 - dt² γ/8,  c2 = dt γ/2 - dt² γ²/8,  c3 = √dt σ/2 - dt^1.5 γ σ/8,
    c5 = dt^1.5 σ / (2√3),  c4 = γ c5 / 2
    ξ, η ~ N(0, 1)                       (drawn in this order, shape [n, 3])
    v ← v + c1 F/m - c2 v + (c3 ξ - c4 η)
    x ← x + dt v + c5 η
    v ← (x_new - x_old - c5 η)/dt;  F ← F(x_new)
    v ← v + c1 F/m - c2 v + (c3 ξ - c4 η)

Times here are in ASE's internal unit (1 fs = ase.units.fs); user-facing names carry
fs, K and 1/fs. The ASTEROID paper's friction, 0.002 in ASE's inverse time unit, is
0.002 · units.fs = 1.965e-4 per fs (:data:`PAPER_FRICTION_PER_FS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import units

PAPER_FRICTION_PER_FS = 0.002 * units.fs


@dataclass(frozen=True)
class LangevinParameters:
    """timestep_fs: step (fs); temperature_K: bath (K); friction_per_fs: γ (1/fs)."""

    timestep_fs: float
    temperature_K: float
    friction_per_fs: float = PAPER_FRICTION_PER_FS

    def __post_init__(self) -> None:
        for name in ("timestep_fs", "temperature_K"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.friction_per_fs >= 0:
            raise ValueError(f"friction_per_fs must be non-negative, got {self.friction_per_fs}")

    @property
    def dt(self) -> float:
        """Timestep in ASE time units."""
        return self.timestep_fs * units.fs

    @property
    def friction(self) -> float:
        """Friction in ASE inverse time units (what ase.md.langevin.Langevin takes)."""
        return self.friction_per_fs / units.fs

    def coefficients(self, masses: np.ndarray) -> tuple:
        """(c1, c2, c3 [n, 1], c4 [n, 1], c5 [n, 1]) of ASE's Langevin for `masses` (amu)."""
        dt, fr = self.dt, self.friction
        sigma = np.sqrt(2 * units.kB * self.temperature_K * fr / masses)[:, None]
        c1 = dt / 2.0 - dt * dt * fr / 8.0
        c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
        c3 = np.sqrt(dt) * sigma / 2.0 - dt ** 1.5 * fr * sigma / 8.0
        c5 = dt ** 1.5 * sigma / (2 * np.sqrt(3))
        return c1, c2, c3, fr / 2.0 * c5, c5


def maxwell_boltzmann_velocities(masses: np.ndarray, temperature_K: float,
                                 rng: np.random.Generator) -> np.ndarray:
    """Velocities [n, 3] (ASE units) from the Maxwell-Boltzmann distribution at `temperature_K`."""
    sigma = np.sqrt(units.kB * temperature_K / masses)[:, None]
    return rng.standard_normal((len(masses), 3)) * sigma


def kinetic_temperature_K(velocities: np.ndarray, masses: np.ndarray) -> float:
    """Instantaneous temperature 2 E_kin / (3 N k_B) (K), as ASE's get_temperature()."""
    kinetic = 0.5 * np.sum(masses[:, None] * velocities ** 2)
    return float(2 * kinetic / (3 * len(masses) * units.kB))


def ase_langevin(atoms, params: LangevinParameters, rng: np.random.Generator):
    """ASE's own Langevin integrator with these parameters (the serial reference path)."""
    from ase.md.langevin import Langevin

    return Langevin(atoms, params.dt, temperature_K=params.temperature_K, friction=params.friction,
                    fixcm=False, rng=rng)
