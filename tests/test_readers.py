import ase
import ase.io
import numpy as np
import pytest
from ase.db import connect

from ase_asteroid.data import DataError, read_dataset
from conftest import FIXTURES, SHARED_MD17


def _arrays(dataset):
    return (np.array([c.energy for c in dataset]), np.array([c.forces for c in dataset]),
            np.array([c.positions for c in dataset]))


def test_sgdml_npz_in_kcal_equals_extxyz_in_eV(xtb_data):
    npz = read_dataset(FIXTURES / "ethanol_gfn2-xtb_sgdml.npz")
    assert npz.source_units["energy"] == "kcal/mol" and xtb_data.source_units["energy"] == "eV"
    for a, b in zip(_arrays(npz), _arrays(xtb_data)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-7)  # extxyz keeps 8 decimals
    assert npz.fidelities == ("gfn2-xtb",)  # from the file's theory field


def test_rmd17_old_labels_are_a_second_fidelity(xtb_data, lj_data):
    new = read_dataset(FIXTURES / "ethanol_rmd17-keys.npz")
    old = read_dataset(FIXTURES / "ethanol_rmd17-keys.npz", labels="old")
    assert new.fidelities == ("pbe/def2-svp",) and old.fidelities == ("pbe+vdw-ts",)
    np.testing.assert_allclose(_arrays(new)[0], _arrays(xtb_data)[0], rtol=1e-12)
    np.testing.assert_allclose(_arrays(old)[1], _arrays(lj_data)[1], atol=1e-7)
    assert read_dataset(FIXTURES / "ethanol_rmd17-keys.npz", fidelity="dft").fidelities == ("dft",)


def test_extxyz_carries_fidelity_and_weight(tmp_path, xtb_data):
    atoms = [c.to_atoms() for c in xtb_data[:3]]
    atoms[1].info["weight"] = 0.25
    ase.io.write(tmp_path / "w.extxyz", atoms)
    back = read_dataset(tmp_path / "w.extxyz")
    assert [c.weight for c in back] == [1.0, 0.25, 1.0]
    assert back.fidelities == ("gfn2-xtb",)
    np.testing.assert_allclose(back[2].forces, xtb_data[2].forces)


def test_ase_database(tmp_path, xtb_data):
    with connect(tmp_path / "data.db") as db:
        for config in xtb_data[:5]:
            atoms = ase.io.read(FIXTURES / "ethanol_gfn2-xtb.extxyz", index=0)
            atoms.positions = config.positions
            from ase.calculators.singlepoint import SinglePointCalculator
            atoms.calc = SinglePointCalculator(atoms, energy=config.energy, forces=config.forces)
            db.write(atoms)
    back = read_dataset(tmp_path / "data.db", fidelity="gfn2-xtb")
    assert len(back) == 5
    np.testing.assert_allclose(_arrays(back)[0], _arrays(xtb_data[:5])[0])
    np.testing.assert_allclose(_arrays(back)[1], _arrays(xtb_data[:5])[1])


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def sgdml_arrays():
    with np.load(FIXTURES / "ethanol_gfn2-xtb_sgdml.npz") as npz:
        return {k: npz[k] for k in ("R", "z", "E", "F")}


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("F"), "neither an sGDML"),
    (lambda a: a.update(F=a["F"][:, :5]), "forces have shape"),
    (lambda a: a.update(E=a["E"][:-1]), "energies have shape"),
    (lambda a: a["R"].__setitem__((3, 2, 1), np.nan), r"non-finite positions \(first at index \(3, 2, 1\)\)"),
    (lambda a: a["F"].__setitem__((0, 0, 0), np.inf), "non-finite forces"),
    (lambda a: a["z"].__setitem__(0, 150), r"unknown element.*\[150\]"),
])
def test_malformed_npz_names_file_and_problem(tmp_path, sgdml_arrays, change, message):
    change(sgdml_arrays)
    path = _write_npz(tmp_path / "bad.npz", **sgdml_arrays)
    with pytest.raises(DataError, match=message) as error:
        read_dataset(path)
    assert "bad.npz" in str(error.value)


def test_rmd17_without_old_labels(tmp_path):
    with np.load(FIXTURES / "ethanol_rmd17-keys.npz") as npz:
        arrays = {k: npz[k] for k in ("coords", "nuclear_charges", "energies", "forces")}
    path = _write_npz(tmp_path / "no_old.npz", **arrays)
    with pytest.raises(DataError, match="missing key.*old_energies"):
        read_dataset(path, labels="old")


@pytest.mark.parametrize("name, content, message", [
    ("garbage.npz", b"not a zip at all", "not a readable npz"),
    ("garbage.extxyz", b"3\nnot a header\nX 0 0\n", "could not read"),
    ("empty.extxyz", b"", "could not read|no configurations"),
])
def test_unreadable_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_dataset(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "absent.npz")


@pytest.mark.skipif(not SHARED_MD17.is_dir(), reason="../shared/data/md17 not present")
def test_shared_aspirin_npz_and_xyz_agree_in_eV():
    npz = read_dataset(SHARED_MD17 / "aspirin_ccsd-train.npz")
    xyz = read_dataset(SHARED_MD17 / "aspirin_ccsd-train.xyz")
    assert len(npz) == len(xyz) == 1000 and npz.fidelities == ("ccsd",)
    e_npz, f_npz, r_npz = _arrays(npz)
    e_xyz, f_xyz, r_xyz = _arrays(xyz)
    np.testing.assert_allclose(e_npz, e_xyz, rtol=1e-12)   # -17592 eV: agreement to ~1e-8 eV
    np.testing.assert_allclose(f_npz, f_xyz, atol=1e-6)     # eV/Å
    np.testing.assert_allclose(r_npz, r_xyz, atol=1e-8)


@pytest.mark.parametrize("theory, label", [
    ("Psi4: CCSD(T), cc-pVTZ", "ccsd(t)"), ("CCSD(T)/cc-pVDZ", "ccsd(t)"),
    (b"GFN2-xTB", "gfn2-xtb"), (b"", None), ("", None)])
def test_fidelity_from_the_theory_field(theory, label):
    from ase_asteroid.data.readers import _theory_label
    assert _theory_label(np.array(theory)) == label


@pytest.mark.skipif(not SHARED_MD17.is_dir(), reason="../shared/data/md17 not present")
def test_shared_files_get_their_level_of_theory():
    assert read_dataset(SHARED_MD17 / "ethanol_ccsd_t-train.npz").fidelities == ("ccsd(t)",)
    assert read_dataset(SHARED_MD17 / "aspirin_ccsd-test.npz").fidelities == ("ccsd",)
    rmd17 = read_dataset(SHARED_MD17 / "rmd17_ethanol_train_01.npz")
    assert rmd17.fidelities == ("pbe/def2-svp",) and len(rmd17) == 1000


def _in_unit(xtb_data, energy_unit):
    """The xTB fixture's energies and forces expressed in `energy_unit`(/Å)."""
    from ase_asteroid import units
    energies, forces, positions = _arrays(xtb_data)
    return units.from_eV(energies, energy_unit), units.from_eV_per_A(forces, f"{energy_unit}/Å"), positions


def test_npz_written_in_eV_warns_when_read_as_kcal(tmp_path, xtb_data):
    from ase_asteroid.data.plausibility import UnitWarning
    energies, forces, positions = _in_unit(xtb_data, "eV")
    path = _write_npz(tmp_path / "ev.npz", R=positions, z=xtb_data[0].numbers, E=energies, F=forces)
    with pytest.warns(UnitWarning, match=r"ev.npz: forces read as kcal/mol/Å .* 0.1\d+ eV/Å.*--force-unit"):
        read_dataset(path)
    fixed = read_dataset(path, energy_unit="eV", force_unit="eV/Å")  # said explicitly: read so, no warning
    np.testing.assert_allclose(_arrays(fixed)[1], _arrays(xtb_data)[1])


def test_extxyz_written_in_kcal_warns_when_read_as_eV(tmp_path, xtb_data):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase_asteroid.data.plausibility import UnitWarning
    energies, forces, _ = _in_unit(xtb_data, "kcal/mol")
    frames = []
    for config, energy, force in zip(xtb_data, energies, forces):
        atoms = ase.Atoms(config.numbers, config.positions)
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=force)
        frames.append(atoms)
    ase.io.write(tmp_path / "kcal.extxyz", frames)
    with pytest.warns(UnitWarning, match=r"kcal.extxyz: forces read as eV/Å .* 72.\d eV/Å, outside"):
        read_dataset(tmp_path / "kcal.extxyz")
    fixed = read_dataset(tmp_path / "kcal.extxyz", energy_unit="kcal/mol", force_unit="kcal/mol/Å")
    np.testing.assert_allclose(_arrays(fixed)[0], _arrays(xtb_data)[0], rtol=1e-9)


def test_all_electron_energies_in_kcal_read_as_eV_are_implausible(xtb_data):
    """Ethanol's PBE total energy is -4293 eV (MD17); the same number in kcal/mol is not an eV energy."""
    from ase_asteroid.data.plausibility import unit_problems
    ethanol = xtb_data[0]
    assert unit_problems([ethanol.with_(energy=-4293.0)], "eV", "eV/Å") == []
    problems = unit_problems([ethanol.with_(energy=-4293.0 * 23.06)], "eV", "eV/Å")
    assert len(problems) == 1 and problems[0].startswith("energies read as eV reach 1")


@pytest.mark.parametrize("name", ["ethanol_gfn2-xtb.extxyz", "ethanol_lj.extxyz", "ethanol_gfn2-xtb_sgdml.npz",
                                  "ethanol_rmd17-keys.npz"])
def test_files_in_their_units_do_not_warn(name, recwarn):
    read_dataset(FIXTURES / name)
    assert not [w for w in recwarn if "UnitWarning" in type(w.message).__name__]


def test_unknown_unit_is_a_data_error():
    with pytest.raises(DataError, match="unknown energy unit 'kcal'"):
        read_dataset(FIXTURES / "ethanol_lj.extxyz", energy_unit="kcal")
