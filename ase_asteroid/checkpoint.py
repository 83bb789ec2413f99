"""The only place that reads or writes model files.

A checkpoint is one safetensors file: the tensors of the model's state, and everything
else (format version, model name and config, species, cutoff, units, per-fidelity energy
references, scale and shift, training history, data hashes, package versions) as JSON in
the file's metadata. No pickle: loading parses JSON and raw tensors and never runs code
from the file. Writes are atomic (a temporary file in the same folder, then a rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .models import DTYPES, ForceField, as_dtype, build_model, config_from_dict
from .models.prior import METHOD_PRIORS

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
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    _check_version(path, meta.get("format_version"))
    return meta


def _renamed_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Files written before the extras were one part kept the prior head at "prior.*"."""
    return {("extras." + k if k.startswith("prior.") else k): v for k, v in state.items()}


def _check_version(path: Path, version) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: checkpoint field 'format_version' must be a positive integer, "
                              f"got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this "
                              f"ase_asteroid understands ({FORMAT_VERSION}); upgrade ase_asteroid")


# --- every metadata field, checked by type and range before anything is built -------------

def _real(value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"must be in {low:g}..{high:g}, got {value!r}")
    return float(value)


def _typed(value, kind: type, what: str):
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"must be {what}, got {value!r} ({type(value).__name__})")
    return value


def _choice(value, options) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"must be one of {sorted(options)}, got {value!r}")


def _atomic_numbers(value) -> None:
    for z in _typed(value, list, "a list of atomic numbers"):
        if not 1 <= _typed(z, int, "a list of integer atomic numbers") <= 118:
            raise ValueError(f"must hold atomic numbers in 1..118, got {z!r}")


def _model(value) -> None:
    _typed(value, dict, "an object with name and config")
    _typed(value.get("config"), dict, "an object whose 'config' is an object")
    if value.get("name") != value["config"].get("name"):
        raise ValueError(f"name {value.get('name')!r} differs from config name {value['config'].get('name')!r}")
    config_from_dict(value["config"])


def _references(value) -> None:
    if not _typed(value, dict, "an object {fidelity: {Z: eV}}"):
        raise ValueError("must name at least one fidelity")
    for fidelity, per_element in value.items():
        for z, energy in _typed(per_element, dict, "an object {fidelity: {Z: eV}}").items():
            if not z.isdigit() or not 1 <= int(z) <= 118:
                raise ValueError(f"{fidelity}: element key {z!r} is not an atomic number")
            try:
                _real(energy, -1e7, 1e7)
            except ValueError as error:
                raise ValueError(f"{fidelity}.{z}: {error}") from None


def _heads(value) -> None:
    for fidelity, head in _typed(value, dict, "an object {fidelity: head}").items():
        if not 0 <= _typed(head, int, "an object {fidelity: integer head}") < 64:
            raise ValueError(f"{fidelity}: head must be in 0..63, got {head!r}")


def _prior(value) -> None:
    kind = _typed(value, dict, "an object").get("kind")
    if kind not in ("lj",) + METHOD_PRIORS:
        raise ValueError(f"kind must be one of {('lj',) + METHOD_PRIORS}, got {kind!r}")
    if kind == "lj":
        _atomic_numbers(value.get("species"))


def _spectrum(value) -> None:
    """Radius refinement's reference: {cutoff_A, spectra: {atom count: spectrum}, spread:
    {atom count: distance}}, or (files written before per-size spectra) {cutoff_A, spectrum}."""
    _real(_typed(value, dict, "an object with cutoff_A and spectra").get("cutoff_A"), 1e-3, 100.0)
    if "spectra" not in value:
        _eigenvalues(value.get("spectrum"))
        return
    spectra = _typed(value["spectra"], dict, "an object whose spectra are {atom count: list}")
    spread = _typed(value.get("spread"), dict, "an object whose spread is {atom count: number}")
    if len(spectra) > 10_000 or set(spread) != set(spectra):
        raise ValueError("spectra and spread must have the same atom counts (at most 10000)")
    for size, spectrum in spectra.items():
        if not size.isdigit() or len(_eigenvalues(spectrum)) != int(size):
            raise ValueError(f"spectra[{size!r}] must hold one eigenvalue per atom")
        _real(spread[size], 0.0, 1e6)


def _eigenvalues(spectrum) -> list:
    spectrum = _typed(spectrum, list, "an object whose spectrum is a list")
    if len(spectrum) > 100_000:
        raise ValueError(f"spectrum has {len(spectrum)} values, more than any molecule's")
    for eigenvalue in spectrum:
        _real(eigenvalue, -1.0, 3.0)  # the normalised Laplacian's eigenvalues lie in [0, 2]
    return spectrum


def _units(value) -> None:
    if value != UNITS:
        raise ValueError(f"must be {UNITS} (ase_asteroid's units), got {value!r}")


#: field -> (required, check); a check raises ValueError saying what is wrong.
_METADATA_FIELDS = {
    "model": (True, _model),
    "species": (True, _atomic_numbers),
    "cutoff_A": (True, lambda v: _real(v, 1e-3, 100.0)),
    "dtype": (True, lambda v: _choice(v, DTYPES)),
    "energy_references_eV": (True, _references),
    "scale_eV": (True, lambda v: _real(v, 1e-9, 1e6)),
    "shift_eV": (True, lambda v: _real(v, -1e7, 1e7)),
    "units": (False, _units),
    "fidelity_heads": (False, lambda v: v is None or _heads(v)),
    "history": (False, lambda v: [_typed(h, dict, "a list of objects") for h in _typed(v, list, "a list")]),
    "delta_baseline": (False, lambda v: v is None or _typed(v, str, "a method name or null")),
    "prior": (False, lambda v: v is None or _prior(v)),
    "graph_spectrum": (False, lambda v: v is None or _spectrum(v)),
    "data_hashes": (False, lambda v: _typed(v, dict, "an object")),
    "versions": (False, lambda v: _typed(v, dict, "an object")),
}


def validate_metadata(meta: dict, path) -> None:
    """CheckpointError naming the first metadata field that is missing, of the wrong type or
    out of range (sizes, finite scale and references, ...), and for species that disagree."""
    for name, (required, check) in _METADATA_FIELDS.items():
        if name not in meta:
            if required:
                raise CheckpointError(f"{path}: checkpoint field {name!r} is missing")
            continue
        try:
            check(meta[name])
        except ValueError as error:
            raise CheckpointError(f"{path}: checkpoint field {name!r}: {error}") from None
    if sorted(meta["species"]) != sorted(meta["model"]["config"]["species"]):
        raise CheckpointError(f"{path}: checkpoint field 'species' {meta['species']} differs from the "
                              f"model config's {meta['model']['config']['species']}")


def _check_tensors(state: dict[str, torch.Tensor], path) -> None:
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: checkpoint tensor {name!r} holds NaN or infinite values")


def load_checkpoint(path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | str | None = None) -> ForceField:
    """Rebuild the model saved at `path` (in its saved dtype unless `dtype` is given, as a
    torch dtype or its name such as "float64"), in eval mode. Every metadata field and every
    tensor is checked before the model is built: CheckpointError names what is wrong."""
    path, dtype = Path(path), as_dtype(dtype)
    meta = read_metadata(path)
    validate_metadata(meta, path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: the checkpoint's tensors cannot be read ({error})") from error
    _check_tensors(state, path)
    try:
        model = build_model(config_from_dict(meta["model"]["config"]), dtype=DTYPES[meta["dtype"]])
        model.extras.restore(meta)
        model.to(model.dtype)
        model.load_state_dict(_renamed_state(state), strict=True)
        references = {f: {int(z): e for z, e in refs.items()}
                      for f, refs in meta["energy_references_eV"].items()}
        heads = meta.get("fidelity_heads")
        model.set_normalization(references, meta["scale_eV"], meta["shift_eV"],
                                heads=[heads[f] for f in references] if heads else None)
    except (KeyError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{path}: checkpoint is inconsistent ({type(error).__name__}: {error})") from error
    model.eval()
    return model.to(device=device, dtype=dtype or model.dtype)
