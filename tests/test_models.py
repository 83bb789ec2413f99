"""Physics conformance of every backend, and proof that the checks can fail."""

import numpy as np
import pytest
import torch

from ase_asteroid import testing
from ase_asteroid.graph import batch_configurations
from ase_asteroid.models import ForceField, build_model, config_from_dict
from conftest import TINY_CONFIGS, tiny_model


def test_forces_are_the_exact_negative_gradient(model, xtb_data):
    assert testing.check_finite_difference_forces(model, xtb_data[0]) < 1e-6


def test_rotation_translation_permutation_invariance(model, xtb_data):
    testing.check_invariances(model, xtb_data[1], seed=1)


def test_batched_equals_single(model, xtb_data, lj_data):
    testing.check_batched_equals_single(model, [xtb_data[0], lj_data[3], xtb_data[7]])


def test_calculator_equals_model(model, xtb_data):
    testing.check_calculator_matches_model(model, xtb_data[2])


def test_float32_agrees_with_float64(model, xtb_data):
    single = model.to(torch.float32)(batch_configurations(xtb_data[:2], model.cutoff))
    double = model.to(torch.float64)(batch_configurations(xtb_data[:2], model.cutoff))
    assert single["energy"].dtype == torch.float32
    assert torch.allclose(single["forces"].double(), double["forces"], atol=1e-4)


def test_forward_does_not_modify_the_batch(model, xtb_data):
    batch = batch_configurations(xtb_data[:2], model.cutoff)
    before = batch.positions.clone()
    model(batch)
    assert torch.equal(batch.positions, before) and not batch.positions.requires_grad


def test_energy_references_are_per_fidelity(xtb_data):
    model = tiny_model("egnn", xtb_data)
    model.set_normalization({"ccsd(t)": {1: -1.0, 6: -2.0, 8: -3.0},
                             "pbe": {1: 0.0, 6: 0.0, 8: 0.0}}, scale=1.0)
    batch = batch_configurations([xtb_data[0]] * 2, model.cutoff)
    batch.fidelity = torch.tensor([0, 1])
    energy = model(batch)["energy"]
    assert (energy[0] - energy[1]).item() == pytest.approx(6 * -1.0 + 2 * -2.0 - 3.0)
    assert model.fidelity_index("pbe") == 1
    with pytest.raises(ValueError, match="unknown fidelity 'dft'"):
        model.fidelity_index("dft")


def test_unknown_element_is_named(model, xtb_data):
    config = xtb_data[0]
    numbers = config.numbers.copy()
    numbers[0] = 7
    with pytest.raises(ValueError, match=r"never trained on N \(atom 0\); it knows H, C, O"):
        model(batch_configurations([config.with_(numbers=numbers)], model.cutoff))


def test_same_seed_same_weights_different_seed_different(xtb_data):
    config = TINY_CONFIGS["egnn"]
    a, b, c = build_model(config, seed=1), build_model(config, seed=1), build_model(config, seed=2)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)


def test_egnn_message_layer_equals_its_definition_on_concatenated_features():
    """The EGNN multiplies node terms before gathering them onto edges; the result must be
    the definition m_ij = φ_e([h_i, h_j, radial_ij]) (float64, random features and edges)."""
    from ase_asteroid.models.egnn import EGNNLayer
    layer = EGNNLayer(channels=8, num_radial=5, avg_num_neighbors=3.0).double()
    g = torch.Generator().manual_seed(0)
    h, radial = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(14, 5, generator=g, dtype=torch.float64)
    sender, receiver = torch.randint(0, 6, (2, 14), generator=g)
    definition = layer.message(torch.cat([h[receiver], h[sender], radial], dim=-1))
    assert torch.allclose(layer.edge_messages(h, sender, receiver, radial), definition, rtol=0, atol=1e-12)


@pytest.mark.parametrize("values, message", [
    ({"name": "schnet", "species": [1]}, "unknown model 'schnet'"),
    ({"name": "mace", "species": [1], "chanels": 8}, r"unknown option\(s\).*chanels"),
    ({"name": "mace", "species": []}, "at least one"),
    ({"name": "egnn", "species": [1, 200]}, "1..118"),
    ({"name": "egnn", "species": [1], "cutoff": -1.0}, r"cutoff must be in 0.001..30"),
    ({"name": "mace", "species": [1], "max_L": 5}, "max_L"),
    ({"name": "egnn", "species": [1], "num_layers": 0}, r"num_layers must be in 1..32"),
    ({"name": "egnn", "species": [1], "num_layers": 1e9}, r"num_layers must be an integer, got 1000000000.0"),
    ({"name": "egnn", "species": [1], "channels": "64"}, r"channels must be an integer, got '64' \(str\)"),
    ({"name": "egnn", "species": [1], "cutoff": float("nan")}, "cutoff must be a finite number"),
    ({"name": "egnn", "species": "CH"}, "species must be a list of integers"),
    ({"name": "egnn", "species": [1.5]}, r"species\[0\] must be an integer"),
    ({"name": "egnn"}, "needs species"),
    ({"name": "mace", "species": [1], "radial_mlp": [64] * 40}, r"radial_mlp must have 1..6 entries, got 40"),
    ({"name": "mace", "species": [1], "mlp_irreps": "100000x0e"}, "mlp_irreps must be scalar irreps"),
    (["egnn"], "must be a mapping"),
    ({"name": "egnn", "species": [[1, 6]]}, "species must be a list of integers"),
])
def test_bad_configs_are_rejected_with_a_reason(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_config_from_json_lists_equals_the_original():
    config = TINY_CONFIGS["mace"]
    from dataclasses import asdict
    import json
    assert config_from_dict(json.loads(json.dumps(asdict(config)))) == config


# --- the checks must be able to fail -----------------------------------------------------------

class WrongForces(ForceField):
    """Energy of a real model, forces scaled by 1.01: not the gradient of its energy."""

    def __init__(self, inner):
        super().__init__(inner.config)
        self.inner = inner

    def forward(self, batch, compute_forces=True, create_graph=None):
        out = self.inner(batch, compute_forces, create_graph)
        return {"energy": out["energy"], "forces": 1.01 * out["forces"]}


class NotRotationInvariant(ForceField):
    """Adds a term that depends on absolute x coordinates."""

    def __init__(self, inner):
        super().__init__(inner.config)
        self.inner = inner

    def node_energies(self, batch, positions, species):
        return self.inner.node_energies(batch, positions, species) + 0.1 * positions[:, 0] ** 2


def test_finite_difference_check_catches_wrong_forces(xtb_data):
    broken = WrongForces(tiny_model("egnn", xtb_data))
    with pytest.raises(AssertionError, match="finite differences"):
        testing.check_finite_difference_forces(broken, xtb_data[0])


def test_invariance_check_catches_a_non_invariant_model(xtb_data):
    broken = NotRotationInvariant(tiny_model("egnn", xtb_data)).double()
    with pytest.raises(AssertionError, match="not invariant under rotation"):
        testing.check_invariances(broken, xtb_data[0])



class AddedEnergy(ForceField):
    """A real model plus an extra energy term `extra(positions, species, batch)` per atom."""

    def __init__(self, inner, extra):
        super().__init__(inner.config)
        self.inner, self.extra = inner, extra

    def node_energies(self, batch, positions, species):
        return self.inner.node_energies(batch, positions, species) + self.extra(positions, species, batch)


@pytest.mark.parametrize("extra, message", [
    (lambda x, s, b: 0.1 * (x ** 2).sum(dim=1), "not invariant under translation"),       # |r|²: rotation-invariant
    (lambda x, s, b: 0.01 * torch.arange(len(x), dtype=x.dtype) * s.to(x.dtype), "not invariant under permutation"),
], ids=["translation", "permutation"])
def test_invariance_check_catches_translation_and_permutation(xtb_data, extra, message):
    broken = AddedEnergy(tiny_model("egnn", xtb_data), extra).double()
    with pytest.raises(AssertionError, match=message):
        testing.check_invariances(broken, xtb_data[0])


def test_batched_check_catches_a_model_that_mixes_the_graphs_of_a_batch(xtb_data):
    centred = lambda x, s, b: 0.1 * ((x - x.mean(dim=0)) ** 2).sum(dim=1)   # centre of the whole batch
    broken = AddedEnergy(tiny_model("egnn", xtb_data), centred).double()
    testing.check_invariances(broken, xtb_data[0])                        # invariant on its own
    with pytest.raises(AssertionError, match="batched and single predictions differ"):
        testing.check_batched_equals_single(broken, [xtb_data[0], xtb_data[5]])


def test_calculator_check_catches_a_calculator_that_converts_units(xtb_data, monkeypatch):
    from ase import units
    from ase_asteroid.calculator import AsteroidCalculator
    original = AsteroidCalculator.calculate

    def in_kcal_per_mol(self, *args, **kwargs):      # a unit slip at the ASE boundary
        original(self, *args, **kwargs)
        self.results["forces"] = self.results["forces"] / (units.kcal / units.mol)

    monkeypatch.setattr(AsteroidCalculator, "calculate", in_kcal_per_mol)
    with pytest.raises(AssertionError, match="calculator and model disagree"):
        testing.check_calculator_matches_model(tiny_model("egnn", xtb_data), xtb_data[0])


# --- molecules of different sizes, periodic systems --------------------------------------------

def _configuration(atoms):
    from ase_asteroid.data import Configuration
    return Configuration(atoms.numbers, atoms.positions, cell=np.array(atoms.cell) if atoms.pbc.any() else None,
                         pbc=tuple(bool(p) for p in atoms.pbc))


def test_batched_equals_single_for_molecules_of_different_sizes(model):
    from ase.build import molecule
    sizes = [molecule(name) for name in ("CH3CH2OH", "H2O", "CH4", "CO2", "H2", "CH3OH")]
    testing.check_batched_equals_single(model, [_configuration(m) for m in sizes])


def _periodic_ethanol():
    """Ethanol in a 6 Å cube with periodic boundaries: with a 4 Å cutoff, atoms see their images."""
    from ase.build import molecule
    atoms = molecule("CH3CH2OH")
    atoms.cell, atoms.pbc = np.eye(3) * 6.0, True
    atoms.rattle(0.05, seed=1)
    return atoms


def test_periodic_forces_are_the_gradient_and_a_supercell_is_extensive(model):
    atoms = _periodic_ethanol()
    testing.check_finite_difference_forces(model, _configuration(atoms))
    double = model.double().eval()
    energy, forces = testing._predict(double, [_configuration(atoms)])
    big_energy, big_forces = testing._predict(double, [_configuration(atoms.repeat((2, 2, 2)))])
    assert big_energy[0] == pytest.approx(8 * energy[0], rel=1e-10)
    assert np.allclose(big_forces, np.tile(forces, (8, 1)), atol=1e-9)
    isolated = testing._predict(double, [_configuration(atoms).with_(cell=None, pbc=(False,) * 3)])
    assert abs(isolated[0][0] - energy[0]) > 1e-4     # the images do interact in this cell


def test_aligning_energy_references_removes_a_composition_offset_and_keeps_forces(model, xtb_data):
    """A new molecule's energies 829 eV off (references fitted on other compositions) are
    brought back by the per-element correction; the forces are the same tensors as before."""
    configs = list(xtb_data)[:6]
    before = model(model.batch_of(configs))
    offset = 829.0 + 0.01 * np.arange(len(configs))  # a constant offset and a little noise
    labelled = [c.with_(energy=float(e) + o) for c, e, o in zip(configs, before["energy"].detach(), offset)]
    corrections = model.align_energy_references(labelled)
    after = model(model.batch_of(configs))
    n_atoms = len(configs[0].numbers)
    assert sum(corrections[int(z)] for z in configs[0].numbers) == pytest.approx(offset.mean(), abs=1e-6)
    residual = np.array([c.energy for c in labelled]) - after["energy"].detach().numpy()
    assert np.abs(residual - (offset - offset.mean())).max() < 1e-6 and n_atoms > 0
    assert torch.allclose(after["forces"], before["forces"], rtol=0, atol=1e-12)


def test_aligning_energy_references_needs_energies(model, xtb_data):
    with pytest.raises(ValueError, match="no configuration has an energy"):
        model.align_energy_references([c.with_(energy=None) for c in list(xtb_data)[:2]])
