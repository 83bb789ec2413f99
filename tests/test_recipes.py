"""The named training recipes: what a user gets without fit: keys, overriding them, and their
round trip through YAML and the checkpoint's history."""

from dataclasses import asdict

import pytest
import yaml

from ase_asteroid.checkpoint import load_checkpoint, save_checkpoint
from ase_asteroid.training.config import load_config
from ase_asteroid.training.loop import FitConfig, fit
from ase_asteroid.training.recipes import RECIPES, recipe
from conftest import tiny_model


def _yaml(tmp_path, **values):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"method": "asteroid", "accurate": {"path": "demo:ethanol_b3lyp"},
                                    "cheap": {"path": "demo:ethanol_gfn2-xtb"}, **values}))
    return path


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_round_trips_through_yaml(tmp_path, name):
    backend, kind = name.split("-")
    key = "pretrain_fit" if kind == "pretrain" else "fit"
    written = asdict(RECIPES[name])
    config = load_config(_yaml(tmp_path, model={"name": backend}, **{key: written}))
    assert config.fit_config(kind) == RECIPES[name]
    assert load_config(_yaml(tmp_path, model={"name": backend})).fit_config(kind) == RECIPES[name]  # no keys


def test_yaml_keys_override_only_themselves(tmp_path):
    config = load_config(_yaml(tmp_path, model={"name": "mace"}, fit={"epochs": 7}, pretrain_fit={"lr": 0.002}))
    assert config.fit_config("scratch") == FitConfig(**{**asdict(RECIPES["mace-scratch"]), "epochs": 7})
    assert config.fit_config("finetune").epochs == 7 and config.fit_config("finetune").lr == RECIPES["mace-finetune"].lr
    assert config.fit_config("pretrain").lr == 0.002 and config.fit_config("pretrain").epochs == RECIPES["mace-pretrain"].epochs


@pytest.mark.parametrize("fit_keys, message", [({"epoch": 3}, r"fit: unknown key\(s\) \['epoch'\]"),
                                               ({"schedule": "linear"}, "fit: schedule must be one of"),
                                               ({"stage_two_at": 1.5}, r"fit: stage_two_at must be in \[0, 1\]")])
def test_bad_recipe_keys_are_named(tmp_path, fit_keys, message):
    with pytest.raises(ValueError, match=message):
        load_config(_yaml(tmp_path, fit=fit_keys))


def test_the_joint_recipe_differs_from_scratch_only_by_cosine_decay_for_mace():
    """A multi-head stage runs few, long epochs, where a plateau patience in epochs never fires."""
    assert recipe("mace", "joint") == FitConfig(**{**asdict(RECIPES["mace-scratch"]), "schedule": "cosine"})
    assert RECIPES["mace-scratch"].schedule == "plateau"
    assert recipe("egnn", "joint") == recipe("egnn", "scratch")


def test_recipe_for_an_unknown_backend_or_kind_says_so():
    with pytest.raises(ValueError, match="no training recipe for the model 'schnet'"):
        recipe("schnet", "scratch")
    with pytest.raises(ValueError, match="stage kind must be one of"):
        recipe("mace", "warmstart")


def test_the_recipe_round_trips_through_the_checkpoint_history(xtb_data, tmp_path):
    config = recipe("egnn", "scratch", {"epochs": 2, "batch_size": 10})
    model, _ = fit(tiny_model("egnn", xtb_data), xtb_data[:10], xtb_data[10:15], config, progress=False)
    save_checkpoint(model, tmp_path / "m.ckpt")
    stored = load_checkpoint(tmp_path / "m.ckpt").extras.history[-1]["config"]
    assert FitConfig(**stored) == config
