"""Test-time refinement: the LJ prior, joint training, radius refinement and test-time training."""

import hashlib

import numpy as np
import pytest
import torch

from ase_asteroid import AsteroidCalculator, cli, load_checkpoint
from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.graph import batch_configurations
from ase_asteroid.labels.lj import lj_energy_forces
from ase_asteroid.refinement.prior import PRIOR_FIDELITY, LJPrior, prior_labelled
from ase_asteroid.refinement.radius import choose_cutoff, laplacian_spectrum
from ase_asteroid.refinement.refine import refine_model
from ase_asteroid.refinement.ttt import TTTSettings, adapt_to_structures
from conftest import FIXTURES, train_with_prior


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """A tiny EGNN trained jointly with a fitted LJ prior head (accurate: GFN2-xTB fixture)."""
    return train_with_prior(tmp_path_factory.mktemp("joint"), "lj", train=25, val=10, epochs=3, batch_size=5)


def test_lj_prior_matches_the_uff_labeller_and_its_forces_are_the_gradient(xtb_data):
    prior = LJPrior(xtb_data.species).double()
    batch = batch_configurations(xtb_data[:2], 1.0).to(dtype=torch.float64)
    energy, forces = prior(batch)
    reference_energy, reference_forces = lj_energy_forces(xtb_data[0].numbers, xtb_data[0].positions)
    assert float(energy[0]) == pytest.approx(reference_energy, rel=1e-12)
    assert np.allclose(forces[:9].numpy(), reference_forces, atol=1e-9)
    prior.fit(xtb_data)  # also after fitting: analytic forces = -dE/dr (central differences)
    positions = batch.positions.clone()
    _, forces = prior(batch)
    delta, numeric = 1e-5, torch.zeros_like(positions)
    for atom in range(4):
        for axis in range(3):
            shifted = []
            for sign in (1, -1):
                moved = positions.clone()
                moved[atom, axis] += sign * delta
                batch.positions = moved
                shifted.append(prior(batch)[0].sum())
            numeric[atom, axis] = -(shifted[0] - shifted[1]) / (2 * delta)
    assert torch.allclose(forces[:4], numeric[:4], rtol=1e-6, atol=1e-8)


def test_fitting_the_prior_to_forces_beats_uff_and_a_zero_force_prior(xtb_data):
    prior = LJPrior(xtb_data.species)
    result = prior.fit(xtb_data)
    batch = batch_configurations(xtb_data, 1.0).to(dtype=torch.float64)
    fitted = float(((prior.double()(batch)[1] - batch.forces) ** 2).mean().sqrt())   # measured here
    zero = float((batch.forces ** 2).mean().sqrt())        # a prior predicting no forces: 0.98 eV/Å
    assert fitted == pytest.approx(result["force_rmse_fitted_eV_per_A"], rel=1e-4)
    assert fitted < 0.7 * zero                              # the fit reaches 0.53 eV/Å
    assert result["force_rmse_fitted_eV_per_A"] < 0.01 * result["force_rmse_uff_eV_per_A"]


def _points(coordinates):
    return np.array([[x, y, 0.0] for x, y in coordinates])


@pytest.mark.parametrize("n", [4, 7])
def test_laplacian_spectrum_of_a_path_and_a_ring(n):
    path = _points([(i, 0) for i in range(n)])
    expected_path = 1 - np.cos(np.pi * np.arange(n) / (n - 1))
    assert np.allclose(np.sort(laplacian_spectrum(path, 1.5)), np.sort(expected_path), atol=1e-12)
    angles = 2 * np.pi * np.arange(n) / n
    radius = 1 / (2 * np.sin(np.pi / n))  # neighbours 1 Å apart
    ring = _points(zip(radius * np.cos(angles), radius * np.sin(angles)))
    second_neighbour = 2 * radius * np.sin(2 * np.pi / n)
    expected_ring = 1 - np.cos(2 * np.pi * np.arange(n) / n)
    assert np.allclose(np.sort(laplacian_spectrum(ring, (1 + second_neighbour) / 2)), np.sort(expected_ring),
                       atol=1e-12)


def test_radius_refinement_keeps_the_trained_cutoff_in_distribution(joint, xtb_data):
    model = load_checkpoint(joint)
    assert model.extras.graph_spectrum["cutoff_A"] == 4.0
    for config in xtb_data[25:30]:  # held-out structures of the training distribution
        assert choose_cutoff(model.extras.graph_spectrum, [config.positions])[0] == 4.0
    stretched = [c.positions * 1.25 for c in xtb_data[25:30]]  # same graphs need a larger cutoff
    chosen, distances = choose_cutoff(model.extras.graph_spectrum, stretched)
    assert chosen > 4.0 and distances[chosen] < distances[4.0]


def test_with_cutoff_rescales_the_radial_basis(joint, xtb_data):
    model = load_checkpoint(joint).double()
    batch = batch_configurations(xtb_data[:2], 4.0)
    same = model.with_cutoff(4.0)(batch)["forces"]
    assert torch.allclose(same, model(batch)["forces"])
    wider = model.with_cutoff(5.0)
    assert wider.cutoff == 5.0 and model.cutoff == 4.0
    assert not torch.allclose(wider(batch_configurations(xtb_data[:2], 5.0))["forces"], same)


def test_ttt_lowers_the_prior_loss_and_never_changes_the_checkpoint(joint, lj_data):
    digest = hashlib.sha256(joint.read_bytes()).hexdigest()
    model = load_checkpoint(joint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted, report = adapt_to_structures(model, lj_data[:3], TTTSettings(steps=20, lr=1e-3, gate=0))
    assert report["adapted"] and report["prior_loss_after"] < report["prior_loss_before"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    changed = {k for k, v in adapted.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and not any("readout" in k for k in changed)  # heads frozen, representation adapted
    assert hashlib.sha256(joint.read_bytes()).hexdigest() == digest


def test_training_stores_the_prior_loss_that_gates_ttt(joint, lj_data):
    """The checkpoint holds the prior head's loss on its training structures; TTT with the
    default gate leaves a model alone on structures like those, and adapts it on structures
    whose prior loss exceeds gate × that reference."""
    model = load_checkpoint(joint)
    reference = model.extras.prior_train_loss
    assert reference is not None and reference > 0
    structures = lj_data[:3]
    same, report = adapt_to_structures(model, structures)
    assert same is model and report["adapted"] is False and report["prior_loss_train"] == reference
    assert report["prior_loss_before"] == report["prior_loss_after"] <= TTTSettings().gate * reference
    model.extras.prior_train_loss = report["prior_loss_before"] / (2 * TTTSettings().gate)  # as if far from training
    adapted, report = adapt_to_structures(model, structures, TTTSettings(steps=5, lr=1e-3))
    assert adapted is not model and report["adapted"] and report["prior_loss_after"] < report["prior_loss_before"]
    model.extras.prior_train_loss = None  # a checkpoint from before the gate: always adapted
    assert adapt_to_structures(model, structures, TTTSettings(steps=1))[1]["adapted"]


def test_prior_head_is_trained_jointly(joint, xtb_data):
    model = load_checkpoint(joint)
    assert model.fidelities[-1] == PRIOR_FIDELITY and model.fidelity_heads == {"gfn2-xtb": 0, PRIOR_FIDELITY: 1}
    assert model.extras.prior is not None and model.extras.prior.parameters_by_pair()["H-C"]["r_min_A"] < 1.3  # fitted
    labelled = prior_labelled(xtb_data[25:35], model.extras.prior)
    from ase_asteroid.training.loop import errors
    prior_head_error = errors(model, labelled)["force_mae_eV_per_A"]
    assert prior_head_error < np.mean([np.abs(c.forces).mean() for c in labelled])  # better than predicting 0


def test_refine_options_through_the_cli_and_the_calculator(joint, capsys):
    data = str(FIXTURES / "ethanol_lj.extxyz")
    assert cli.main(["evaluate", str(joint), "--data", data, "--refine", "radius+ttt", "--ttt-steps", "5",
                     "--ttt-gate", "0"]) == 0
    out = capsys.readouterr().out
    assert "refined (radius+ttt): cutoff" in out and "test-time training: prior loss" in out
    from simulations import cli as md_cli
    assert md_cli.main(["run", str(joint), "--molecule", data, "--steps", "5", "--refine", "ttt",
                        "--ttt-steps", "3", "--ttt-every", "2", "--ttt-gate", "0"]) == 0
    atoms = read_dataset(data)[0].to_atoms()
    atoms.calc = AsteroidCalculator(joint, refine="ttt", ttt_steps=3, ttt_every=2, ttt_gate=0)
    for shift in range(4):
        atoms.positions[0, 0] += 0.01 * shift
        atoms.get_forces()
    assert [r["call"] for r in atoms.calc.refinements] == [0, 2]


def test_refining_a_model_without_prior_or_spectrum_is_a_clear_error(xtb_data):
    from conftest import tiny_model
    with pytest.raises(ValueError, match="needs a model trained jointly with a prior head"):
        refine_model(tiny_model("egnn", xtb_data), xtb_data[:1], "ttt")
    with pytest.raises(ValueError, match="needs the training graphs' spectrum"):
        refine_model(tiny_model("egnn", xtb_data), xtb_data[:1], "radius")


def test_stability_sweep_refines_each_model(joint, tmp_path, monkeypatch):
    """The sweep's runs use the refined model: refinement is called for the sweep's
    molecule, and the trajectory differs from the same sweep without it."""
    from simulations import cli as md_cli
    from simulations.stability import read_rows
    data = str(FIXTURES / "ethanol_lj.extxyz")
    import ase_asteroid.predictor as predictor
    calls, original = [], predictor.refine_model
    monkeypatch.setattr(predictor, "refine_model", lambda model, structures, *a: calls.append(
        (structures[0].positions.copy(), a[0])) or original(model, structures, *a))
    argv = ["stability", str(joint), "--molecule", data, "--step-sizes-fs", "0.5", "--replicas", "1",
            "--time-ps", "0.005", "--ttt-steps", "2", "--ttt-gate", "0", "--temperature-K", "300"]
    assert md_cli.main(argv + ["--refine", "radius+ttt", "--out", str(tmp_path / "sweep")]) == 0
    assert md_cli.main(argv + ["--out", str(tmp_path / "plain")]) == 0
    assert len(calls) == 1 and calls[0][1].name == "radius+ttt"
    assert np.allclose(calls[0][0], read_dataset(data)[0].positions)
    refined, plain = (read_rows(tmp_path / name / "runs.jsonl") for name in ("sweep", "plain"))
    assert len(refined) == len(plain) == 1 and refined[0]["seed"] == plain[0]["seed"]
    assert not np.allclose(refined[0]["trace"], plain[0]["trace"], rtol=1e-6, atol=0)


def test_the_prior_is_fitted_on_every_molecule_not_only_the_first_listed(xtb_data):
    """Configurations past `max_configurations` of the first molecule must not crowd out the
    others: a pair kind only the second molecule has (N-H here) is fitted, not left at UFF's
    r0 (2.9 Å for N-H, deep in the repulsive wall at a 1 Å bond: forces of 10^4 eV/Å)."""
    nitrogen = [c.with_(numbers=np.where(c.numbers == 8, 7, c.numbers)) for c in xtb_data]
    data = Dataset(list(xtb_data) + nitrogen)
    prior = LJPrior(data.species)
    uff = prior.parameters_by_pair()["H-N"]["r_min_A"]
    prior.fit(data, steps=50, max_configurations=len(xtb_data))
    fitted = prior.parameters_by_pair()["H-N"]["r_min_A"]
    assert uff > 2.5 and fitted < 1.5
