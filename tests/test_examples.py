"""Every example runs (with short settings)."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("backend", ["mace", "egnn"])
def test_ethanol_calculator_example(tmp_path, backend):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "ethanol_calculator.py"), "--backend", backend,
         "--data", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--out", str(tmp_path / "m.ckpt"),
         "--langevin-steps", "5", "--nve-steps", "5", "--float64"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "NVE 5 x 0.1 fs" in result.stdout and (tmp_path / "m.ckpt").exists()
    assert (tmp_path / "ethanol.xyz").exists()


def test_train_on_demo_example(tmp_path, capsys):
    """The README's demo training script, with tiny settings (run in this process: it is
    the script's main(), not a new interpreter)."""
    import importlib.util

    from ase_asteroid import load_checkpoint
    spec = importlib.util.spec_from_file_location("train_on_demo", EXAMPLES / "train_on_demo.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ethanol_xtb.ckpt"
    assert script.main(["--fidelity", "gfn2-xtb", "--n-train", "20", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "egnn on 20 gfn2-xtb configurations, 1 epochs: test force MAE" in printed and "kcal/mol/Å" in printed
    model = load_checkpoint(out)
    assert model.config.name == "egnn" and model.extras.history[-1]["epochs"] == 1
