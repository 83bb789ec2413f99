import json

import numpy as np
import pytest

from ase_asteroid import cli, save_checkpoint, units
from ase_asteroid.evaluation import evaluate
from ase_asteroid.graph import batch_configurations
from conftest import FIXTURES, tiny_model


def test_errors_match_a_direct_computation(xtb_data):
    model = tiny_model("egnn", xtb_data).eval()
    result = evaluate(model, xtb_data[:10])
    out = model(batch_configurations(xtb_data[:10], model.cutoff))
    df = (out["forces"].detach().numpy() - np.array([c.forces for c in xtb_data[:10]]).reshape(-1, 3))
    de = out["energy"].detach().numpy() - [c.energy for c in xtb_data[:10]]
    assert result["force_mae_meV_per_A"] == pytest.approx(1000 * np.abs(df).mean())
    assert result["force_rmse_kcal_per_mol_A"] == pytest.approx(
        float(units.from_eV_per_A(np.sqrt((df ** 2).mean()), "kcal/mol/Å")))
    assert result["energy_mae_meV"] == pytest.approx(1000 * np.abs(de).mean())
    hydrogens = np.tile(xtb_data[0].numbers, 10) == 1
    assert result["per_element"]["H"]["force_mae_meV_per_A"] == pytest.approx(1000 * np.abs(df[hydrogens]).mean())


def test_evaluate_cli(xtb_data, tmp_path, capsys):
    path = save_checkpoint(tiny_model("egnn", xtb_data), tmp_path / "m.ckpt")
    assert cli.main(["evaluate", str(path), "--data", str(FIXTURES / "ethanol_gfn2-xtb_sgdml.npz"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["configurations"] == 40 and set(result["per_element"]) == {"H", "C", "O"}
    assert cli.main(["evaluate", str(tmp_path / "absent.ckpt"), "--data", str(FIXTURES / "ethanol_lj.extxyz")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    assert cli.main(["evaluate", str(path), "--data", str(FIXTURES / "ethanol_lj.extxyz"), "--fidelity", "dft"]) == 1
    assert "unknown fidelity 'dft'" in capsys.readouterr().err
