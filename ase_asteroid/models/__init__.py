"""Force-field backends behind one interface; ``build_model(config)`` picks by name."""

from __future__ import annotations

import torch

from .base import ForceField, check_species, energy_and_forces, predict_in_batches
from .config import DTYPES
from .egnn import EGNNConfig, EGNNForceField
from .mace import MACEConfig, MACEForceField

#: name -> (config class, model class)
BACKENDS = {"mace": (MACEConfig, MACEForceField), "egnn": (EGNNConfig, EGNNForceField)}


def config_from_dict(values: dict):
    """The config dataclass named by ``values["name"]``, validated."""
    values = dict(values)
    name = values.get("name")
    if name not in BACKENDS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(BACKENDS)}")
    config_cls = BACKENDS[name][0]
    unknown = set(values) - set(config_cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown option(s) for model {name!r}: {sorted(unknown)}")
    return config_cls(**values)


def build_model(config, seed: int = 0, dtype: torch.dtype = torch.float32) -> ForceField:
    """A freshly initialised model (weights from `seed`) in `dtype`; config may be a dict."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    model_cls = BACKENDS[config.name][1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.to(dtype)


__all__ = ["BACKENDS", "DTYPES", "EGNNConfig", "ForceField", "MACEConfig", "build_model",
           "check_species", "config_from_dict", "energy_and_forces", "predict_in_batches"]
