"""Force-field backends behind one interface; ``build_model(config)`` picks by name."""

from __future__ import annotations

import torch

from .base import ForceField, check_species, energy_and_forces, predict_in_batches
from .config import DTYPES, as_dtype
from .egnn import EGNNConfig, EGNNForceField
from .mace import MACEConfig, MACEForceField

#: name -> (config class, model class)
BACKENDS = {"mace": (MACEConfig, MACEForceField), "egnn": (EGNNConfig, EGNNForceField)}


def config_class(name) -> type:
    """The config dataclass of the backend called `name` (BACKENDS), or ValueError."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[name][0]


def config_from_dict(values: dict):
    """The config dataclass named by ``values["name"]``, validated (ValueError naming the key)."""
    if not isinstance(values, dict):
        raise ValueError(f"a model config must be a mapping of options, got {type(values).__name__}")
    values = dict(values)
    name = values.get("name")
    config_cls = config_class(name)
    unknown = set(values) - set(config_cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown option(s) for model {name!r}: {sorted(unknown)}")
    if "species" not in values:
        raise ValueError(f"model {name!r} needs species (a list of atomic numbers)")
    return config_cls(**values)


def build_model(config, seed: int = 0, dtype: torch.dtype | str = torch.float32) -> ForceField:
    """A freshly initialised model (weights from `seed`) in `dtype` (a torch dtype or its
    name, e.g. "float64"); config may be a dict."""
    dtype = as_dtype(dtype)
    if isinstance(config, dict):
        config = config_from_dict(config)
    model_cls = BACKENDS[config.name][1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.to(dtype)


__all__ = ["BACKENDS", "DTYPES", "as_dtype", "EGNNConfig", "ForceField", "MACEConfig", "build_model",
           "check_species", "config_class", "config_from_dict", "energy_and_forces", "predict_in_batches"]
