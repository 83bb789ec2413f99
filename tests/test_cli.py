import json
import subprocess
import sys

import pytest

from ase_asteroid import cli
from simulations import cli as md_cli
from conftest import FIXTURES


def test_help_of_both_commands(capsys):
    for main in (cli.main, md_cli.main):
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
        assert exit_.value.code == 0
    assert "asteroid-md" in capsys.readouterr().out


def test_data_info_text_and_json(capsys):
    assert cli.main(["data", "info", str(FIXTURES / "ethanol_rmd17_layout.npz"), "--labels", "old"]) == 0
    text = capsys.readouterr().out
    assert "pbe+vdw-ts" in text and "kcal/mol" in text and "40 configurations" in text
    assert cli.main(["data", "info", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["configurations"] == 40 and summary["source_units"]["energy"] == "eV"


def test_data_info_bad_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "broken.npz").write_bytes(b"nope")
    assert cli.main(["data", "info", str(tmp_path / "broken.npz")]) == 1
    assert "broken.npz: not a readable npz" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train"], ["quickstart"], ["data", "label"]])
def test_planned_subcommands_say_so(argv, capsys):
    assert cli.main(argv) == 2
    assert "not yet available" in capsys.readouterr().err


def test_md_planned_subcommand(capsys):
    assert md_cli.main(["stability"]) == 2
    assert "not yet available" in capsys.readouterr().err


def test_console_scripts_are_installed():
    for script in ("asteroid", "asteroid-md"):
        result = subprocess.run([sys.executable, "-c",
                                 f"from importlib.metadata import entry_points; "
                                 f"print([e.value for e in entry_points(group='console_scripts') if e.name == '{script}'])"],
                                capture_output=True, text=True, check=True)
        assert ":main" in result.stdout
