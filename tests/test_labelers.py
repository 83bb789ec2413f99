"""Each labeler against an independent reference, and its forces against its own energy."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from ase_asteroid import units
from ase_asteroid.labels import LabelError, get_labeler
from ase_asteroid.labels.lj import UFF


def finite_difference_forces(labeler, atoms, delta_A=1e-4):
    fd = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, k] += sign * delta_A
                energies.append(labeler.label(moved)[0])
            fd[i, k] = -(energies[0] - energies[1]) / (2 * delta_A)
    return fd


@pytest.fixture(scope="module")
def ethanol(xtb_data):
    return xtb_data[5].to_atoms()


@pytest.mark.parametrize("method, rtol", [("gfn2-xtb", 1e-4), ("gfn1-xtb", 1e-4), ("gaff2", 1e-6), ("lj", 1e-6)])
def test_forces_are_minus_the_energy_gradient(method, rtol, ethanol):
    labeler = get_labeler(method)
    labeler.prepare(ethanol)
    _, forces = labeler.label(ethanol)
    fd = finite_difference_forces(labeler, ethanol)
    assert np.linalg.norm(forces - fd) / np.linalg.norm(fd) < rtol


def test_pyscf_hf_water_matches_pyscf_directly_and_its_gradient():
    from pyscf import gto, scf
    water = molecule("H2O")
    labeler = get_labeler("pyscf:hf/sto-3g")
    labeler.prepare(water)
    energy, forces = labeler.label(water)
    mol = gto.M(atom=[(s, p) for s, p in zip(water.get_chemical_symbols(), water.positions.tolist())],
                basis="sto-3g", unit="Angstrom", verbose=0)
    assert energy == pytest.approx(units.to_eV(scf.RHF(mol).kernel(), "Hartree"), abs=1e-6)
    fd = finite_difference_forces(labeler, water, delta_A=1e-3)
    assert np.abs(forces - fd).max() < 1e-4  # eV/Å; SCF convergence limits finite differences


def test_xtb_matches_tblite_own_interface(ethanol):
    from tblite.interface import Calculator
    labeler = get_labeler("gfn2-xtb")
    energy, forces = labeler.label(ethanol)
    calc = Calculator("GFN2-xTB", ethanol.numbers, ethanol.positions / units.length_factor("Bohr"))
    calc.set("verbosity", 0)
    result = calc.singlepoint()
    assert energy == pytest.approx(units.to_eV(result.get("energy"), "Hartree"), abs=1e-8)
    assert np.allclose(forces, -units.to_eV_per_A(result.get("gradient"), "Hartree/Bohr"), atol=1e-8)


def test_lj_two_atoms_by_hand():
    x, depth_kcal = UFF[6]
    r = 4.2
    dimer = Atoms("CC", positions=[[0, 0, 0], [0, 0, r]])
    energy, forces = get_labeler("lj").label(dimer)
    depth = depth_kcal * units.energy_factor("kcal/mol")
    assert energy == pytest.approx(depth * ((x / r) ** 12 - 2 * (x / r) ** 6))
    dE_dr = depth * (-12 * x ** 12 / r ** 13 + 12 * x ** 6 / r ** 7)
    assert forces[1, 2] == pytest.approx(-dE_dr) and forces[0, 2] == pytest.approx(dE_dr)


@pytest.mark.parametrize("method, message", [
    ("dftb", "unknown labelling method 'dftb'"),
    ("pyscf:notafunctional/sto-3g", "knows no method or functional 'notafunctional'"),
    ("pyscf:b3lyp", "must look like 'pyscf:METHOD/BASIS'"),
])
def test_bad_method_strings(method, message):
    with pytest.raises(LabelError, match=message):
        get_labeler(method)


@pytest.mark.parametrize("method, atoms, message", [
    ("lj", Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.4]]), r"cannot handle element\(s\) Na"),
    ("gfn2-xtb", Atoms("UO", positions=[[0, 0, 0], [0, 0, 1.8]]), r"cannot handle element\(s\) U"),
    ("pyscf:hf/6-31g*", Atoms("UO", positions=[[0, 0, 0], [0, 0, 1.8]]), "cannot build OU in basis '6-31g\\*'"),
])
def test_elements_a_method_cannot_handle(method, atoms, message):
    with pytest.raises(LabelError, match=message):
        get_labeler(method).prepare(atoms)


def test_unparseable_smiles():
    from ase_asteroid.labels.gaff2 import rdkit_molecule
    with pytest.raises(LabelError, match="cannot parse the SMILES 'C1CC'"):
        rdkit_molecule(smiles="C1CC")


@pytest.mark.parametrize("method", ["pyscf:b3lyp/sto-3g", "pyscf:mp2/sto-3g", "pyscf:ccsd(t)/sto-3g"])
def test_pyscf_correlated_and_dft_forces_match_their_energy(method):
    water = molecule("H2O")
    water.positions[1] += [0.05, 0.0, 0.03]       # off the minimum, so forces are not ~0
    labeler = get_labeler(method)
    _, forces = labeler.label(water)
    fd = finite_difference_forces(labeler, water, delta_A=1e-3)
    assert np.abs(forces).max() > 0.1
    assert np.abs(forces - fd).max() < 1e-3 * np.abs(fd).max()  # DFT grids, CC convergence limit this


def test_gaff2_assigns_the_textbook_ethanol_types():
    """Independent of OpenMM: antechamber's GAFF2 atom types and AM1-BCC charges for ethanol."""
    from ase_asteroid.labels.gaff2 import parametrize, rdkit_molecule
    prmtop = parametrize(rdkit_molecule(smiles="CCO"))
    section = prmtop.split("%FLAG AMBER_ATOM_TYPE")[1].split("%FLAG")[0].split("\n", 2)[2].split()
    assert section == ["c3", "c3", "oh", "hc", "hc", "hc", "h1", "h1", "ho"]
    charges = prmtop.split("%FLAG CHARGE")[1].split("%FLAG")[0].split("\n", 2)[2].split()
    assert abs(sum(float(q) for q in charges)) < 1e-3     # neutral (prmtop charges are e x 18.2223)
    assert float(charges[2]) / 18.2223 < -0.5           # a strongly negative hydroxyl oxygen
