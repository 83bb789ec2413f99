"""Shared fixtures: the project's own small ethanol data and tiny models of each backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ase_asteroid.data import fit_energy_references, force_rms, read_dataset
from ase_asteroid.models import EGNNConfig, MACEConfig, build_model

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_MD17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17"

#: Small enough for fast tests, large enough to exercise every part of each architecture.
TINY_CONFIGS = {
    "mace": MACEConfig(species=(1, 6, 8), cutoff=4.0, channels=8, max_L=1, max_ell=2,
                       correlation=2, num_interactions=2, radial_mlp=(16, 16)),
    "egnn": EGNNConfig(species=(1, 6, 8), cutoff=4.0, channels=16, num_layers=2, num_radial=8),
}


@pytest.fixture(scope="session")
def xtb_data():
    return read_dataset(FIXTURES / "ethanol_gfn2-xtb.extxyz")


@pytest.fixture(scope="session")
def lj_data():
    return read_dataset(FIXTURES / "ethanol_lj.extxyz")


def tiny_model(name: str, data, dtype=torch.float64):
    """A tiny untrained model normalised to `data` (references, force-RMS scale)."""
    model = build_model(TINY_CONFIGS[name], seed=0, dtype=dtype)
    model.set_normalization(fit_energy_references(data), scale=force_rms(data))
    return model


@pytest.fixture(params=sorted(TINY_CONFIGS))
def model(request, xtb_data):
    return tiny_model(request.param, xtb_data)
