import numpy as np
import pytest

from ase_asteroid import units


def test_kcal_per_mol_matches_the_md17_conversion_factor():
    # SOURCES.md: the NewtonNet extxyz files divide the npz values by 23.0605480
    assert units.from_eV(1.0, "kcal/mol") == pytest.approx(23.0605480, rel=1e-8)


def test_force_units_are_energy_over_length():
    assert units.force_factor("kcal/mol/Å") == pytest.approx(units.energy_factor("kcal/mol"))
    assert units.force_factor("Hartree/Bohr") == pytest.approx(51.42208619, rel=1e-6)
    assert units.force_factor("eV/A") == 1.0


def test_round_trip_conversions():
    values = np.array([1.5, -2.0])
    assert np.allclose(units.from_eV(units.to_eV(values, "Hartree"), "Hartree"), values)
    assert np.allclose(units.from_eV_per_A(units.to_eV_per_A(values, "kcal/mol/Å"), "kcal/mol/Å"), values)
    assert units.to_A(1.0, "Bohr") == pytest.approx(0.52917721, rel=1e-6)


@pytest.mark.parametrize("bad", ["kcal", "furlong", "eV"])
def test_unknown_units_are_named(bad):
    with pytest.raises(ValueError, match="unit"):
        units.force_factor(bad) if bad == "eV" else units.energy_factor(bad)
