import json
import struct

import pytest
from safetensors.torch import save_file
import torch

from ase_asteroid import testing
from ase_asteroid.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint, read_metadata,
                                     save_checkpoint)


def test_round_trip_gives_identical_predictions(model, xtb_data, lj_data):
    model.extras.history.append({"stage": "test", "epochs": 0})
    testing.check_checkpoint_roundtrip(model, [xtb_data[0], lj_data[1]])


def test_float32_round_trip(model, xtb_data):
    testing.check_checkpoint_roundtrip(model.float(), xtb_data[:2])


def test_metadata_records_what_the_design_requires(model, tmp_path, xtb_data):
    model.extras.history.append({"stage": "standard", "parent": None, "seed": 0})
    path = save_checkpoint(model, tmp_path / "m.ckpt", data_hashes={"train": xtb_data.content_hash()})
    meta = read_metadata(path)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["model"]["name"] == model.config.name
    assert meta["species"] == [1, 6, 8] and meta["cutoff_A"] == model.cutoff
    assert meta["units"] == {"energy": "eV", "length": "Å", "forces": "eV/Å"}
    assert set(meta["energy_references_eV"]["gfn2-xtb"]) == {"1", "6", "8"}
    assert meta["history"] == model.extras.history and meta["data_hashes"]["train"] == xtb_data.content_hash()
    assert {"torch", "mace-torch", "ase", "ase_asteroid"} <= set(meta["versions"])
    assert load_checkpoint(path).extras.history == model.extras.history


def test_file_holds_no_pickle(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.ckpt")
    raw = path.read_bytes()
    header_size = struct.unpack("<Q", raw[:8])[0]
    json.loads(raw[8:8 + header_size])           # a safetensors header: plain JSON
    assert b"\x80\x04" not in raw[:16] and b"torch._utils" not in raw


def test_atomic_write_leaves_no_temporary_files(model, tmp_path):
    save_checkpoint(model, tmp_path / "m.ckpt")
    save_checkpoint(model, tmp_path / "m.ckpt")  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def test_failed_write_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = save_checkpoint(model, tmp_path / "m.ckpt")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("ase_asteroid.checkpoint.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_corrupt_file(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.ckpt")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="m.ckpt"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint", b"\x80\x04\x95pickle"])
def test_not_a_checkpoint(tmp_path, content):
    (tmp_path / "x.ckpt").write_bytes(content)
    with pytest.raises(CheckpointError, match="x.ckpt.*not a readable checkpoint"):
        load_checkpoint(tmp_path / "x.ckpt")


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not an ase_asteroid checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")


def _rewrite_metadata(path, change):
    from safetensors.torch import load_file
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        meta = json.loads(handle.metadata()["ase_asteroid"])
    change(meta)
    save_file(load_file(str(path)), str(path), metadata={"ase_asteroid": json.dumps(meta)})


def test_newer_format_version_is_refused(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.ckpt")
    _rewrite_metadata(path, lambda meta: meta.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer than this ase_asteroid understands"):
        load_checkpoint(path)


def test_inconsistent_tensors_are_refused(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "m.ckpt")
    _rewrite_metadata(path, lambda meta: meta["model"]["config"].update(channels=99))
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.ckpt")


def test_round_trip_check_catches_a_changed_weight(model, xtb_data, monkeypatch):
    from safetensors.torch import load_file

    def perturbed(path):
        return {k: v * (1 + 1e-6) if v.is_floating_point() else v for k, v in load_file(path).items()}

    monkeypatch.setattr("ase_asteroid.checkpoint.load_file", perturbed)
    with pytest.raises(AssertionError, match="changed in the checkpoint round trip"):
        testing.check_checkpoint_roundtrip(model, xtb_data[:2])


NAN, INF = float("nan"), float("inf")


def _set(*keys_and_value):
    """A change that sets meta[k1][k2]... = value (or deletes it when value is DELETE)."""
    *keys, value = keys_and_value

    def change(meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return change


DELETE = object()

#: (change to the metadata, what the CheckpointError must name): each a hostile or broken file.
HOSTILE_METADATA = [
    (_set("format_version", -5), "format_version"),
    (_set("format_version", "1"), "format_version"),
    (_set("format_version", 1.0), "format_version"),
    (_set("format_version", True), "format_version"),
    (_set("format_version", 10**30), "newer than"),
    (_set("format", "pickle"), "unknown checkpoint format"),
    (_set("model", "egnn"), "'model'"),
    (_set("model", DELETE), "'model' is missing"),
    (_set("model", "config", ["egnn"]), "'model'"),
    (_set("model", "name", "mace"), "'model'.*differs"),
    (_set("model", "config", "channels", "64"), "'model'.*channels must be an integer"),
    (_set("model", "config", "channels", -3), "'model'.*channels must be in"),
    (_set("model", "config", "channels", 10**9), "'model'.*channels must be in"),
    (_set("model", "config", "num_layers", 1e9), "'model'.*num_layers must be an integer"),
    (_set("model", "config", "num_heads", 10**6), "'model'.*num_heads must be in"),
    (_set("model", "config", "cutoff", NAN), "'model'.*cutoff must be a finite number"),
    (_set("model", "config", "cutoff", 1e300), "'model'.*cutoff must be in"),
    (_set("model", "config", "avg_num_neighbors", "8"), "'model'.*avg_num_neighbors must be a finite number"),
    (_set("model", "config", "species", []), "'model'.*at least one"),
    (_set("model", "config", "species", [1, 6, 8, 1000]), "'model'.*1..118"),
    (_set("model", "config", "__class__", "os.system"), "'model'.*unknown option"),
    (_set("species", "CHO"), "'species'"),
    (_set("species", [1, 6, 8, 500]), "'species'.*1..118"),
    (_set("species", [1]), "'species'.*differs"),
    (_set("cutoff_A", -1), "'cutoff_A'"),
    (_set("cutoff_A", "4"), "'cutoff_A'"),
    (_set("dtype", "float16"), "'dtype'"),
    (_set("dtype", DELETE), "'dtype' is missing"),
    (_set("energy_references_eV", {}), "'energy_references_eV'.*at least one"),
    (_set("energy_references_eV", "default", "1", 1e300), "'energy_references_eV'.*default.1"),
    (_set("energy_references_eV", "default", "1", NAN), "'energy_references_eV'.*default.1"),
    (_set("energy_references_eV", "default", "1", INF), "'energy_references_eV'.*default.1"),
    (_set("energy_references_eV", "default", "H", -13.6), "'energy_references_eV'.*'H'"),
    (_set("energy_references_eV", "default", [1.0]), "'energy_references_eV'"),
    (_set("scale_eV", NAN), "'scale_eV'"),
    (_set("scale_eV", INF), "'scale_eV'"),
    (_set("scale_eV", "1.0"), "'scale_eV'"),
    (_set("scale_eV", 0.0), "'scale_eV'"),
    (_set("shift_eV", -1e300), "'shift_eV'"),
    (_set("units", {"energy": "kcal/mol", "length": "Å", "forces": "kcal/mol/Å"}), "'units'"),
    (_set("fidelity_heads", {"default": 99}), "'fidelity_heads'"),
    (_set("fidelity_heads", {"default": "0"}), "'fidelity_heads'"),
    (_set("history", "none"), "'history'"),
    (_set("history", [1, 2]), "'history'"),
    (_set("delta_baseline", 5), "'delta_baseline'"),
    (_set("prior", {"kind": "exec"}), "'prior'"),
    (_set("prior", {"kind": "lj", "species": [0]}), "'prior'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectrum": "x"}), "'graph_spectrum'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectrum": [NAN]}), "'graph_spectrum'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectra": {"3": [0.5]}, "spread": {"3": 0.0}}), "'graph_spectrum'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectra": {"1": [NAN]}, "spread": {"1": 0.0}}), "'graph_spectrum'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectra": {"1": [0.0]}, "spread": {}}), "'graph_spectrum'"),
    (_set("graph_spectrum", {"cutoff_A": 4.0, "spectra": {"x": []}, "spread": {"x": 0.0}}), "'graph_spectrum'"),
    (_set("prior", {"kind": "gfn3-xtb"}), "'prior'"),
    (_set("versions", []), "'versions'"),
]


@pytest.fixture(scope="module")
def egnn_checkpoint(tmp_path_factory):
    from conftest import TINY_CONFIGS
    from ase_asteroid.models import build_model

    model = build_model(TINY_CONFIGS["egnn"], dtype=torch.float64)
    model.set_normalization({"default": {1: -13.6, 6: -1030.0, 8: -2040.0}}, scale=0.5)
    return save_checkpoint(model, tmp_path_factory.mktemp("hostile") / "good.ckpt")


@pytest.mark.parametrize("change, field", HOSTILE_METADATA)
def test_hostile_metadata_is_refused_naming_the_field(egnn_checkpoint, tmp_path, change, field):
    path = tmp_path / "hostile.ckpt"
    path.write_bytes(egnn_checkpoint.read_bytes())
    _rewrite_metadata(path, change)
    with pytest.raises(CheckpointError, match=field):
        load_checkpoint(path)


@pytest.mark.parametrize("raw, message", [("[1, 2]", "JSON object, got list"), ('"egnn"', "JSON object, got str"),
                                          ("{", "not valid JSON"), ("null", "JSON object, got NoneType")])
def test_metadata_that_is_not_an_object(tmp_path, raw, message):
    path = tmp_path / "m.ckpt"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"ase_asteroid": raw})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_non_finite_weights_are_refused(egnn_checkpoint, tmp_path, value):
    from safetensors.torch import load_file
    from safetensors import safe_open

    with safe_open(str(egnn_checkpoint), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(egnn_checkpoint))
    tensors["embedding.weight"][0, 0] = value
    save_file(tensors, str(tmp_path / "m.ckpt"), metadata=metadata)
    with pytest.raises(CheckpointError, match="'embedding.weight' holds NaN or infinite"):
        load_checkpoint(tmp_path / "m.ckpt")


def test_good_checkpoint_still_loads_and_dtype_may_be_named(egnn_checkpoint):
    assert load_checkpoint(egnn_checkpoint, dtype="float32").dtype == torch.float32
    assert load_checkpoint(egnn_checkpoint, dtype="torch.float64").dtype == torch.float64
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_checkpoint(egnn_checkpoint, dtype="float16")
