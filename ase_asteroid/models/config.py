"""Validation shared by the backends' frozen config dataclasses.

Every field is checked by the type its annotation names and by a range from the backend's
table of limits, before anything is built: configs come from YAML and from checkpoint
metadata, and a size such as ``num_layers: 1e9`` must fail here, naming the field, rather
than exhaust memory in a constructor. The upper limits are far beyond any sensible model.
"""

from __future__ import annotations

import math
from dataclasses import fields
from numbers import Integral, Real

import numpy as np
import torch

#: The floating-point types a model may run in, by the name YAML, configs and checkpoints use.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """torch.float32/float64 from itself or its name ("float32", "float64", "torch.float64");
    None stays None. ValueError for anything else. The one place a dtype's name is read."""
    if dtype is None or dtype in DTYPES.values():
        return dtype
    name = dtype.removeprefix("torch.") if isinstance(dtype, str) else None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} (or torch.float32/torch.float64), got {dtype!r}")
    return DTYPES[name]


def _type_error(name: str, expected: str, value) -> ValueError:
    return ValueError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")


def checked_value(name: str, kind: str, value):
    """`value` as the annotation `kind` asks (int, float, bool, str, tuple[int, ...], each
    optionally ``| None``), or ValueError naming `name` and the expected type. Integers are
    accepted for floats (and made floats); other annotations are left to their own checks."""
    if kind.endswith(" | None"):
        return None if value is None else checked_value(name, kind.removesuffix(" | None"), value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise _type_error(name, "an integer", value)
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise _type_error(name, "a finite number", value)
        return float(value)
    if kind in ("str", "bool") and not isinstance(value, {"str": str, "bool": bool}[kind]):
        raise _type_error(name, "a string" if kind == "str" else "true or false", value)
    if kind.startswith("tuple"):
        if not isinstance(value, (list, tuple, np.ndarray)) or np.ndim(value) != 1:
            raise _type_error(name, "a list of integers", value)
        return tuple(checked_value(f"{name}[{i}]", "int", v) for i, v in enumerate(value))
    return value


def check_types(config) -> None:
    """Check (and normalise: int -> float, list -> tuple) every field of a frozen dataclass
    by its annotation; ValueError naming the first field of the wrong type."""
    for field in fields(config):
        value = checked_value(field.name, str(field.type), getattr(config, field.name))
        object.__setattr__(config, field.name, value)


def check_fields(config, expected_name: str, limits: dict[str, tuple[float, float]]) -> None:
    """ValueError naming the first field of the wrong type or outside its limits (inclusive;
    for a list field, every element and the number of elements ``"len:" + name``), then the
    common checks (name, species)."""
    if config.name != expected_name:
        raise ValueError(f"config name {config.name!r} does not match {expected_name!r}")
    check_types(config)
    for name, (low, high) in limits.items():
        if name.startswith("len:"):
            count = len(getattr(config, name[4:]))
            if not low <= count <= high:
                raise ValueError(f"{name[4:]} must have {low}..{high} entries, got {count}")
            continue
        values = getattr(config, name)
        for value in values if isinstance(values, tuple) else [values]:
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low}..{high}, got {values!r}")
    _check_species(config)


def _check_species(config) -> None:
    object.__setattr__(config, "species", tuple(sorted(config.species)))
    if not config.species:
        raise ValueError("species must list at least one atomic number")
    if any(not 1 <= z <= 118 for z in config.species) or len(set(config.species)) != len(config.species):
        raise ValueError(f"species must be distinct atomic numbers in 1..118, got {config.species}")


#: Limits every backend shares: cutoff (Å), neighbour normalisation, readout heads.
COMMON_LIMITS = {"cutoff": (1e-3, 30.0), "avg_num_neighbors": (1e-3, 1e4), "num_heads": (1, 64)}
