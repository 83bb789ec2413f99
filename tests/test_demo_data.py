"""The embedded ethanol dataset is what its README says it is."""

import numpy as np
import pytest

from ase_asteroid.demo_data import demo_path, load_demo


def _idx(name):
    with np.load(demo_path(name)) as npz:
        return npz["idx"]


@pytest.mark.parametrize("name, n, fidelity", [
    ("ethanol_gaff2", 4000, "gaff2"), ("ethanol_gfn2-xtb", 4000, "gfn2-xtb"), ("ethanol_b3lyp", 300, "b3lyp"),
    ("ethanol_test_gaff2", 100, "gaff2"), ("ethanol_test_gfn2-xtb", 100, "gfn2-xtb"),
    ("ethanol_test_b3lyp", 100, "b3lyp")])
def test_contents(name, n, fidelity):
    data = load_demo(name)
    assert len(data) == n and data.fidelities == (fidelity,) and data.species == (1, 6, 8)
    forces = np.concatenate([c.forces.ravel() for c in data])
    assert 0.1 < np.sqrt(np.mean(forces ** 2)) < 5.0          # eV/Å, a 500 K molecule
    assert demo_path(name).stat().st_size < 1.5e6


def test_accurate_configurations_are_paired_with_cheap_ones():
    cheap, accurate = load_demo("ethanol_gfn2-xtb"), load_demo("ethanol_b3lyp")
    idx = _idx("ethanol_b3lyp")
    assert len(set(idx)) == 300 and np.array_equal(_idx("ethanol_gfn2-xtb"), np.arange(4000))
    for k in (0, 150, 299):
        assert np.allclose(accurate[k].positions, cheap[int(idx[k])].positions, atol=1e-6)


def test_test_split_is_held_out():
    train = np.array([c.positions for c in load_demo("ethanol_gfn2-xtb")])
    test = np.array([c.positions for c in load_demo("ethanol_test_b3lyp")])
    closest = np.min(np.abs(train[None] - test[:, None]).max(axis=(2, 3)), axis=1)
    assert closest.min() > 0.05  # Å: no test geometry is (nearly) a training geometry


def test_unknown_demo_name_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match="ethanol_b3lyp"):
        demo_path("ethanol_ccsd")
