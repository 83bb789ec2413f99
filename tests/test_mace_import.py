"""mace-torch sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 when imported; the package must put it
back, and EGNN paths must not import mace at all. Each case runs in a fresh interpreter,
since the variable and sys.modules are process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ase_asteroid.models import EGNNConfig, build_model
from ase_asteroid.models.radial import BesselBasis, PolynomialCutoff

VARIABLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

SCRIPT = textwrap.dedent("""
    import os, sys, pathlib, pickle, torch
    marker = pathlib.Path(sys.argv[1]) / "payload_ran"
    payload = pathlib.Path(sys.argv[1]) / "payload.pt"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    torch.save({"weights": Payload()}, payload)  # torch's own format, a pickle inside

    def env():
        return os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "<unset>")

    user = env()
    import ase_asteroid
    from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
    from ase_asteroid.checkpoint import load_checkpoint, save_checkpoint
    from ase_asteroid.refinement.refine import refine_model
    from ase_asteroid.calculator import AsteroidCalculator
    from ase.build import molecule
    assert env() == user, ("import", env())
    egnn = build_model(EGNNConfig(species=(1, 8), channels=4, num_layers=1, num_radial=4))
    egnn_path = save_checkpoint(egnn, pathlib.Path(sys.argv[1]) / "e.ckpt")
    load_checkpoint(egnn_path).with_cutoff(4.0)
    water = molecule("H2O")
    water.calc = AsteroidCalculator(egnn_path, dtype="float64")  # the Predictor's path
    water.get_forces()
    assert "mace" not in sys.modules and "e3nn" not in sys.modules, "EGNN imported mace"
    mace = build_model(MACEConfig(species=(1, 8), channels=4, max_ell=1, correlation=1,
                                  num_interactions=1, radial_mlp=(4,)))
    load_checkpoint(save_checkpoint(mace, pathlib.Path(sys.argv[1]) / "m.ckpt"))
    assert "mace" in sys.modules
    assert env() == user, ("after mace", env())
    try:
        torch.load(payload)
        print("LOADED")
    except pickle.UnpicklingError:
        print("REFUSED")
    print("MARKER" if marker.exists() else "CLEAN")
""")


def _run(tmp_path, user_value: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if user_value is not None:
        env[VARIABLE] = user_value
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if user_value is None:
        assert VARIABLE not in result.stderr  # e3nn's warning about the variable is not shown
    return result.stdout.split()


def test_unset_variable_stays_unset_and_pickles_are_refused(tmp_path):
    assert _run(tmp_path, None) == ["REFUSED", "CLEAN"]


def test_users_own_setting_is_kept(tmp_path):
    """Whoever sets the variable on purpose keeps it (and torch.load unpickles, as they asked)."""
    assert _run(tmp_path, "1") == ["LOADED", "MARKER"]


@pytest.mark.parametrize("r_max, basis", [(4.0, 8), (5.5, 3)])
def test_own_radial_functions_equal_mace_torch(r_max, basis):
    from ase_asteroid.models.mace_import import import_mace

    before = os.environ.get(VARIABLE)
    import_mace()
    assert os.environ.get(VARIABLE) == before
    from mace.modules.radial import BesselBasis as MaceBessel, PolynomialCutoff as MaceCutoff

    r = torch.linspace(0.1, r_max + 1.0, 50, dtype=torch.float64)[:, None]
    ours, theirs = BesselBasis(r_max, basis).double(), MaceBessel(r_max, basis).double()
    assert torch.allclose(ours(r), theirs(r), atol=0, rtol=1e-15)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert torch.equal(PolynomialCutoff(r_max).double()(r), MaceCutoff(r_max).double()(r))


def test_egnn_state_dict_names_are_unchanged():
    """Checkpoints written while EGNN used mace-torch's modules still load."""
    keys = build_model(EGNNConfig(species=(1,), channels=4, num_layers=1, num_radial=4)).state_dict()
    assert {"radial.bessel_weights", "radial.r_max", "radial.prefactor", "envelope.p",
            "envelope.r_max"} <= set(keys)
