
import json

import numpy as np
import pytest
import yaml

from ase_asteroid import cli, load_checkpoint
from ase_asteroid.checkpoint import read_metadata
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


@pytest.mark.parametrize("method, stages", [("standard", ["standard"]), ("cheap_only", ["pretrained"])])
def test_other_methods(tmp_path, method, stages):
    cli.main(["train", "--config", str(small(tmp_path, method))])
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.ckpt")) == stages


@pytest.mark.parametrize("change, message", [
    ({"methd": "asteroid"}, r"unknown key\(s\) \['methd'\]"),
    ({"method": "magic"}, "method: must be one of"),
    ({"fit": {"epochs": 2, "lr_rate": 1}}, r"fit: unknown key\(s\) \['lr_rate'\]"),
    ({"fit": {"epochs": 0}}, "epochs must be at least 1"),
    ({"gamma_eV_per_A": -1}, "gamma_eV_per_A: must be a positive number"),
])
def test_bad_config_names_the_key(tmp_path, change, message, capsys):
    path = small(tmp_path, "asteroid")
    values = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ValueError, match=message):
        load_config(path)
    assert cli.main(["train", "--config", str(path)]) == 1


@pytest.mark.parametrize("name", ["asteroid_demo.yaml", "standard_demo.yaml"])
def test_example_configs_are_valid(name):
    config = load_config(EXAMPLES / name)
    assert config.accurate.path.startswith("demo:") and config.fit.epochs == 60


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
