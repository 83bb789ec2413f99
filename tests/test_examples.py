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
