"""The one inference path: the calculator, `asteroid evaluate` and batched MD (the
stability sweep and `asteroid-md run`) give the same energies and forces for the same
checkpoint, head and Δ baseline; and importing the calculator loads no training code."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ase_asteroid import AsteroidCalculator, save_checkpoint
from ase_asteroid.data import Dataset, fit_energy_references
from ase_asteroid.evaluation import evaluate
from ase_asteroid.labels.lj import lj_energy_forces
from ase_asteroid.models import build_model
from ase_asteroid.predictor import Predictor, predictor_for
from conftest import TINY_CONFIGS, tiny_model
from simulations import cli as md_cli
from simulations.stability import SweepConfig, force_function


@pytest.fixture
def delta_checkpoint(xtb_data, tmp_path):
    model = tiny_model("egnn", xtb_data)
    model.extras.delta_baseline = "lj"
    return save_checkpoint(model, tmp_path / "delta.ckpt")


def _displaced(atoms, seed: int) -> np.ndarray:
    return atoms.positions + np.random.default_rng(seed).normal(0, 0.05, atoms.positions.shape)


def test_delta_checkpoint_gives_the_same_forces_everywhere(delta_checkpoint, xtb_data):
    molecule = xtb_data[0].to_atoms()
    replicas = np.stack([_displaced(molecule, 1), _displaced(molecule, 2)])
    reference = []
    for positions in replicas:
        atoms = molecule.copy()
        atoms.positions = positions
        atoms.calc = AsteroidCalculator(delta_checkpoint)
        reference.append((atoms.get_potential_energy(), atoms.get_forces()))
    forces = np.array([f for _, f in reference])
    model_only = Predictor.from_checkpoint(delta_checkpoint)
    model_only.baseline = None
    assert np.abs(model_only.predict(molecule.numbers, replicas)[1] - forces).max() > 1e-2  # the baseline matters
    lj = np.array([lj_energy_forces(molecule.numbers, p)[1] for p in replicas])
    assert np.allclose(forces, model_only.predict(molecule.numbers, replicas)[1] + lj, atol=1e-10)
    md_step = force_function(str(delta_checkpoint), molecule, SweepConfig())(replicas)  # what the sweep steps with
    assert np.allclose(md_step, forces, rtol=0, atol=1e-10)
    labelled = Dataset([xtb_data[0].with_(positions=p, energy=e, forces=f) for p, (e, f) in zip(replicas, reference)])
    result = evaluate(Predictor.from_checkpoint(delta_checkpoint), labelled)
    assert result["force_mae_meV_per_A"] < 1e-6 and result["energy_mae_meV"] < 1e-6
    assert result["delta_baseline"] == "lj"


@pytest.fixture
def two_head_checkpoint(xtb_data, lj_data, tmp_path):
    model = build_model(replace(TINY_CONFIGS["egnn"], num_heads=2), seed=0, dtype=torch.float64)
    model.set_normalization({**fit_energy_references(xtb_data), **fit_energy_references(lj_data)})
    return save_checkpoint(model, tmp_path / "heads.ckpt"), model.fidelities


def test_stability_head_chooses_the_head(two_head_checkpoint, xtb_data, tmp_path, capsys):
    path, (first, second) = two_head_checkpoint
    molecule = xtb_data[0].to_atoms()
    atoms = molecule.copy()
    atoms.calc = AsteroidCalculator(path, head=second)
    sweep = force_function(str(path), molecule, SweepConfig(head=second))(molecule.positions[None])[0]
    default = force_function(str(path), molecule, SweepConfig())(molecule.positions[None])[0]
    assert np.allclose(sweep, atoms.get_forces(), rtol=0, atol=1e-10)
    assert not np.allclose(sweep, default, rtol=0, atol=1e-6)
    argv = ["stability", str(path), "--molecule", str(tmp_path / "m.xyz"), "--step-sizes-fs", "0.5",
            "--replicas", "1", "--time-ps", "0.002", "--out", str(tmp_path / "out")]
    molecule.write(tmp_path / "m.xyz")
    assert md_cli.build_parser().parse_args(argv + ["--head", second]).head == second
    assert md_cli.main(argv + ["--head", "no-such-head"]) == 1
    assert "unknown fidelity 'no-such-head'" in capsys.readouterr().err
    assert md_cli.main(argv + ["--head", second]) == 0


def test_replicas_in_one_batch_equal_one_at_a_time(xtb_data):
    predictor = Predictor(tiny_model("mace", xtb_data))
    molecule = xtb_data[1].to_atoms()
    replicas = np.stack([_displaced(molecule, s) for s in range(3)])
    energies, forces = predictor.predict(molecule.numbers, replicas)
    for k, positions in enumerate(replicas):
        energy, force = predictor.predict(molecule.numbers, positions)
        assert energies[k] == pytest.approx(energy[0], abs=1e-9) and np.allclose(forces[k], force[0], atol=1e-9)


def test_bad_structures_are_named(xtb_data):
    predictor = Predictor(tiny_model("egnn", xtb_data))
    molecule = xtb_data[0].to_atoms()
    positions = molecule.positions.copy()
    positions[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite positions for atom\(s\) \[2\]"):
        predictor.predict(molecule.numbers, positions)
    numbers = molecule.numbers.copy()
    numbers[4] = 17
    with pytest.raises(ValueError, match=r"never trained on Cl \(atom 4\)"):
        predictor.predict(numbers, molecule.positions)


def test_reference_methods_answer_through_the_same_interface(xtb_data):
    molecule = xtb_data[0].to_atoms()
    energies, forces = predictor_for("lj").predict(molecule.numbers, molecule.positions)
    energy, force = lj_energy_forces(molecule.numbers, molecule.positions)
    assert energies[0] == pytest.approx(energy) and np.allclose(forces[0], force)
    with pytest.raises(ValueError, match="reference method"):
        predictor_for("lj", fidelity="x")


def test_importing_the_calculator_loads_no_training_code():
    code = ("import sys, ase_asteroid.calculator, ase_asteroid.predictor, ase_asteroid.evaluation; "
            "print(sorted(m for m in sys.modules if m.startswith('ase_asteroid.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_refinement_imports_no_training_code():
    code = ("import sys, ase_asteroid.refinement.refine; "
            "print(sorted(m for m in sys.modules if m.startswith('ase_asteroid.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_package_never_imports_simulations():
    """DESIGN.md: simulations imports ase_asteroid, never the reverse (the campaign runs
    `asteroid-md` as a program); checked on the source, so lazy imports count too."""
    import ast
    from pathlib import Path

    import ase_asteroid
    upward = []
    for path in Path(ase_asteroid.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            upward += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "simulations"]
    assert upward == []
