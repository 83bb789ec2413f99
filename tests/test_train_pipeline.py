
import json
import re

import numpy as np
import pytest
import torch
import yaml

from ase_asteroid import cli, load_checkpoint
from ase_asteroid.checkpoint import load_training_state, read_metadata
from ase_asteroid.data import read_dataset
from ase_asteroid.training.config import DataSpec, load_config
from ase_asteroid.training.pipeline import _split
from conftest import FIXTURES

EXAMPLES = FIXTURES.parents[1] / "examples"


def small(tmp_path, method, **extra):
    """A fast config on the test fixtures (accurate: GFN2-xTB, cheap: LJ)."""
    values = {"method": method, "model": {"name": "egnn", "channels": 8, "num_layers": 1, "cutoff": 4.0},
              "accurate": {"path": str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "train": 20, "val": 10},
              "cheap": {"path": str(FIXTURES / "ethanol_lj.extxyz"), "val": 10},
              "test": str(FIXTURES / "ethanol_gfn2-xtb_sgdml.npz"),
              "fit": {"epochs": 2, "batch_size": 5}, "pretrain_fit": {"epochs": 1, "batch_size": 5},
              "out": str(tmp_path / "out"), **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_asteroid_writes_each_stage_with_its_parent(tmp_path, capsys):
    assert cli.main(["train", "--config", str(small(tmp_path, "asteroid"))]) == 0
    assert "force MAE" in capsys.readouterr().out
    out = tmp_path / "out"
    histories = {name: read_metadata(out / f"{name}.ckpt")["history"] for name in
                 ("bias_identification", "pretrained", "fine_tuned")}
    assert histories["fine_tuned"][-1]["parent"] == "pretrained.ckpt"
    assert histories["pretrained"][-1]["parent"] is None            # pre-training starts from scratch
    assert [h["stage"] for h in histories["fine_tuned"]] == ["pretrained", "fine_tuned"]
    assert load_checkpoint(out / "fine_tuned.ckpt").fidelities == ("gfn2-xtb", "lj")


@pytest.mark.parametrize("method, stages", [("standard", ["standard"]), ("cheap_only", ["pretrained"]),
                                           ("score_matching", ["fine_tuned", "score_matching"])])
def test_other_methods(tmp_path, method, stages, monkeypatch):
    seen = record_stages(monkeypatch)
    assert cli.main(["train", "--config", str(small(tmp_path, method, temperature_K=500))]) == 0
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.ckpt")) == stages == sorted(seen)
    fidelities = {stage: {c.fidelity for c in seen[stage]["train"]} for stage in seen}
    objectives = {stage: seen[stage]["config"].objective for stage in seen}
    if method == "standard":       # the accurate training set only
        assert fidelities == {"standard": {"gfn2-xtb"}} and len(seen["standard"]["train"]) == 20
    elif method == "cheap_only":   # the cheap data only
        assert fidelities == {"pretrained": {"lj"}} and len(seen["pretrained"]["train"]) == 30
    else:                          # score matching on the cheap geometries without their labels, then labels
        assert objectives == {"score_matching": "score_matching", "fine_tuned": "labels"}
        assert seen["score_matching"]["config"].temperature_K == 500
        assert all(c.energy is None and c.forces is None for c in seen["score_matching"]["train"])
        assert fidelities["fine_tuned"] == {"gfn2-xtb"} and len(seen["fine_tuned"]["train"]) == 20


@pytest.mark.parametrize("change, message", [
    ({"methd": "asteroid"}, r"unknown key\(s\) \['methd'\]"),
    ({"method": "magic"}, "method: must be one of"),
    ({"fit": {"epochs": 2, "lr_rate": 1}}, r"fit: unknown key\(s\) \['lr_rate'\]"),
    ({"fit": {"epochs": 0}}, "epochs must be at least 1"),
    ({"method": "delta"}, "delta_baseline: the delta method needs it"),
    ({"method": "score_matching"}, "temperature_K: score_matching needs the temperature"),
    ({"cost_ratio": 20}, "cost_ratio needs accurate_budget"),
    ({"more_cheap": [{"path": "x.npz"}]}, "more_cheap and head_loss_weights are options of the multi_head"),
    ({"more_cheap": [{"pth": "x.npz"}], "method": "multi_head"}, r"more_cheap\[0\]: unknown key"),
    ({"gamma_eV_per_A": -1}, "gamma_eV_per_A: must be a positive number"),
    ({"fit": {"lr": "fast"}}, r"fit: lr must be a finite number, got 'fast' \(str\)"),
    ({"fit": {"epochs": 2.5}}, r"fit: epochs must be an integer, got 2.5 \(float\)"),
    ({"fit": {"amsgrad": "yes"}}, r"fit: amsgrad must be true or false"),
    ({"pretrain_fit": {"batch_size": "5"}}, r"pretrain_fit: batch_size must be an integer, got '5'"),
    ({"accurate": {"path": 5}}, r"path must be a string, got 5 \(int\)"),
    ({"accurate": {"path": "x.npz", "train": "all"}}, r"train must be an integer, got 'all'"),
    ({"temperature_K": "hot"}, r"temperature_K must be a finite number, got 'hot'"),
    ({"model": {"name": "egnn", "channels": "64"}}, r"channels must be an integer, got '64'"),
    ({"accurate": {"path": "x.npz", "energy_unit": "kcal"}}, r"energy_unit/force_unit: unknown energy unit 'kcal'"),
    ({"dtype": "double"}, r"dtype: must be one of \['float32', 'float64'\]"),
])
def test_bad_config_names_the_key(tmp_path, change, message, capsys):
    path = small(tmp_path, "asteroid")
    values = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message):
        load_config(path)
    assert cli.main(["train", "--config", str(path)]) == 1


@pytest.mark.parametrize("model, typo, known", [({"name": "egnn", "chanels": 8}, "chanels", "'channels'"),
                                               ({"name": "mace", "max_l": 2}, "max_l", "'max_L'")])
def test_a_typo_in_model_names_the_file_and_the_key_before_any_data_is_read(tmp_path, model, typo, known,
                                                                             monkeypatch, capsys):
    from ase_asteroid.training import pipeline
    path = small(tmp_path, "asteroid", model=model)
    with pytest.raises(ValueError, match=re.escape(f"{path}: model.{typo}: unknown key; known: [")) as error:
        load_config(path)
    assert known in str(error.value) and "'species'" not in str(error.value)   # species come from the data
    monkeypatch.setattr(pipeline, "read_dataset", lambda *a, **k: pytest.fail("data read before the model was checked"))
    assert cli.main(["train", "--config", str(path)]) == 1
    assert f"{path}: model.{typo}: unknown key" in capsys.readouterr().err


def test_the_model_section_is_the_backends_typed_config(tmp_path):
    from ase_asteroid.models import EGNNConfig, MACEConfig
    config = load_config(small(tmp_path, "asteroid"))
    assert isinstance(config.model, EGNNConfig) and (config.model.channels, config.model.cutoff) == (8, 4.0)
    mace = load_config(small(tmp_path, "asteroid", model={"name": "mace", "channels": 16, "radial_mlp": [8, 8]}))
    assert isinstance(mace.model, MACEConfig) and (mace.model.channels, mace.model.radial_mlp) == (16, (8, 8))
    values = yaml.safe_load(small(tmp_path, "asteroid").read_text())
    del values["model"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(values))
    assert load_config(tmp_path / "run.yaml").model == EGNNConfig(species=(1,))   # no model section: the EGNN


@pytest.mark.parametrize("key, value", [("species", [1, 6, 8]), ("num_heads", 2)])
def test_model_fields_set_from_the_data_are_refused_in_the_yaml(tmp_path, key, value):
    path = small(tmp_path, "multi_head", model={"name": "egnn", key: value})
    with pytest.raises(ValueError, match=re.escape(f"{path}: model.{key}: set from the data")):
        load_config(path)


def test_yaml_numbers_in_exponent_notation_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-3 as a string; the training YAML reads it as YAML 1.2 does."""
    path = small(tmp_path, "asteroid")
    path.write_text(path.read_text() + "prior_weight: 2e-1\n")
    text = path.read_text().replace("fit:\n", "fit:\n  lr: 1e-3\n  min_lr: 5E-6\n", 1)
    path.write_text(text)
    config = load_config(path)
    assert config.fit_config("scratch").lr == 1e-3 and config.fit_config("scratch").min_lr == 5e-6
    assert config.prior_weight == 0.2


@pytest.mark.parametrize("text, where", [("method: [asteroid\n", ":2:1: YAML syntax error"),
                                         ("method: asteroid\n  bad: indent: x\n", ":2:")])
def test_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path, text, where, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=where):
        load_config(path)
    assert cli.main(["train", "--config", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"asteroid: error: {path}:") and error.count("\n") == 1


@pytest.mark.parametrize("name", ["asteroid_demo.yaml", "standard_demo.yaml", "score_matching_demo.yaml",
                                  "delta_demo.yaml", "joint_lj_demo.yaml"])
def test_example_configs_are_valid(name):
    config = load_config(EXAMPLES / name)
    assert config.accurate.path.startswith("demo:") and config.fit_config("scratch").epochs == 60


def test_validation_split_and_epoch_logs(tmp_path):
    spec = DataSpec(str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), train=20, val=10, val_start=25)
    train, val = _split(spec)
    perm = np.random.default_rng(0).permutation(40)
    full = read_dataset(FIXTURES / "ethanol_gfn2-xtb.extxyz")
    assert np.allclose(val[0].positions, full[int(perm[25])].positions)
    assert np.allclose(train[-1].positions, full[int(perm[19])].positions)
    with pytest.raises(ValueError, match="must follow the training set"):
        _split(DataSpec(spec.path, train=20, val=10, val_start=10))
    cli.main(["train", "--config", str(small(tmp_path, "standard"))])
    epochs = json.loads((tmp_path / "out" / "standard_epochs.json").read_text())
    assert [e["epoch"] for e in epochs] == [1, 2] and "force_mae_eV_per_A" in epochs[0]
    assert (tmp_path / "out" / "standard_epochs.csv").read_text().startswith("epoch,lr,rho,train_loss,")


def test_delta_learning_trains_on_label_minus_baseline_and_adds_it_at_inference(tmp_path, capsys, monkeypatch):
    """A Δ-model of (GFN2-xTB − LJ): it is trained on the labels minus LJ's; the checkpoint
    names LJ, evaluate says so and adds it, and the calculator's forces are the network's
    plus LJ's."""
    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.labels import get_labeler
    seen = record_stages(monkeypatch)
    assert cli.main(["train", "--config", str(small(tmp_path, "delta", delta_baseline="lj"))]) == 0
    assert "Δ-learning model: every prediction includes lj" in capsys.readouterr().out
    model = load_checkpoint(tmp_path / "out" / "delta.ckpt")
    assert model.extras.delta_baseline == "lj"
    atoms = read_dataset(FIXTURES / "ethanol_gfn2-xtb.extxyz")[0].to_atoms()
    atoms.calc = AsteroidCalculator(model)
    model.extras.delta_baseline = None
    plain = AsteroidCalculator(model)
    lj_energy, lj_forces = get_labeler("lj").label(atoms)
    assert np.allclose(atoms.get_forces(), plain.get_forces(atoms) + lj_forces, atol=1e-10)
    train, accurate = seen["delta"]["train"], _split(load_config(tmp_path / "run.yaml").accurate)[0]
    assert len(train) == len(accurate) == 20
    for target, raw in zip(train, accurate):   # the training targets: label - baseline
        baseline_energy, baseline_forces = get_labeler("lj").label(raw.to_atoms())
        assert np.allclose(target.forces, raw.forces - baseline_forces, atol=1e-10)
        assert target.energy == pytest.approx(raw.energy - baseline_energy, abs=1e-9)
    assert atoms.get_potential_energy() == pytest.approx(plain.get_potential_energy(atoms) + lj_energy, abs=1e-9)


def test_resume_skips_finished_stages_and_gives_the_same_model(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the second epoch of fine-tuning; --resume loads the pre-trained stage from
    its checkpoint, continues fine-tuning from its first epoch, and ends where an
    uninterrupted run ends."""
    import torch
    from ase_asteroid.training import loop, pipeline
    config = str(small(tmp_path, "pretrain_finetune", fit={"epochs": 3, "batch_size": 5}))
    cli.main(["train", "--config", config, "--out", str(tmp_path / "whole")])
    original_errors, calls = loop.errors, []

    def interrupt_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # pre-training has 1 epoch: this is fine-tuning's 2nd
            raise KeyboardInterrupt
        return original_errors(*args, **kwargs)

    monkeypatch.setattr(loop, "errors", interrupt_third_epoch)
    assert cli.main(["train", "--config", config, "--out", str(tmp_path / "cut")]) == 130
    assert "interrupted; finished stages" in capsys.readouterr().err
    assert load_training_state(tmp_path / "cut" / "fine_tuned.state.safetensors")[1]["epoch"] == 1
    monkeypatch.setattr(loop, "errors", original_errors)
    original_fit, fitted = pipeline.fit, []
    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: fitted.append(k["state_path"].name) or original_fit(*a, **k))
    assert cli.main(["train", "--config", config, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert fitted == ["fine_tuned.state.safetensors"]
    whole = load_checkpoint(tmp_path / "whole" / "fine_tuned.ckpt").state_dict()
    resumed = load_checkpoint(tmp_path / "cut" / "fine_tuned.ckpt").state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_resume_refuses_a_stage_whose_data_or_config_changed(tmp_path, capsys):
    """A finished stage is reused by --resume only if its stored data hash and training
    config match this run's; otherwise the message names the stage and what changed."""
    import ase.io
    data = tmp_path / "accurate.extxyz"
    frames = ase.io.read(FIXTURES / "ethanol_gfn2-xtb.extxyz", ":")
    ase.io.write(data, frames, format="extxyz")
    accurate = {"path": str(data), "train": 20, "val": 10}
    argv = ["train", "--config", str(small(tmp_path, "standard", accurate=accurate, test=None)), "--resume"]
    assert cli.main(argv[:-1]) == 0 and cli.main(argv) == 0     # unchanged: the stage is reused
    frames[int(np.random.default_rng(0).permutation(len(frames))[0])].positions[0, 0] += 0.1  # a training frame
    ase.io.write(data, frames, format="extxyz")
    capsys.readouterr()
    assert cli.main(argv) == 1
    assert "stage 'standard' was trained on different data" in capsys.readouterr().err
    ase.io.write(data, ase.io.read(FIXTURES / "ethanol_gfn2-xtb.extxyz", ":"), format="extxyz")
    small(tmp_path, "standard", accurate=accurate, test=None, fit={"epochs": 3, "batch_size": 5})
    assert cli.main(argv) == 1
    assert "different config (epochs changed)" in capsys.readouterr().err


def test_a_folder_with_earlier_results_needs_resume_or_overwrite(tmp_path, capsys):
    config = str(small(tmp_path, "standard"))
    assert cli.main(["train", "--config", config]) == 0
    finished = (tmp_path / "out" / "standard.ckpt").read_bytes()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert cli.main(["train", "--config", config]) == 1
    assert "holds results of an earlier run (standard.ckpt" in capsys.readouterr().err
    assert (tmp_path / "out" / "standard.ckpt").read_bytes() == finished  # nothing was touched
    (tmp_path / "out" / "standard.state.safetensors").write_bytes(b"stale")
    assert cli.main(["train", "--config", config, "--overwrite"]) == 0
    assert not (tmp_path / "out" / "standard.state.safetensors").exists()
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"  # only the run's own files go
    with pytest.raises(SystemExit):
        cli.main(["train", "--config", config, "--overwrite", "--resume"])


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_planted_pickle_state_is_refused_and_runs_nothing(tmp_path, capsys, writer):
    """A resume state is safetensors + JSON: a pickle at its path must not be unpickled."""
    import pickle

    import torch

    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    state = tmp_path / "out" / "standard.state.safetensors"
    state.parent.mkdir()
    if writer == "pickle":
        state.write_bytes(pickle.dumps({"epoch": Payload()}))
    else:
        torch.save({"epoch": Payload()}, state)
    assert cli.main(["train", "--config", str(small(tmp_path, "standard")), "--resume"]) == 1
    error = capsys.readouterr().err
    assert "standard.state.safetensors: not a readable training state" in error and error.count("\n") == 1
    assert not marker.exists()


def test_gamma_grid_is_chosen_by_validation_after_fine_tuning(tmp_path):
    from ase_asteroid.training.pipeline import run_training
    config = load_config(small(tmp_path, "asteroid", gamma_eV_per_A=[0.02, 0.2]))
    result = run_training(config, progress=False)
    search = json.loads((tmp_path / "out" / "gamma_search.json").read_text())
    errors = search["val_force_mae_eV_per_A"]
    assert set(errors) == {"0.02", "0.2"} and search["chosen_gamma_eV_per_A"] == float(min(errors, key=errors.get))
    assert result["checkpoints"]["fine_tuned"].endswith(f"fine_tuned_gamma{search['chosen_gamma_eV_per_A']:g}.ckpt")
    assert (tmp_path / "out" / "pretrained_gamma0.02_epochs.csv").exists()  # one log per γ, none overwritten
    from ase_asteroid.training import errors as measured_errors
    val = _split(config.accurate)[1]     # each γ's fine-tuned checkpoint measured here, not read back
    measured = {g: measured_errors(load_checkpoint(tmp_path / "out" / f"fine_tuned_gamma{g}.ckpt"), val)
                ["force_mae_eV_per_A"] for g in ("0.02", "0.2")}
    assert measured == pytest.approx(errors, rel=1e-5) and measured["0.02"] != measured["0.2"]
    assert search["chosen_gamma_eV_per_A"] == float(min(measured, key=measured.get))
    assert (tmp_path / "out" / "pretrained_gamma0.2_epochs.json").exists()


def test_gamma_grid_from_fractions_of_the_bias_spread(tmp_path):
    from ase_asteroid.training.pipeline import run_training, splits_from_config
    from ase_asteroid.training.stages import force_bias
    config = load_config(small(tmp_path, "asteroid", gamma_iqr_fractions=[0.5, 2]))
    run_training(config, progress=False)
    search = json.loads((tmp_path / "out" / "gamma_search.json").read_text())
    stage_one = load_checkpoint(tmp_path / "out" / "bias_identification.ckpt")
    q1, q3 = np.percentile(force_bias(stage_one, splits_from_config(config).cheap), [25, 75])
    assert q3 - q1 > 0 and search["gamma_iqr_fractions"] == [0.5, 2]
    assert search["bias_quartiles_eV_per_A"][::2] == pytest.approx([q1, q3], rel=1e-6)
    assert 0 <= search["share_above_bias_fence"] <= 1
    assert sorted(map(float, search["val_force_mae_eV_per_A"])) == pytest.approx([0.5 * (q3 - q1), 2 * (q3 - q1)],
                                                                                  rel=1e-3)
    with pytest.raises(ValueError, match="gamma_iqr_fractions"):
        load_config(small(tmp_path, "asteroid", gamma_iqr_fractions=[-1]))


def test_equal_cost_limits_the_cheap_labels(tmp_path):
    from ase_asteroid.training.pipeline import splits_from_config
    config = load_config(small(tmp_path, "asteroid", cost_ratio=2, accurate_budget=23))
    assert len(splits_from_config(config).cheap) == (23 - 20) * 2


def test_multi_head_training_and_choosing_a_head(tmp_path, monkeypatch):
    from ase_asteroid import AsteroidCalculator
    seen = record_stages(monkeypatch)
    config = small(tmp_path, "multi_head", head_loss_weights={"lj": 0.5}, accurate_repeats=2)
    assert cli.main(["train", "--config", str(config)]) == 0
    train = seen["multi_head"]["train"]   # accurate_repeats: each accurate configuration twice per epoch
    weights = {f: sorted({c.weight for c in train if c.fidelity == f}) for f in ("gfn2-xtb", "lj")}
    assert [c.fidelity for c in train].count("gfn2-xtb") == 2 * 20 and [c.fidelity for c in train].count("lj") == 30
    assert weights == {"gfn2-xtb": [1.0], "lj": [0.5]}   # head_loss_weights scale the cheap head's terms
    path = tmp_path / "out" / "multi_head.ckpt"
    model = load_checkpoint(path)
    assert model.config.num_heads == 2 and model.fidelities == ("gfn2-xtb", "lj")
    atoms = read_dataset(FIXTURES / "ethanol_lj.extxyz")[0].to_atoms()
    default = AsteroidCalculator(path).get_forces(atoms)
    assert np.allclose(default, AsteroidCalculator(path, head="gfn2-xtb").get_forces(atoms))
    assert not np.allclose(default, AsteroidCalculator(path, head="lj").get_forces(atoms))
    with pytest.raises(ValueError, match="unknown fidelity"):
        AsteroidCalculator(path, head="ccsd(t)")


# --- what each method trains on: the data and weights reaching fit() ---------------------------

TINY = {"name": "egnn", "channels": 8, "num_layers": 1, "cutoff": 4.0}
FIT = {"epochs": 2, "batch_size": 4, "lr": 0.01, "schedule": "cosine", "stage_two_at": 0, "ema_decay": 0.99}


def record_stages(monkeypatch):
    """{stage: {"train": data, "config": FitConfig, "model": the model fit returned}} of
    every fit() the pipeline runs from now on."""
    import copy
    from ase_asteroid.training import pipeline
    seen, original = {}, pipeline.fit

    def recording(model, train, val, config, progress=True, state_path=None):
        stage = state_path.name.split(".state")[0]
        seen[stage] = {"train": train, "config": config}
        result = original(model, train, val, config, progress, state_path=state_path)
        seen[stage]["model"] = copy.deepcopy(result[0])
        return result

    monkeypatch.setattr(pipeline, "fit", recording)
    return seen


@pytest.fixture(scope="module")
def asteroid_splits():
    from ase_asteroid.training.pipeline import Splits
    xtb, lj = (read_dataset(FIXTURES / f"ethanol_{name}.extxyz") for name in ("gfn2-xtb", "lj"))
    return Splits(xtb[:12], xtb[12:16], lj[16:36], lj[36:40])


def _run(method, splits, out, **extra):
    from ase_asteroid.training.config import TrainConfig
    from ase_asteroid.training.pipeline import run_stages
    config = TrainConfig(method, DataSpec("unused"), TINY, cheap=DataSpec("unused"), fit=FIT, pretrain_fit=FIT,
                         out=str(out), **extra)
    return run_stages(config, splits, progress=False)


def test_asteroid_pretrains_with_weights_exp_minus_bias_over_gamma(asteroid_splits, monkeypatch, tmp_path):
    """The pre-training data carry w ∝ exp(-B/γ), B computed here from the stage-1 model's
    forces, and pretrain_finetune's carry none."""
    from ase_asteroid.graph import batch_configurations
    seen, gamma = record_stages(monkeypatch), 0.03
    _run("asteroid", asteroid_splits, tmp_path / "asteroid", gamma_eV_per_A=gamma)
    first, cheap = seen["bias_identification"]["model"], asteroid_splits.cheap
    predicted = [first(batch_configurations([c], first.cutoff))["forces"].detach().double().numpy() for c in cheap]
    bias = np.array([np.abs(p - c.forces).mean() for p, c in zip(predicted, cheap)])   # eV/Å
    expected = np.exp(-bias / gamma) / np.exp(-bias / gamma).mean()
    pretraining = seen["pretrained"]["train"]
    assert [c.positions.tolist() for c in pretraining] == [c.positions.tolist() for c in cheap]
    weights = np.array([c.weight for c in pretraining])
    assert np.allclose(weights, expected, rtol=1e-4) and weights.max() / weights.min() > 10
    assert all(c.weight == 1.0 for c in seen["fine_tuned"]["train"])           # accurate data: unweighted
    _run("pretrain_finetune", asteroid_splits, tmp_path / "plain")
    assert all(c.weight == 1.0 for c in seen["pretrained"]["train"])


def test_asteroid_trains_differently_from_pretrain_finetune_only_through_its_weights(asteroid_splits, monkeypatch,
                                                                                      tmp_path):
    """Same seeds and data: γ = ∞ (equal weights) gives pretrain_finetune's models exactly;
    a finite γ gives other models, so the weights reach the loss."""
    seen = record_stages(monkeypatch)
    states = {}
    for name, method, extra in [("plain", "pretrain_finetune", {}),
                                ("infinite", "asteroid", {"gamma_eV_per_A": float("inf")}),
                                ("weighted", "asteroid", {"gamma_eV_per_A": 0.03})]:
        _run(method, asteroid_splits, tmp_path / name, **extra)
        states[name] = {stage: seen[stage]["model"].state_dict() for stage in ("pretrained", "fine_tuned")}
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    for stage in ("pretrained", "fine_tuned"):
        assert same(states["infinite"][stage], states["plain"][stage])
        assert not same(states["weighted"][stage], states["plain"][stage])


# --- the stage table: each method's stages, their recipes and parents -------------------------

#: method -> [(stage, recipe kind, parent checkpoint)], as the pipeline has always chained them.
STAGE_SEQUENCES = {
    "standard": [("standard", "scratch", None)],
    "multi_head": [("multi_head", "joint", None)],
    "delta": [("delta", "scratch", None)],
    "cheap_only": [("pretrained", "pretrain", None)],
    "pretrain_finetune": [("pretrained", "pretrain", None), ("fine_tuned", "finetune", "pretrained.ckpt")],
    "score_matching": [("score_matching", "pretrain", None), ("fine_tuned", "finetune", "score_matching.ckpt")],
    "asteroid": [("bias_identification", "scratch", None), ("pretrained", "pretrain", None),
                 ("fine_tuned", "finetune", "pretrained.ckpt")],
}
#: Each stage kind's recipe made recognisable by its learning rate.
KIND_LR = {"scratch": 0.011, "joint": 0.014, "pretrain": 0.012, "finetune": 0.013}


def _stub_fit(calls):
    """A fit() that trains nothing and records (stage, recipe kind by its lr, objective)."""
    def fit(model, train, val, config, progress=True, state_path=None):
        kind = next(k for k, lr in KIND_LR.items() if config.lr == lr)
        calls.append((state_path.name.split(".state")[0], kind, config.objective))
        model.extras.history.append({"stage": "fit"})
        return model, {"history": [{"epoch": 1, "force_mae_eV_per_A": 0.0}]}
    return fit


def _patched_recipes(monkeypatch):
    from dataclasses import replace

    from ase_asteroid.training import recipes
    for name, base in list(recipes.RECIPES.items()):
        monkeypatch.setitem(recipes.RECIPES, name, replace(base, lr=KIND_LR[name.split("-")[1]]))


@pytest.mark.parametrize("method", sorted(STAGE_SEQUENCES))
def test_each_method_runs_its_stages_with_their_recipes_and_parents(method, asteroid_splits, monkeypatch, tmp_path):
    from ase_asteroid.training import pipeline
    from ase_asteroid.training.config import METHODS, TrainConfig
    assert set(STAGE_SEQUENCES) == set(METHODS)
    _patched_recipes(monkeypatch)
    calls = []
    monkeypatch.setattr(pipeline, "fit", _stub_fit(calls))
    extra = {"temperature_K": 500.0} if method == "score_matching" else {"delta_baseline": "lj"} if method == "delta" \
        else {}
    config = TrainConfig(method, DataSpec("unused"), TINY, cheap=DataSpec("unused"), out=str(tmp_path), **extra)
    _, paths = pipeline.run_stages(config, asteroid_splits, progress=False)
    parents = [read_metadata(paths[stage])["history"][-1]["parent"] for stage in paths]
    assert [(stage, kind, parent) for (stage, kind, _), parent in zip(calls, parents)] == STAGE_SEQUENCES[method]
    assert list(paths) == [stage for stage, _, _ in STAGE_SEQUENCES[method]]
    assert [objective for _, _, objective in calls] == ["score_matching" if stage == "score_matching" else "labels"
                                                        for stage, _, _ in STAGE_SEQUENCES[method]]


def test_a_gamma_grid_pretrains_and_fine_tunes_each_gamma_after_one_bias_identification(asteroid_splits, monkeypatch,
                                                                                        tmp_path):
    from ase_asteroid.training import pipeline
    from ase_asteroid.training.config import TrainConfig
    _patched_recipes(monkeypatch)
    calls = []
    monkeypatch.setattr(pipeline, "fit", _stub_fit(calls))
    config = TrainConfig("asteroid", DataSpec("unused"), TINY, cheap=DataSpec("unused"), out=str(tmp_path),
                         gamma_eV_per_A=[0.02, 0.2])
    _, paths = pipeline.run_stages(config, asteroid_splits, progress=False)
    assert [(stage, kind) for stage, kind, _ in calls] == [
        ("bias_identification", "scratch"), ("pretrained_gamma0.02", "pretrain"), ("fine_tuned_gamma0.02", "finetune"),
        ("pretrained_gamma0.2", "pretrain"), ("fine_tuned_gamma0.2", "finetune")]
    assert list(paths) == [stage for stage, _, _ in calls] + ["fine_tuned"]
    assert paths["fine_tuned"] in (paths["fine_tuned_gamma0.02"], paths["fine_tuned_gamma0.2"])
    assert read_metadata(paths["fine_tuned_gamma0.2"])["history"][-1]["parent"] == "pretrained_gamma0.2.ckpt"
