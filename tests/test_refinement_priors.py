"""Test-time refinement with a quantum-chemical prior head, size-matched radius refinement,
and test-time training during MD (issue 17)."""

import hashlib

import ase.io
import numpy as np
import pytest

from ase_asteroid import AsteroidCalculator, cli, load_checkpoint, save_checkpoint
from ase_asteroid.data import read_dataset
from ase_asteroid.predictor import Predictor
from ase_asteroid.refinement.prior import MethodPrior, prior_labelled
from ase_asteroid.refinement.radius import choose_cutoff, training_spectra
from ase_asteroid.refinement.refine import refine_model
from ase_asteroid.refinement.settings import RefineSettings, TTTSettings
from conftest import FIXTURES, tiny_model, train_with_prior


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def xtb_joint(tmp_path_factory):
    """A tiny EGNN trained jointly with a GFN2-xTB prior head (accurate: GFN2-xTB fixture)."""
    return train_with_prior(tmp_path_factory.mktemp("xtb_joint"), "gfn2-xtb", train=12, val=4, epochs=2,
                            batch_size=4)


@pytest.mark.parametrize("method", ["gfn2-xtb", "gaff2"])
def test_method_prior_labels_are_those_of_asteroid_data_label(method, lj_data, tmp_path):
    frames = tmp_path / "frames.extxyz"
    ase.io.write(frames, [c.to_atoms() for c in lj_data[:3]], format="extxyz")
    assert cli.main(["data", "label", str(frames), "--method", method, "--out", str(tmp_path / "out.extxyz")]) == 0
    labelled = ase.io.read(tmp_path / "out.extxyz", ":")
    prior = prior_labelled(lj_data[:3], MethodPrior(method))
    assert [c.fidelity for c in prior] == [f"{method}-prior"] * 3
    for atoms, config in zip(labelled, prior):
        assert config.energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        assert np.allclose(config.forces, atoms.get_forces(), atol=1e-7)  # extxyz keeps 8 decimals
        assert not np.allclose(config.forces, lj_data[0].forces)  # not the LJ labels the file came with


def test_an_unknown_prior_is_a_clear_error():
    from ase_asteroid.training.config import TrainConfig
    with pytest.raises(ValueError, match="prior: must be one of lj, lj-uff, gfn2-xtb"):
        TrainConfig("standard", {"path": "x.extxyz"}, prior="pm6")
    with pytest.raises(ValueError, match="prior method must be one of"):
        MethodPrior("lj")


def test_xtb_prior_is_stored_and_ttt_through_the_predictor_lowers_its_loss(xtb_joint, xtb_data):
    digest = _digest(xtb_joint)
    model = load_checkpoint(xtb_joint)
    assert isinstance(model.extras.prior, MethodPrior) and model.extras.prior.kind == "gfn2-xtb"
    assert model.fidelities == ("gfn2-xtb", "gfn2-xtb-prior") and model.fidelity_heads["gfn2-xtb-prior"] == 1
    predictor = Predictor(model, refine=RefineSettings(ttt=True, settings=TTTSettings(steps=10, lr=1e-3, gate=0)))
    structures = xtb_data[20:22]
    chunks = list(predictor.predict_configurations(structures))
    report = predictor.refinements[0]
    assert report["ttt_prior"] == "gfn2-xtb" and report["ttt_prior_loss_after"] < report["ttt_prior_loss_before"]
    assert 0 < report["ttt_label_seconds"] <= report["ttt_seconds"]
    assert report["seconds_per_structure"] >= report["ttt_seconds"] / len(structures)
    adapted = predictor._refined
    assert adapted is not model and adapted.fidelity_index(None) == 0  # predicts with the accurate head
    changed = {k for k, v in adapted.state_dict().items() if not np.array_equal(v.numpy(), model.state_dict()[k].numpy())}
    assert changed and not any("readout" in k for k in changed)
    assert not np.allclose(chunks[0][2][0], next(Predictor(model).predict_configurations(structures))[2][0])
    assert _digest(xtb_joint) == digest


def _molecules(xtb_data) -> list:
    """Three molecules of different sizes from the ethanol fixture: ethanol (9 atoms), its
    heavy atoms with three hydrogens (6) and a loose dimer (18)."""
    ethanol = list(xtb_data[:8])
    fragment = [c.with_(numbers=c.numbers[:6], positions=c.positions[:6], forces=None, energy=None) for c in ethanol]
    dimer = [c.with_(numbers=np.concatenate([c.numbers, d.numbers]), forces=None, energy=None,
                     positions=np.concatenate([c.positions, d.positions + [4.5, 0.0, 0.0]]))
             for c, d in zip(ethanol, ethanol[::-1])]
    return [ethanol, fragment, dimer]


def test_radius_refinement_keeps_the_trained_cutoff_on_every_training_molecule(xtb_data, tmp_path):
    molecules = _molecules(xtb_data)
    model = tiny_model("egnn", xtb_data)
    model.extras.graph_spectrum = training_spectra([c for m in molecules for c in m], model.cutoff)
    assert sorted(model.extras.graph_spectrum["spectra"], key=int) == ["6", "9", "18"]
    save_checkpoint(model, tmp_path / "multi.ckpt")
    loaded = load_checkpoint(tmp_path / "multi.ckpt")
    for molecule in molecules:
        _, report = refine_model(loaded, molecule, "radius")
        assert report["cutoff_A"] == loaded.cutoff
        for config in molecule:  # each training structure alone, too
            assert choose_cutoff(loaded.extras.graph_spectrum, [config.positions])[0] == loaded.cutoff
    stretched = [c.positions * 1.3 for c in molecules[2]]  # the dimer's graphs need a larger cutoff
    chosen, distances = choose_cutoff(loaded.extras.graph_spectrum, stretched)
    assert chosen > loaded.cutoff and distances[chosen] < 0.8 * distances[loaded.cutoff]


def test_a_checkpoint_with_the_old_single_spectrum_still_refines(xtb_data, tmp_path):
    model = tiny_model("egnn", xtb_data)
    reference = training_spectra(xtb_data[:10], model.cutoff)
    model.extras.graph_spectrum = {"cutoff_A": model.cutoff, "spectrum": reference["spectra"]["9"]}
    save_checkpoint(model, tmp_path / "old.ckpt")
    _, report = refine_model(load_checkpoint(tmp_path / "old.ckpt"), xtb_data[:3], "radius")
    assert report["cutoff_A"] == model.cutoff


def test_ttt_during_md_adapts_at_the_start_and_every_k_steps(xtb_joint, monkeypatch):
    from simulations import cli as md_cli
    import ase_asteroid.predictor as predictor
    data = FIXTURES / "ethanol_gfn2-xtb.extxyz"
    calls, original = [], predictor.refine_model
    monkeypatch.setattr(predictor, "refine_model", lambda model, structures, *a: calls.append(
        structures[0].positions.copy()) or original(model, structures, *a))
    digest = _digest(xtb_joint)
    assert md_cli.main(["run", str(xtb_joint), "--molecule", str(data), "--steps", "6", "--refine", "ttt",
                        "--ttt-steps", "2", "--ttt-every", "3"]) == 0
    assert len(calls) >= 3  # the start structure, then every 3 force calls
    assert np.allclose(calls[0], read_dataset(data)[0].positions)
    assert not np.allclose(calls[1], calls[0])
    assert _digest(xtb_joint) == digest


def test_refine_settings_round_trip_through_cli_and_calculator(xtb_joint):
    import argparse
    from ase_asteroid.refinement.options import add_refine_arguments, refine_settings
    parser = argparse.ArgumentParser()
    add_refine_arguments(parser)
    args = parser.parse_args(["--refine", "radius+ttt", "--ttt-steps", "7", "--ttt-lr", "0.003",
                              "--ttt-optimizer", "sgd", "--ttt-gate", "3"])
    from_cli = refine_settings(args, every=5)
    calculator = AsteroidCalculator(xtb_joint, refine="radius+ttt", ttt_steps=7, ttt_lr=0.003,
                                    ttt_optimizer="sgd", ttt_every=5, ttt_gate=3)
    assert calculator.predictor.refine == from_cli
    assert (from_cli.radius, from_cli.ttt, from_cli.every) == (True, True, 5)
    assert (from_cli.settings.steps, from_cli.settings.lr, from_cli.settings.optimizer) == (7, 0.003, "sgd")
    assert from_cli.settings.gate == 3.0 and TTTSettings().gate != 3.0
    with pytest.raises(ValueError, match="gate must be >= 0"):
        TTTSettings(gate=-1)


def test_evaluate_reports_the_ttt_cost_with_its_labels(xtb_joint, capsys):
    assert cli.main(["evaluate", str(xtb_joint), "--data", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"),
                     "--refine", "ttt", "--ttt-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "ms per structure (gfn2-xtb labels:" in out


def test_a_gaff2_prior_without_ambertools_is_a_clear_error_before_training(xtb_data, monkeypatch):
    import ase_asteroid.labels.gaff2 as gaff2
    from ase_asteroid.labels import LabelError
    from ase_asteroid.training.pipeline import _prior
    monkeypatch.setattr(gaff2.shutil, "which", lambda *a, **k: None)
    with pytest.raises(LabelError, match="antechamber not found: GAFF2 needs AmberTools"):
        _prior("gaff2", xtb_data.species, xtb_data)


def test_training_labels_each_geometry_once_with_a_method_prior(xtb_data, monkeypatch):
    import ase_asteroid.refinement.prior as prior_module
    counted, original = [], prior_module.method_labels
    monkeypatch.setattr(prior_module, "method_labels", lambda configs, method: counted.append(len(configs))
                        or original(configs, method))
    cache = {}
    first = prior_labelled(xtb_data[:3], MethodPrior("gfn2-xtb"), cache=cache)
    again = prior_labelled(xtb_data[:4], MethodPrior("gfn2-xtb"), weight=0.5, cache=cache)
    assert counted == [3, 1]
    assert again[0].energy == first[0].energy and again[0].weight == 0.5 * xtb_data[0].weight


def test_stability_sweep_adapts_every_k_steps_and_skips_diverged_structures(xtb_joint, tmp_path, monkeypatch):
    from simulations import cli as md_cli
    import ase_asteroid.predictor as predictor
    data = str(FIXTURES / "ethanol_gfn2-xtb.extxyz")
    calls, original = [], predictor.refine_model
    monkeypatch.setattr(predictor, "refine_model", lambda model, structures, *a: calls.append(
        len(structures)) or original(model, structures, *a))
    digest = _digest(xtb_joint)
    assert md_cli.main(["stability", str(xtb_joint), "--molecule", data, "--step-sizes-fs", "0.5", "--replicas", "2",
                        "--time-ps", "0.004", "--refine", "ttt", "--ttt-steps", "2", "--ttt-every", "4",
                        "--temperature-K", "300", "--out", str(tmp_path / "sweep")]) == 0
    assert calls == [1, 2, 2]  # the start structure, then both replicas after 4 and 8 steps
    assert _digest(xtb_joint) == digest
    model = load_checkpoint(xtb_joint)
    chosen = Predictor(model, refine=RefineSettings(ttt=True, settings=TTTSettings(steps=1), every=1))
    numbers, start = read_dataset(data)[0].numbers, read_dataset(data)[0].positions
    chosen.predict(numbers, start)
    chosen.predict(numbers, np.stack([start, np.full_like(start, np.nan)]), check=False)
    assert calls[-1] == 1  # the diverged (non-finite) structure is not adapted to


def test_a_sweep_stored_before_ttt_every_still_resumes(tmp_path, lj_data):
    import json
    from simulations.stability import SweepConfig, check_same_settings, sweep_settings
    settings = sweep_settings({"m": "m.ckpt"}, lj_data[0].to_atoms(), SweepConfig())
    del settings["config"]["ttt_every"], settings["config"]["ttt"]["gate"]  # what an older sweep.json holds
    (tmp_path / "sweep.json").write_text(json.dumps(settings))
    check_same_settings(tmp_path / "sweep.json", sweep_settings({"m": "m.ckpt"}, lj_data[0].to_atoms(), SweepConfig()))
    with pytest.raises(ValueError, match="ttt_every: 0 -> 5"):
        check_same_settings(tmp_path / "sweep.json",
                            sweep_settings({"m": "m.ckpt"}, lj_data[0].to_atoms(), SweepConfig(ttt_every=5)))
