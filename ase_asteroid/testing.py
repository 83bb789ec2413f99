"""Conformance kit: physics checks every ForceField must pass.

Each ``check_*`` function raises AssertionError with a message that says what broke,
and returns the measured error so callers can report it. Used by the project's tests for
every backend; usable on any user model the same way.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data.dataset import Configuration
from .graph import batch_configurations
from .models import ForceField


def _predict(model: ForceField, configs: Sequence[Configuration]) -> tuple[np.ndarray, np.ndarray]:
    out = model(batch_configurations(configs, model.cutoff))
    return out["energy"].detach().double().numpy(), out["forces"].detach().double().numpy()


def _float64(model: ForceField) -> ForceField:
    return copy.deepcopy(model).to(torch.float64).eval()


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check_finite_difference_forces(model: ForceField, config: Configuration,
                                   delta_A: float = 1e-5, rtol: float = 1e-6) -> float:
    """Forces equal the central finite difference -[E(r+δ) - E(r-δ)]/2δ of the energy, in
    float64, for every Cartesian component; returns the relative error (norm ratio).
    The constant reference energies are zeroed first: they cannot change the forces, and
    their size (hundreds of eV) would drown the differences in round-off."""
    model = _float64(model)
    model.atomic_energies.zero_()
    fd = np.zeros_like(config.positions)
    for index in np.ndindex(*config.positions.shape):
        energies = []
        for sign in (1.0, -1.0):
            positions = config.positions.copy()
            positions[index] += sign * delta_A
            energies.append(_predict(model, [config.with_(positions=positions)])[0][0])
        fd[index] = -(energies[0] - energies[1]) / (2 * delta_A)
    forces = _predict(model, [config])[1]
    error = _relative(forces, fd)
    assert error < rtol, f"forces differ from finite differences of the energy: relative error {error:.2e} >= {rtol:.0e}"
    return error


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix [3, 3]."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def check_invariances(model: ForceField, config: Configuration, seed: int = 0,
                      rtol: float = 1e-9) -> float:
    """Energy invariant and forces covariant under a random rotation, translation and
    permutation of the atoms (float64); returns the largest relative error."""
    model, rng = _float64(model), np.random.default_rng(seed)
    energy, forces = _predict(model, [config])
    rotation, translation = random_rotation(rng), rng.normal(scale=3.0, size=3)
    perm = rng.permutation(config.n_atoms)
    cases = {
        "rotation": (config.with_(positions=config.positions @ rotation.T), forces @ rotation.T),
        "translation": (config.with_(positions=config.positions + translation), forces),
        "permutation": (config.with_(positions=config.positions[perm], numbers=config.numbers[perm]),
                        forces[perm]),
    }
    worst = 0.0
    for name, (moved, expected_forces) in cases.items():
        e, f = _predict(model, [moved])
        e_error = abs(e[0] - energy[0]) / max(abs(energy[0]), 1e-300)
        f_error = _relative(f, expected_forces)
        assert e_error < rtol and f_error < rtol, (
            f"not invariant under {name}: energy error {e_error:.2e}, force error {f_error:.2e}")
        worst = max(worst, e_error, f_error)
    return worst


def check_batched_equals_single(model: ForceField, configs: Sequence[Configuration],
                                atol: float = 1e-9) -> float:
    """One batch of all configurations gives the same energies and forces as one at a time."""
    model = _float64(model)
    energy, forces = _predict(model, configs)
    singles = [_predict(model, [c]) for c in configs]
    e_error = np.max(np.abs(energy - np.concatenate([s[0] for s in singles])))
    f_error = np.max(np.abs(forces - np.concatenate([s[1] for s in singles])))
    assert max(e_error, f_error) < atol, (
        f"batched and single predictions differ: energy {e_error:.2e} eV, forces {f_error:.2e} eV/Å")
    return float(max(e_error, f_error))


def check_checkpoint_roundtrip(model: ForceField, configs: Sequence[Configuration]) -> None:
    """Saving and loading gives a model with identical predictions, config and references."""
    from .checkpoint import load_checkpoint, save_checkpoint

    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(model, Path(folder) / "model.ckpt")
        loaded = load_checkpoint(path)
    assert loaded.config == model.config, "config changed in the round trip"
    assert loaded.energy_references == model.energy_references, "energy references changed"
    assert loaded.dtype == model.dtype, f"dtype changed: {model.dtype} -> {loaded.dtype}"
    before, after = _predict(model.eval(), configs), _predict(loaded, configs)
    # Same weights, same arithmetic; only the order of floating-point sums in the backward
    # pass may differ (seen: 3e-16 eV/Å in float64), so allow a few ulps, nothing more.
    ulps = 64 * np.finfo(np.float32 if model.dtype == torch.float32 else np.float64).eps
    for name, a, b in (("energies", before[0], after[0]), ("forces", before[1], after[1])):
        error = float(np.max(np.abs(a - b)))
        assert error <= ulps * max(1.0, float(np.max(np.abs(a)))), (
            f"{name} changed in the checkpoint round trip by {error:.2e}")


def check_calculator_matches_model(model: ForceField, config: Configuration,
                                   atol: float = 1e-6) -> float:
    """AsteroidCalculator on ase.Atoms gives the model's own energy and forces."""
    from .calculator import AsteroidCalculator

    model = model.eval()
    atoms = config.to_atoms()
    atoms.calc = AsteroidCalculator(model)
    energy, forces = _predict(model, [config])
    error = max(abs(atoms.get_potential_energy() - energy[0]),
                float(np.max(np.abs(atoms.get_forces() - forces))))
    assert error < atol, f"calculator and model disagree by {error:.2e}"
    return error


def check_force_field(model: ForceField, configs: Sequence[Configuration]) -> dict[str, float]:
    """Run every check; returns the measured errors by name."""
    return {
        "finite_difference": check_finite_difference_forces(model, configs[0]),
        "invariance": check_invariances(model, configs[0]),
        "batched_vs_single": check_batched_equals_single(model, configs),
        "calculator": check_calculator_matches_model(model, configs[0]),
        "checkpoint": check_checkpoint_roundtrip(model, configs) or 0.0,
    }
