"""Shared fixtures: the project's own small ethanol data and tiny models of each backend."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def _pristine_models(xtb_data):
    return {name: tiny_model(name, xtb_data) for name in TINY_CONFIGS}


@pytest.fixture(params=sorted(TINY_CONFIGS))
def model(request, _pristine_models):
    """A fresh copy of each backend's tiny model (float64), safe to modify."""
    return copy.deepcopy(_pristine_models[request.param])


def thermalize(atoms, temperature_K: float, seed: int) -> None:
    """Maxwell-Boltzmann momenta with ASE >= 3.29's thermalize_momenta or the older name."""
    from ase.md import velocitydistribution as vd

    set_momenta = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    set_momenta(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))


def train_with_prior(folder: Path, prior: str, train: int, val: int, epochs: int, batch_size: int) -> Path:
    """The checkpoint of a tiny EGNN trained (`asteroid train`) jointly with a `prior` head
    (weight 0.5) on the GFN2-xTB ethanol fixture."""
    import yaml
    from ase_asteroid import cli
    values = {"method": "standard", "prior": prior, "prior_weight": 0.5,
              "model": {"name": "egnn", "channels": 16, "num_layers": 2, "cutoff": 4.0},
              "accurate": {"path": str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "train": train, "val": val},
              "fit": {"epochs": epochs, "batch_size": batch_size}, "out": str(folder / "out")}
    (folder / "run.yaml").write_text(yaml.safe_dump(values))
    assert cli.main(["train", "--config", str(folder / "run.yaml")]) == 0
    return folder / "out" / "standard.ckpt"


def bench_module(name: str):
    """bench/NAME.py as a module (bench/ is put on sys.path first: its scripts import each other)."""
    bench = Path(__file__).parents[1] / "bench"
    sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", bench / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
