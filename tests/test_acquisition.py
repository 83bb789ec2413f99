"""Acquisition: each strategy on a pool where the right answer is known."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch

from ase_asteroid import cli
from ase_asteroid.acquisition import geometry_descriptor, select
from ase_asteroid.data import Configuration, Dataset, read_dataset
from ase_asteroid.models import ForceField
from ase_asteroid.predictor import Predictor
from conftest import FIXTURES, tiny_model


def _diatomics(bonds_A, numbers=(1, 1)) -> Dataset:
    """Diatomics along x: their geometry descriptor is (1/bond,)."""
    return Dataset([Configuration(np.array(numbers), np.array([[0.0, 0, 0], [r, 0, 0]])) for r in bonds_A])


# bond lengths whose inverse are 1.43, 1.41, 1.39, 1.0, 0.667, 0.333 1/Å (mean 1.04)
BONDS = [0.70, 0.71, 0.72, 1.0, 1.5, 3.0]


def test_geometry_descriptor_is_sorted_inverse_distances_per_element_pair():
    numbers = np.array([8, 1, 1])
    positions = np.array([[0.0, 0, 0], [2.0, 0, 0], [0, 1.0, 0]])       # O-H 2 and 1 Å, H-H sqrt(5) Å
    assert np.allclose(geometry_descriptor(numbers, positions), [1 / np.sqrt(5), 0.5, 1.0])
    swapped = geometry_descriptor(numbers[[0, 2, 1]], positions[[0, 2, 1]])
    assert np.allclose(swapped, geometry_descriptor(numbers, positions))


def test_fps_picks_the_most_distant_points():
    # farthest from the mean first (1/3.0), then the far end (1/0.70), then the middle (1/1.0)
    assert select(_diatomics(BONDS), 3, "fps-geometry").indices == [5, 0, 3]


def test_fps_starts_from_the_labelled_set_and_excludes_it():
    labelled = _diatomics([0.70, 3.0])                     # indices 0 and 5 of the pool
    selection = select(_diatomics(BONDS), 2, "fps-geometry", labelled=labelled)
    assert selection.excluded == [0, 5]
    # 1/1.5 is 0.33 from 1/3.0 and 1/1.0 is 0.43 from 1/0.70: 1.0 first, then 1.5
    assert selection.indices == [3, 4]
    assert selection.scores[0] == pytest.approx(1 / 0.7 - 1.0)


def test_fps_covers_every_composition_first():
    pool = Dataset(list(_diatomics([0.7, 0.71, 0.72])) + list(_diatomics([0.9, 0.91], numbers=(1, 9))))
    assert {3, 4} & set(select(pool, 2, "fps-geometry").indices)


def test_random_is_seeded_and_skips_labelled(xtb_data):
    first, again = select(xtb_data, 10, "random", seed=3), select(xtb_data, 10, "random", seed=3)
    assert first.indices == again.indices != select(xtb_data, 10, "random", seed=4).indices
    labelled = xtb_data.subset(range(20))
    picks = select(xtb_data, 20, "random", labelled=labelled, seed=0)
    assert sorted(picks.indices) == list(range(20, 40)) and picks.excluded == list(range(20))


def _with_cheap_errors(model, data, errors_eV_per_A):
    """`data` relabelled with the model's own forces plus a known offset on each configuration."""
    predictor = Predictor(model)
    forces = [f for _, _, chunk in predictor.predict_configurations(data) for f in chunk]
    return Dataset([c.with_(forces=f + e) for c, f, e in zip(data, forces, errors_eV_per_A)])


def test_bias_picks_the_largest_cheap_label_error(xtb_data):
    model = tiny_model("egnn", xtb_data)
    errors = np.zeros(len(xtb_data))
    errors[[3, 7, 11]] = [0.2, 0.5, 0.05]                  # eV/Å on every component
    selection = select(_with_cheap_errors(model, xtb_data, errors), 2, "bias", models=[model])
    assert selection.indices == [7, 3]
    assert selection.scores == pytest.approx([0.5, 0.2], abs=1e-6)


class Tethered(ForceField):
    """A model plus k·|r|² per atom: its forces differ from the model's by 2k·scale·r."""

    def __init__(self, inner, k=0.05):
        super().__init__(inner.config)
        self.inner, self.k = inner, k
        self.set_normalization(inner.energy_references, scale=float(inner.scale))

    def node_energies(self, batch, positions, species):
        return self.inner.node_energies(batch, positions, species) + self.k * (positions ** 2).sum(dim=1)


def test_committee_picks_where_the_models_disagree(xtb_data):
    model = tiny_model("egnn", xtb_data)
    centred = [c.with_(positions=c.positions - c.positions.mean(axis=0)) for c in xtb_data]
    shifts = {4: 3.0, 9: 8.0, 13: 1.5}                       # Å along x: the tether's forces grow with |r|
    pool = Dataset([c.with_(positions=c.positions + [shifts.get(i, 0.0), 0, 0]) for i, c in enumerate(centred)])
    selection = select(pool, 3, "committee", models=[model, Tethered(model).double()])
    assert selection.indices == [9, 4, 13]
    assert select(pool, 3, "committee", models=[model, model]).scores == pytest.approx([0, 0, 0], abs=1e-9)


@pytest.mark.parametrize("backend", ["egnn", "mace"])
def test_node_features_are_invariant_and_fps_model_skips_a_rotated_copy(backend, xtb_data):
    model = tiny_model(backend, xtb_data)
    config = xtb_data[0]
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    rotated = config.with_(positions=config.positions @ rotation.numpy().T)
    from ase_asteroid.graph import batch_configurations
    features = [model.node_features(batch_configurations([c], model.cutoff)) for c in (config, rotated)]
    assert features[0].shape[0] == config.n_atoms and not features[0].requires_grad
    assert torch.allclose(features[0], features[1], atol=1e-8)
    pool = Dataset(list(xtb_data.subset(range(4))) + [rotated])          # index 4 repeats index 0
    assert len({0, 4} & set(select(pool, 4, "fps-model", models=[model]).indices)) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 3, "strategy": "greedy"}, "unknown strategy 'greedy'"),
    ({"n": 41, "strategy": "random"}, "the pool has 40"),
    ({"n": 0, "strategy": "random"}, "must be at least 1, got 0"),
    ({"n": 3, "strategy": "committee", "models": "one"}, "at least 2 models"),
    ({"n": 3, "strategy": "fps-model", "models": "hydrogen-only"}, "model 1 was never trained on C, O \\(in the pool\\); it knows H"),
])
def test_clear_errors(xtb_data, kwargs, message):
    from ase_asteroid.models import EGNNConfig, build_model
    models = {"one": [tiny_model("egnn", xtb_data)], "hydrogen-only": [build_model(EGNNConfig(species=(1,)))]}
    kwargs = {**kwargs, "models": models.get(kwargs.get("models"), [])}
    with pytest.raises(ValueError, match=message):
        select(xtb_data, **kwargs)


def test_bias_without_cheap_labels_is_refused(xtb_data):
    unlabelled = Dataset([c.with_(energy=None, forces=None) for c in xtb_data])
    with pytest.raises(ValueError, match="have no forces"):
        select(unlabelled, 3, "bias", models=[tiny_model("egnn", xtb_data)])


def test_cli_round_trip_select_label_select(tmp_path, capsys):
    pool = FIXTURES / "ethanol_gfn2-xtb.extxyz"
    first, labelled = tmp_path / "round1.extxyz", tmp_path / "round1_labelled.extxyz"
    assert cli.main(["select", str(pool), "--n", "4", "--strategy", "fps-geometry", "--out", str(first)]) == 0
    chosen = json.loads((tmp_path / "round1.extxyz.json").read_text())["indices"]
    frames = ase.io.read(first, index=":")
    assert [a.info["pool_index"] for a in frames] == chosen and "forces" not in frames[0].arrays
    assert cli.main(["data", "label", str(first), "--method", "lj", "--out", str(labelled)]) == 0
    assert len(read_dataset(labelled, energy_unit="eV", force_unit="eV/Å")) == 4
    second = tmp_path / "round2.extxyz"
    assert cli.main(["select", str(pool), "--n", "4", "--strategy", "fps-geometry", "--out", str(second),
                     "--labelled", str(labelled), "--energy-unit", "eV", "--force-unit", "eV/Å"]) == 0
    again = json.loads((tmp_path / "round2.extxyz.json").read_text())
    assert sorted(again["excluded_as_labelled"]) == sorted(chosen) and not set(again["indices"]) & set(chosen)
    capsys.readouterr()
    assert cli.main(["select", str(pool), "--n", "4", "--strategy", "bias", "--out", str(second)]) == 1
    assert "takes one model" in capsys.readouterr().err


def test_cli_loads_checkpoints_for_model_strategies(tmp_path, xtb_data, capsys):
    from ase_asteroid import save_checkpoint
    from ase_asteroid.models import build_model
    from conftest import TINY_CONFIGS

    paths = []
    for seed in (0, 1):                                      # two members of a committee
        model = build_model(TINY_CONFIGS["egnn"], seed=seed, dtype=torch.float64)
        model.set_normalization(tiny_model("egnn", xtb_data).energy_references)
        paths.append(str(save_checkpoint(model, tmp_path / f"model{seed}.ckpt")))
    pool = str(FIXTURES / "ethanol_gfn2-xtb.extxyz")
    for strategy, models in (("bias", paths[:1]), ("fps-model", paths[:1]), ("committee", paths)):
        out = tmp_path / f"{strategy}.extxyz"
        argv = ["select", pool, "--n", "5", "--strategy", strategy, "--out", str(out)]
        assert cli.main(argv + sum((["--model", m] for m in models), [])) == 0, capsys.readouterr().err
        assert len(json.loads((tmp_path / f"{strategy}.extxyz.json").read_text())["indices"]) == 5


def test_scores_in_chunks_equal_scores_at_once(xtb_data):
    from ase_asteroid.acquisition import _in_chunks, bias_scores, model_descriptors

    model = tiny_model("egnn", xtb_data)
    for function in (lambda data: bias_scores(model, data), lambda data: model_descriptors(model, data)):
        assert np.allclose(_in_chunks(function, xtb_data, "test", False, size=7), function(xtb_data), atol=1e-10)
