"""Where configurations come from: GAFF2 MD in OpenMM, normal-mode sampling, MD with any
labeler through ASE. Every sampler is seeded and returns a list of ase.Atoms (Å)."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from tqdm import tqdm

from .base import Labeler, LabelError


def _check(n: int, every: int, temperature_K: float, timestep_fs: float = 1.0) -> None:
    for name, value in (("n", n), ("every", every), ("temperature_K", temperature_K),
                        ("timestep_fs", timestep_fs)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def sample_gaff2_md(mol, n: int, temperature_K: float, every: int = 20, timestep_fs: float = 0.5,
                    friction_per_ps: float = 1.0, warmup_steps: int = 2000, seed: int = 0,
                    charge: int = 0, progress: bool = True) -> list[Atoms]:
    """Langevin MD of an RDKit molecule with GAFF2 (OpenMM, Reference platform, vacuum,
    no constraints); a frame every `every` steps after `warmup_steps`."""
    import openmm
    from openmm import unit

    from .gaff2 import atoms_from_rdkit, openmm_system, parametrize, reference_context

    _check(n, every, temperature_K, timestep_fs)
    start = atoms_from_rdkit(mol)
    _, system = openmm_system(parametrize(mol, charge))
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed + 1)  # OpenMM treats 0 as "pick one at random"
    context = reference_context(system, integrator)
    context.setPositions(start.positions * 0.1)
    context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed + 1)
    integrator.step(warmup_steps)
    frames = []
    for _ in tqdm(range(n), desc="GAFF2 MD", unit="frame", disable=not progress):
        integrator.step(every)
        positions = context.getState(getPositions=True).getPositions(asNumpy=True)
        frames.append(Atoms(numbers=start.numbers, positions=np.asarray(positions.value_in_unit(unit.angstrom))))
    return frames


def sample_labeler_md(atoms: Atoms, labeler: Labeler, n: int, temperature_K: float, every: int = 20,
                      timestep_fs: float = 0.5, friction_per_fs: float = 0.01, warmup_steps: int = 200,
                      seed: int = 0, progress: bool = True) -> list[Atoms]:
    """Langevin MD through ASE driven by any labeler (e.g. GFN2-xTB)."""
    from ase.md.langevin import Langevin

    _check(n, every, temperature_K, timestep_fs)
    labeler.prepare(atoms)
    atoms = Atoms(numbers=atoms.numbers, positions=atoms.positions)
    atoms.calc = labeler.calculator
    rng = np.random.default_rng(seed)
    masses = atoms.get_masses()[:, None]
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * units.kB * temperature_K))
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    dyn.run(warmup_steps)
    frames = []
    for _ in tqdm(range(n), desc=f"{labeler.method} MD", unit="frame", disable=not progress):
        dyn.run(every)
        frames.append(Atoms(numbers=atoms.numbers, positions=atoms.positions.copy()))
    return frames


def normal_modes(atoms: Atoms, labeler: Labeler, delta_A: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues λ [3N] (eV/Å²/amu) and mass-weighted eigenvectors [3N, 3N] of the
    Hessian (central differences of the labeler's forces) at `atoms`."""
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    for k in range(3 * n):
        forces = []
        for sign in (1.0, -1.0):
            displaced = atoms.copy()
            displaced.positions[k // 3, k % 3] += sign * delta_A
            forces.append(labeler.label(displaced)[1].reshape(-1))
        hessian[k] = -(forces[0] - forces[1]) / (2 * delta_A)
    hessian = 0.5 * (hessian + hessian.T)
    inv_sqrt_mass = np.repeat(1.0 / np.sqrt(atoms.get_masses()), 3)
    return np.linalg.eigh(hessian * np.outer(inv_sqrt_mass, inv_sqrt_mass))


def sample_normal_modes(atoms: Atoms, labeler: Labeler, n: int, temperature_K: float, seed: int = 0,
                        fmax_eV_per_A: float = 1e-3, progress: bool = True) -> list[Atoms]:
    """Boltzmann sampling of the harmonic approximation around a minimum.

    The structure is relaxed with `labeler` (BFGS to `fmax_eV_per_A`); with mass-weighted
    Hessian eigenpairs (λ_k, v_k), each vibrational mode gets an amplitude
    q_k ~ N(0, k_B T / λ_k) and the displacement is Δx = M^{-1/2} Σ_k q_k v_k (Å). The six
    (five for a linear molecule) lowest modes, rotations and translations, are skipped.
    """
    from ase.optimize import BFGS

    _check(n, 1, temperature_K)
    labeler.prepare(atoms)
    minimum = Atoms(numbers=atoms.numbers, positions=atoms.positions)
    minimum.calc = labeler.calculator
    BFGS(minimum, logfile=None).run(fmax=fmax_eV_per_A, steps=500)
    eigenvalues, vectors = normal_modes(minimum, labeler)
    rigid = 5 if _is_linear(minimum.positions) else 6
    vib = np.argsort(np.abs(eigenvalues))[rigid:]
    if np.any(eigenvalues[vib] <= 0):
        raise LabelError(f"{np.sum(eigenvalues[vib] <= 0)} imaginary vibrational mode(s): the relaxed "
                         "structure is not a minimum")
    rng = np.random.default_rng(seed)
    inv_sqrt_mass = np.repeat(1.0 / np.sqrt(minimum.get_masses()), 3)
    sigma = np.sqrt(units.kB * temperature_K / eigenvalues[vib])
    frames = []
    for _ in tqdm(range(n), desc="normal modes", unit="frame", disable=not progress):
        q = rng.normal(size=len(vib)) * sigma
        displacement = (inv_sqrt_mass * (vectors[:, vib] @ q)).reshape(-1, 3)
        frames.append(Atoms(numbers=minimum.numbers, positions=minimum.positions + displacement))
    return frames


def _is_linear(positions: np.ndarray) -> bool:
    centered = positions - positions.mean(axis=0)
    return np.linalg.svd(centered, compute_uv=False)[1] < 1e-3
