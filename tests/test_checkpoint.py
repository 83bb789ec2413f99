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
