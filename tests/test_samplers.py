import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from ase_asteroid.labels import get_labeler
from ase_asteroid.labels.base import Labeler
from ase_asteroid.labels.gaff2 import rdkit_molecule
from ase_asteroid.labels.samplers import sample_gaff2_md, sample_labeler_md, sample_normal_modes


class HarmonicBond(Calculator):
    """E = k/2 (r - r0)^2 for a diatomic."""

    implemented_properties = ("energy", "forces")
    k, r0 = 30.0, 1.1  # eV/Å², Å

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        self.results = {"energy": 0.5 * self.k * (r - self.r0) ** 2,
                        "forces": np.array([1, -1])[:, None] * self.k * (r - self.r0) * d / r}


class HarmonicLabeler(Labeler):
    method = fidelity = "harmonic"

    def make_calculator(self):
        return HarmonicBond()


def test_normal_mode_sampling_has_the_boltzmann_bond_variance():
    """For E = k/2 (r - r0)^2, Boltzmann sampling gives var(r) = k_B T / k."""
    start = Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.3]])
    frames = sample_normal_modes(start, HarmonicLabeler(), n=4000, temperature_K=500, seed=0, progress=False)
    r = np.array([np.linalg.norm(a.positions[1] - a.positions[0]) for a in frames])
    expected = units.kB * 500 / HarmonicBond.k
    assert r.mean() == pytest.approx(HarmonicBond.r0, abs=2e-3)
    assert r.var() == pytest.approx(expected, rel=0.06)


def test_gaff2_md_is_seeded_and_stays_a_molecule():
    mol = rdkit_molecule(smiles="CCO")
    a = sample_gaff2_md(mol, 5, 500, every=10, warmup_steps=50, seed=3, progress=False)
    b = sample_gaff2_md(mol, 5, 500, every=10, warmup_steps=50, seed=3, progress=False)
    c = sample_gaff2_md(mol, 5, 500, every=10, warmup_steps=50, seed=4, progress=False)
    assert len(a) == 5 and list(a[0].numbers) == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    assert np.allclose(a[-1].positions, b[-1].positions) and not np.allclose(a[-1].positions, c[-1].positions)
    distances = a[-1].get_all_distances()
    assert distances[0, 1] == pytest.approx(1.53, abs=0.2)   # C-C bond survives 500 K


def test_labeler_md_runs_with_xtb(xtb_data):
    frames = sample_labeler_md(xtb_data[0].to_atoms(), get_labeler("gfn2-xtb"), n=3, temperature_K=300,
                               every=2, warmup_steps=2, seed=0, progress=False)
    assert len(frames) == 3 and not np.allclose(frames[0].positions, frames[2].positions)


@pytest.mark.parametrize("kwargs, message", [({"n": 0}, "n must be positive"),
                                             ({"temperature_K": -5}, "temperature_K must be positive")])
def test_bad_sampling_arguments(kwargs, message):
    args = {"n": 3, "temperature_K": 300} | kwargs
    with pytest.raises(ValueError, match=message):
        sample_normal_modes(Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.2]]), HarmonicLabeler(), **args)
