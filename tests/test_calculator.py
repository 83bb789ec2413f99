import copy

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk, molecule
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from ase_asteroid import AsteroidCalculator, save_checkpoint
from ase_asteroid.models import EGNNConfig, build_model
from conftest import thermalize


@pytest.fixture
def ethanol(xtb_data):
    return xtb_data[0].to_atoms()


def test_from_checkpoint_path(model, tmp_path, ethanol):
    path = save_checkpoint(model, tmp_path / "model.ckpt")
    ethanol.calc = AsteroidCalculator(str(path))
    energy, forces = ethanol.get_potential_energy(), ethanol.get_forces()
    assert np.isfinite(energy) and forces.shape == (9, 3) and forces.dtype == np.float64
    assert ethanol.get_potential_energy(force_consistent=True) == energy  # free_energy


@pytest.mark.parametrize("dtype, expected", [("float32", torch.float32), ("float64", torch.float64),
                                             (torch.float32, torch.float32)])
def test_dtype_by_name_as_the_training_yaml_spells_it(model, tmp_path, ethanol, dtype, expected):
    path = save_checkpoint(model, tmp_path / "model.ckpt")
    for source in (path, model):
        calc = AsteroidCalculator(source, dtype=dtype)
        assert calc.model.dtype == expected
    ethanol.calc = calc
    assert np.isfinite(ethanol.get_potential_energy())


def test_unknown_dtype_name_is_a_clear_error(model):
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\].*'half'"):
        AsteroidCalculator(model, dtype="half")


def test_implemented_properties_is_a_fixed_class_tuple(model, ethanol):
    before = AsteroidCalculator.implemented_properties
    calc = AsteroidCalculator(model)
    ethanol.calc = calc
    ethanol.get_forces()
    assert isinstance(before, tuple) and AsteroidCalculator.implemented_properties == before
    assert calc.implemented_properties is before


def test_float32_option_agrees_with_float64(model, ethanol):
    double = AsteroidCalculator(model, dtype=torch.float64)
    reference = double.get_forces(ethanol), double.get_potential_energy(ethanol)
    calc = AsteroidCalculator(copy.deepcopy(model), dtype=torch.float32)
    assert calc.model.dtype == torch.float32
    single = calc.get_forces(ethanol), calc.get_potential_energy(ethanol)
    assert np.allclose(single[0], reference[0], atol=1e-4) and single[1] == pytest.approx(reference[1], abs=1e-3)
    assert not np.array_equal(single[0], reference[0])     # really computed in float32


def test_unknown_element_names_element_and_atom(model):
    atoms = molecule("CH3CH2OH")
    atoms.numbers[4] = 7
    atoms.calc = AsteroidCalculator(model)
    with pytest.raises(ValueError, match=r"never trained on N \(atom 4\); it knows H, C, O"):
        atoms.get_potential_energy()


def test_non_finite_positions_are_refused(model, ethanol):
    ethanol.positions[2, 1] = np.nan
    ethanol.calc = AsteroidCalculator(model)
    with pytest.raises(ValueError, match=r"non-finite positions for atom\(s\) \[2\]"):
        ethanol.get_forces()


def test_bad_model_argument(ethanol):
    with pytest.raises(TypeError, match="checkpoint path or a ForceField"):
        AsteroidCalculator(42)


def test_optimizer_lowers_the_energy(model, ethanol):
    ethanol.calc = AsteroidCalculator(model)
    start = ethanol.get_potential_energy()
    BFGS(ethanol, logfile=None).run(fmax=1e-4, steps=10)
    assert ethanol.get_potential_energy() < start


def test_langevin_md_runs(model, ethanol):
    ethanol.calc = AsteroidCalculator(model)
    thermalize(ethanol, 300, seed=0)
    dyn = Langevin(ethanol, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False,
                   rng=np.random.default_rng(0))
    dyn.run(20)
    assert dyn.nsteps == 20 and np.isfinite(ethanol.positions).all()


def test_nve_conserves_energy(model, ethanol):
    """Forces are the exact gradient, so velocity Verlet with a small step conserves energy."""
    ethanol.calc = AsteroidCalculator(model)
    thermalize(ethanol, 300, seed=1)
    total = lambda: ethanol.get_potential_energy() + ethanol.get_kinetic_energy()
    start = total()
    dyn = VelocityVerlet(ethanol, 0.1 * units.fs)
    energies = []
    for _ in range(10):
        dyn.run(5)
        energies.append(total())
    assert max(abs(e - start) for e in energies) < 1e-4  # eV, over 5 fs


def test_periodic_cell_is_supported():
    silicon = bulk("Si", "diamond", a=5.43)
    model = build_model(EGNNConfig(species=(14,), cutoff=3.0, channels=8, num_layers=1), dtype=torch.float64)
    silicon.calc = AsteroidCalculator(model)
    silicon.rattle(0.05, seed=0)
    energy, forces = silicon.get_potential_energy(), silicon.get_forces()
    shifted = silicon.copy()
    shifted.positions[0] += silicon.cell[0]        # the same crystal
    shifted.calc = AsteroidCalculator(model)
    assert shifted.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    assert np.allclose(shifted.get_forces(), forces, atol=1e-10)
    assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-10)
