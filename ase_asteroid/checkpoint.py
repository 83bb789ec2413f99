"""The only place that reads or writes model files.

A checkpoint is one safetensors file: the tensors of the model's state, and everything
else (format version, model name and config, species, cutoff, units, per-fidelity energy
references, scale and shift, training history, data hashes, package versions) as JSON in
the file's metadata. No pickle: loading parses JSON and raw tensors and never runs code
from the file. Writes are atomic (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import DTYPES, ForceField, build_model, config_from_dict

FORMAT = "ase_asteroid.checkpoint"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å"}
_METADATA_KEY = "ase_asteroid"


class CheckpointError(ValueError):
    """A file is not a readable ase_asteroid checkpoint; the message names the file and why."""


def package_versions() -> dict[str, str]:
    """Versions of the packages a checkpoint's numbers depend on."""
    versions = {}
    for name in ("ase_asteroid", "torch", "mace-torch", "e3nn", "ase", "numpy"):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def checkpoint_metadata(model: ForceField, data_hashes: dict[str, str] | None = None) -> dict:
    """Everything but the tensors, as plain JSON-able values."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.describe(),
        "species": list(model.species),
        "cutoff_A": model.cutoff,
        "units": UNITS,
        "dtype": str(model.dtype).removeprefix("torch."),
        "energy_references_eV": {f: {str(z): e for z, e in refs.items()}
                                 for f, refs in model.energy_references.items()},
        "fidelity_heads": model.fidelity_heads,
        "scale_eV": float(model.scale),
        "shift_eV": float(model.shift),
        **model.extras.metadata(),
        "data_hashes": data_hashes or {},
        "versions": package_versions(),
    }


def save_checkpoint(model: ForceField, path, data_hashes: dict[str, str] | None = None) -> Path:
    """Write `model` to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, model.state_dict(), checkpoint_metadata(model, data_hashes))
    return path


_STATE_FORMAT = "ase_asteroid.training_state"


def save_training_state(path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a training loop's state for resuming (tensors + JSON metadata, no pickle) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, tensors, {"format": _STATE_FORMAT, **meta})


def load_training_state(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read what save_training_state wrote; nothing in the file is executed."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(_METADATA_KEY, "null"))
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable training state ({error}); delete it to start over") from error
    if not isinstance(meta, dict) or meta.get("format") != _STATE_FORMAT:
        raise CheckpointError(f"{path}: not an ase_asteroid training state; delete it to start over")
    return tensors, meta


def _write_atomically(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {_METADATA_KEY: json.dumps(meta)}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=meta)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_metadata(path) -> dict:
    """The JSON metadata of a checkpoint, validated (format and version)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (safetensors: {error})") from error
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file, but not an ase_asteroid checkpoint")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON ({error})") from error
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this "
                              f"ase_asteroid understands ({FORMAT_VERSION}); upgrade ase_asteroid")
    return meta


def _renamed_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Files written before the extras were one part kept the prior head at "prior.*"."""
    return {("extras." + k if k.startswith("prior.") else k): v for k, v in state.items()}


def load_checkpoint(path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> ForceField:
    """Rebuild the model saved at `path` (in its saved dtype unless `dtype` is given), in eval mode."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        config = config_from_dict(meta["model"]["config"])
        model = build_model(config, dtype=DTYPES[meta["dtype"]])
        model.extras.restore(meta)
        model.to(model.dtype)
        model.load_state_dict(_renamed_state(load_file(str(path))), strict=True)
        references = {f: {int(z): e for z, e in refs.items()}
                      for f, refs in meta["energy_references_eV"].items()}
        heads = meta.get("fidelity_heads")
        model.set_normalization(references, meta["scale_eV"], meta["shift_eV"],
                                heads=[heads[f] for f in references] if heads else None)
    except (KeyError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{path}: checkpoint is inconsistent ({type(error).__name__}: {error})") from error
    model.eval()
    return model.to(device=device, dtype=dtype or model.dtype)
