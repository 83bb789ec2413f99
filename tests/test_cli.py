import json
import subprocess
import sys

import ase.io
import pytest

from ase_asteroid import cli
from simulations import cli as md_cli
from ase_asteroid.data import read_dataset
from conftest import FIXTURES


def test_help_of_both_commands(capsys):
    for main in (cli.main, md_cli.main):
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
        assert exit_.value.code == 0
    assert "asteroid-md" in capsys.readouterr().out


def test_data_info_text_and_json(capsys):
    assert cli.main(["data", "info", str(FIXTURES / "ethanol_rmd17-keys.npz"), "--labels", "old"]) == 0
    text = capsys.readouterr().out
    assert "pbe+vdw-ts" in text and "kcal/mol" in text and "40 configurations" in text
    assert cli.main(["data", "info", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["configurations"] == 40 and summary["source_units"]["energy"] == "eV"


def test_data_info_bad_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "broken.npz").write_bytes(b"nope")
    assert cli.main(["data", "info", str(tmp_path / "broken.npz")]) == 1
    assert "broken.npz: not a readable npz" in capsys.readouterr().err


def test_console_scripts_are_installed():
    for script in ("asteroid", "asteroid-md"):
        result = subprocess.run([sys.executable, "-c",
                                 f"from importlib.metadata import entry_points; "
                                 f"print([e.value for e in entry_points(group='console_scripts') if e.name == '{script}'])"],
                                capture_output=True, text=True, check=True)
        assert ":main" in result.stdout


def test_sample_label_info_round_trip(tmp_path, capsys):
    configs, labelled = tmp_path / "c.extxyz", tmp_path / "l.extxyz"
    assert cli.main(["data", "sample", "--smiles", "CCO", "--method", "gaff2-md", "--temperature-K", "500",
                     "--n", "6", "--every", "5", "--out", str(configs)]) == 0
    assert cli.main(["data", "label", str(configs), "--method", "lj", "--subset", "4",
                     "--out", str(labelled)]) == 0
    assert "lj: 4 labelled" in capsys.readouterr().out
    assert cli.main(["data", "info", str(labelled)]) == 0
    assert "fidelity 'lj': 4 configurations" in capsys.readouterr().out
    assert cli.main(["data", "label", str(configs), "--method", "lj", "--out", str(labelled), "--append"]) == 0
    assert "2 labelled, 4 already" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["data", "sample", "--smiles", "C1CC", "--method", "gaff2-md", "--temperature-K", "300", "--n", "2"],
     "cannot parse the SMILES"),
    (["data", "label", "MISSING.extxyz", "--method", "lj"], "no such file"),
    (["data", "label", "CONFIGS", "--method", "pyscf:nonsense/sto-3g"], "knows no method or functional"),
    (["data", "label", "CONFIGS", "--method", "lj", "--out-exists"], "exists: pass --append"),
])
def test_bad_input_is_a_clear_error(argv, message, tmp_path, capsys):
    configs = tmp_path / "configs.extxyz"
    ase.io.write(configs, [c.to_atoms() for c in read_dataset(FIXTURES / "ethanol_lj.extxyz")[:2]])
    out = tmp_path / "out.extxyz"
    if "--out-exists" in argv:
        out.write_text("keep me")
        argv = [a for a in argv if a != "--out-exists"]
    argv = [str(configs) if a == "CONFIGS" else str(tmp_path / a) if a == "MISSING.extxyz" else a for a in argv]
    assert cli.main(argv + ["--out", str(out)]) == 1
    assert message in capsys.readouterr().err


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "qs"
    assert cli.main(["quickstart", "--out", str(out), "--epochs", "1", "--pretrain-epochs", "1",
                     "--cost-ratio", "2"]) == 0
    text = capsys.readouterr().out
    assert "| standard | 250 | 0 |" in text and "| asteroid (gamma 0.05 eV/Å) | 200 | 100 |" in text
    assert "| pre-train + fine-tune, no bias weights | 200 | 100 |" in text
    for name in ("standard/standard.ckpt", "asteroid/fine_tuned.ckpt", "pretrain_finetune/fine_tuned.ckpt",
                 "parity.png"):
        assert (out / name).stat().st_size > 0


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("main, target, argv, kept", [
    (cli.main, "ase_asteroid.cli.data_label", ["data", "label", "x.xyz", "--method", "lj", "--out", "o.xyz"],
     "asteroid: interrupted; the labels written so far are kept in --out; run the same command with --append"),
    (cli.main, "ase_asteroid.cli.train_command", ["train", "--config", "c.yaml"],
     "asteroid: interrupted; finished stages and the last finished epoch are kept"),
    (md_cli.main, "simulations.cli.stability", ["stability", "m.ckpt", "--molecule", "m.xyz"],
     "asteroid-md: interrupted; finished runs are kept in --out; run the same command with --resume"),
])
def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys, main, target, argv, kept):
    monkeypatch.setattr(target, _interrupt)
    assert main(argv) == 130
    error = capsys.readouterr().err
    assert error.startswith(kept) and error.count("\n") == 1 and "Traceback" not in error


def test_unit_options_and_the_one_line_unit_warning(tmp_path, xtb_data, capsys):
    import numpy as np
    path = tmp_path / "ev.npz"  # an MD17-style file, but written in eV and eV/Å
    np.savez(path, R=np.array([c.positions for c in xtb_data]), z=xtb_data[0].numbers,
             E=np.array([c.energy for c in xtb_data]), F=np.array([c.forces for c in xtb_data]))
    assert cli.main(["data", "info", str(path)]) == 0
    error = capsys.readouterr().err
    assert error.startswith("asteroid: warning: ") and "forces read as kcal/mol/Å" in error and error.count("\n") == 1
    assert cli.main(["data", "info", str(path), "--energy-unit", "eV", "--force-unit", "eV/Å"]) == 0
    assert capsys.readouterr().err == ""
