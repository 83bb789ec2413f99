"""Validation helpers shared by the backends' frozen config dataclasses."""

from __future__ import annotations

import torch

#: The floating-point types a model may run in, by the name configs and checkpoints use.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def freeze_sequences(config, *names: str) -> None:
    """Turn list fields (e.g. from JSON or YAML) into tuples on a frozen dataclass."""
    for name in names:
        object.__setattr__(config, name, tuple(getattr(config, name)))


def check_common(config, expected_name: str) -> None:
    """ValueError for a wrong name, no species, unknown elements or a non-positive cutoff."""
    if config.name != expected_name:
        raise ValueError(f"config name {config.name!r} does not match {expected_name!r}")
    freeze_sequences(config, "species")
    object.__setattr__(config, "species", tuple(sorted(int(z) for z in config.species)))
    if not config.species:
        raise ValueError("species must list at least one atomic number")
    if any(not 1 <= z <= 118 for z in config.species) or len(set(config.species)) != len(config.species):
        raise ValueError(f"species must be distinct atomic numbers in 1..118, got {config.species}")
    if not config.cutoff > 0:
        raise ValueError(f"cutoff must be positive (Å), got {config.cutoff}")


def check_positive(config, *names: str) -> None:
    """ValueError naming the first field that is not > 0."""
    for name in names:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
