import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

from ase_asteroid.data import (Configuration, Dataset, center, fit_energy_references, remove_duplicates,
                               remove_leakage, split, split_indices)
from ase_asteroid.data.references import force_rms
from ase_asteroid.data.summary import format_summary, summarize
from ase_asteroid.data.tools import duplicate_indices, leaking_indices, matching_pairs


def test_split_indices_follow_the_benchmark_protocol():
    perm = np.random.default_rng(0).permutation(1000)
    train, val, rest = split_indices(1000, [200, 50, -1], seed=0)
    assert np.array_equal(train, perm[:200]) and np.array_equal(val, perm[200:250])
    assert len(rest) == 750 and len(set(train) | set(val) | set(rest)) == 1000


def test_split_is_seeded_and_checked(xtb_data):
    a, b = split(xtb_data, [10, 5], seed=3)
    a2, _ = split(xtb_data, [10, 5], seed=3)
    assert [id(c) for c in a] == [id(c) for c in a2] and len(b) == 5
    assert {id(c) for c in a}.isdisjoint({id(c) for c in b})
    with pytest.raises(ValueError, match="do not fit"):
        split(xtb_data, [30, 30])


def _shifted(dataset, indices, by):
    """Copies with atom 0 moved by `by` Å along x (this changes interatomic distances)."""
    moved = []
    for i in indices:
        positions = dataset[i].positions.copy()
        positions[0, 0] += by
        moved.append(dataset[i].with_(positions=positions))
    return Dataset(moved)


def test_duplicates_are_found_within_tolerance(xtb_data):
    data = xtb_data + _shifted(xtb_data, [4, 7], 1e-8) + _shifted(xtb_data, [9], 1e-3)
    assert duplicate_indices(data, tolerance_A=1e-6) == [40, 41]
    assert len(remove_duplicates(data, tolerance_A=1e-6)) == 41
    assert len(remove_duplicates(data, tolerance_A=1e-2)) == 40


def test_leakage_filter_drops_test_geometries(xtb_data):
    test = _shifted(xtb_data, [2, 5, 11], 5e-4)         # within 1e-3 Å of three configs
    far = _shifted(xtb_data, [20], 5e-3)
    assert leaking_indices(xtb_data, test + far, tolerance_A=1e-3) == [2, 5, 11]
    assert len(remove_leakage(xtb_data, test, tolerance_A=1e-3)) == 37
    assert len(remove_leakage(xtb_data, test, tolerance_A=1e-4)) == 40


def test_leakage_is_found_in_another_frame(xtb_data):
    """The MD17 ethanol CCSD(T) file and rMD17 store the same geometries in different frames."""
    from ase_asteroid.testing import random_rotation
    rotation = random_rotation(np.random.default_rng(0))
    test = Dataset([xtb_data[i].with_(positions=xtb_data[i].positions @ rotation.T + 2.0) for i in (3, 8)])
    assert leaking_indices(xtb_data, test) == [3, 8]
    assert leaking_indices(xtb_data, test, compare="coordinates") == []
    assert duplicate_indices(xtb_data + test) == [40, 41]
    with pytest.raises(ValueError, match="compare must be one of"):
        leaking_indices(xtb_data, test, compare="rmsd")


def test_matching_pairs_name_the_partner_and_the_true_bias_survives_the_frame(xtb_data):
    """bench/label_bias.py: pairs found across frames, the rotation recovered, forces compared in one frame."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("label_bias", Path(__file__).parents[1] / "bench" / "label_bias.py")
    sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
    label_bias = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(label_bias)
    from ase_asteroid.testing import random_rotation
    rotation = random_rotation(np.random.default_rng(1))
    other = xtb_data[0].with_(numbers=xtb_data[0].numbers[::-1])  # another atom order: another group
    partners = Dataset([other] + [xtb_data[i].with_(positions=xtb_data[i].positions @ rotation.T - 3.0,
                                                    forces=xtb_data[i].forces @ rotation.T + 0.25) for i in (7, 4)])
    assert matching_pairs(xtb_data, partners) == [(4, 2), (7, 1)]  # indices into `partners`, not into a group
    mirrored = xtb_data[7].positions * [-1.0, 1.0, 1.0]
    assert np.isclose(np.linalg.det(label_bias.superimposing_rotation(xtb_data[7].positions, mirrored)), 1.0)
    for i, j in matching_pairs(xtb_data, partners):
        r = label_bias.superimposing_rotation(xtb_data[i].positions, partners[j].positions)
        assert np.isclose(np.linalg.det(r), 1.0) and np.allclose(r, rotation.T, atol=1e-8)
        assert np.isclose(np.abs(xtb_data[i].forces @ r - partners[j].forces).mean(), 0.25)


def test_center_moves_the_molecule_to_the_origin(xtb_data):
    far = Dataset([c.with_(positions=c.positions + [-181.0, 120.0, 201.0]) for c in xtb_data[:3]])
    centered = center(far)
    for before, after in zip(far, centered):
        assert np.allclose(after.positions.mean(axis=0), 0.0, atol=1e-12)
        assert np.allclose(after.positions - after.positions[0], before.positions - before.positions[0])


def test_references_recover_exact_per_element_energies():
    true = {1: -13.6, 6: -1029.5, 8: -2041.2}
    configs = []
    for name in ("CH3CH2OH", "CH4", "H2O", "CO2"):
        atoms = molecule(name)
        for fidelity, offset in (("accurate", 0.0), ("cheap", 1.0)):
            energy = sum(true[z] + offset for z in atoms.numbers)
            configs.append(Configuration(atoms.numbers, atoms.positions, energy, fidelity=fidelity))
    refs = fit_energy_references(Dataset(configs))
    for z, e in true.items():
        assert refs["accurate"][z] == pytest.approx(e, abs=1e-8)
        assert refs["cheap"][z] == pytest.approx(e + 1.0, abs=1e-8)


def test_references_of_one_molecule_reproduce_its_mean_energy(xtb_data, lj_data):
    refs = fit_energy_references(xtb_data + lj_data)
    assert set(refs) == {"gfn2-xtb", "lj"}
    counts = {1: 6, 6: 2, 8: 1}
    for fidelity, data in (("gfn2-xtb", xtb_data), ("lj", lj_data)):
        predicted = sum(n * refs[fidelity][z] for z, n in counts.items())
        assert predicted == pytest.approx(np.mean([c.energy for c in data]), abs=1e-8)


def test_force_rms(xtb_data):
    all_forces = np.concatenate([c.forces.ravel() for c in xtb_data])
    assert force_rms(xtb_data) == pytest.approx(np.sqrt(np.mean(all_forces ** 2)))


def test_summary_reports_counts_units_and_statistics(xtb_data, lj_data):
    summary = summarize(xtb_data + lj_data)
    assert summary["configurations"] == 80 and summary["elements"] == ["H", "C", "O"]
    xtb = summary["fidelities"]["gfn2-xtb"]
    assert xtb["with_forces"] == 40
    assert xtb["energy_eV"]["mean"] == pytest.approx(np.mean([c.energy for c in xtb_data]))
    text = format_summary(summary)
    assert "gfn2-xtb" in text and "kcal/mol" in text and "C2H6O" in text
