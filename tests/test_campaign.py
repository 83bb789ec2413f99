"""``asteroid campaign`` end to end on water with cheap stand-ins: normal-mode sampling,
GFN2-xTB as the cheap method, GFN1-xTB as the "accurate" one, a one-layer EGNN trained for
two epochs, a two-replica 20 fs MD check."""

import contextlib
import io
import re

import numpy as np
import pytest
import yaml

from ase_asteroid import cli
from ase_asteroid.campaign import load_campaign
from ase_asteroid.data import read_dataset
from ase_asteroid.labels.xtb import XTBLabeler

ACCURATE = "gfn1-xtb"
LABEL = XTBLabeler.label


def tiny_values(out) -> dict:
    return {"out": str(out), "molecule": {"smiles": "O"},
            "sampling": {"method": "normal-modes", "n": 40, "temperature_K": 300, "calculator": "gfn2-xtb"},
            "cheap": {"method": "gfn2-xtb", "val": 5},
            "accurate": {"method": ACCURATE, "seed": 6, "val": 4, "test": 6},
            "acquisition": {"strategy": "bias", "per_round": 3, "rounds": 2},
            "training": {"method": "asteroid", "model": {"name": "egnn", "channels": 8, "num_layers": 1, "cutoff": 4.0},
                         "fit": {"epochs": 2, "batch_size": 5}, "pretrain_fit": {"epochs": 1, "batch_size": 10}},
            "stability": {"reference": "gfn2-xtb", "step_sizes_fs": [0.5], "replicas": 2, "time_ps": 0.02,
                          "temperature_K": 300}}


def write_config(folder, values) -> str:
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def accurate_calls(monkeypatch, stop_after: int | None = None) -> list:
    """Record the positions of every accurate (GFN1-xTB) label computed; with `stop_after`,
    Ctrl-C (KeyboardInterrupt) arrives on the call after that many."""
    calls = []

    def counted(self, atoms):
        if self.method == ACCURATE:
            if stop_after is not None and len(calls) == stop_after:
                raise KeyboardInterrupt
            calls.append(np.array(atoms.positions))
        return LABEL(self, atoms)

    monkeypatch.setattr(XTBLabeler, "label", counted)
    return calls


def accurate_frames(out) -> list:
    return [c.positions for path in sorted(out.glob("rounds/round*/labels.extxyz")) for c in read_dataset(path)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny campaign: (its folder, its YAML, the output of the run)."""
    folder = tmp_path_factory.mktemp("campaign")
    config = write_config(folder, tiny_values(folder / "out"))
    with pytest.MonkeyPatch.context() as patch:
        calls = accurate_calls(patch)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert cli.main(["campaign", "--config", config]) == 0
    return folder / "out", config, printed.getvalue(), calls


def test_tiny_campaign_writes_the_report(finished):
    out, _, printed, calls = finished
    assert [line.split(":")[0] for line in printed.splitlines() if line.endswith("running")] == [
        "[1/7] sample", "[2/7] cheap labels", "[3/7] seed set", "[4/7] acquisition", "[5/7] final training",
        "[6/7] stability", "[7/7] report"]
    report = (out / "report.md").read_text()
    labels = {m[0]: int(m[2]) for m in re.findall(r"\| (pool \(cheap\)|seed set[^|]*|round \d \(bias\)) \| "
                                                  r"([^|]+) \| (\d+) \|", report)}
    assert list(labels.values()) == [40, 16, 3, 3]
    assert re.search(r"one accurate label cost as much as [\d.e+]+ cheap ones", report)
    curve = re.findall(r"\| stage 1, round (\d) \| (\d+) \| 0 \|", report)
    assert curve == [("0", "6"), ("1", "9"), ("2", "12")]               # seed set, then 3 more per round
    assert re.search(r"\| final \(asteroid\) \| 12 \| 25 \|", report)   # 40 - 10 held out - 5 cheap val
    assert re.search(r"\| 0.5 \| \d/2[^|]* \| \d/2[^|]* \|", report) and "fine_tuned | gfn2-xtb" in report
    for figure in ("learning_curve.png", "parity.png", "stability/stability.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG" and f"]({figure})" in report
    assert len(calls) == 22 == len(accurate_frames(out))                   # every accurate label computed once


def test_rerun_of_a_finished_campaign_skips_every_step(finished, monkeypatch, capsys):
    out, config, _, _ = finished
    before = (out / "report.md").stat().st_mtime_ns
    calls = accurate_calls(monkeypatch)
    assert cli.main(["campaign", "--config", config]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 7 and all(line.endswith("complete, skipped") for line in lines)
    assert calls == [] and (out / "report.md").stat().st_mtime_ns == before


@pytest.mark.parametrize("stop_after, skipped", [(4, ["sample", "cheap labels"]),
                                                  (17, ["sample", "cheap labels", "seed set"])])
def test_interrupted_accurate_labelling_resumes_without_relabelling(tmp_path, monkeypatch, capsys, stop_after,
                                                                     skipped):
    """Ctrl-C in the seed set's labelling (after 4 of 16) or in round 1's (after 1 of 3)."""
    config = write_config(tmp_path, tiny_values(tmp_path / "out"))
    first = accurate_calls(monkeypatch, stop_after)
    assert cli.main(["campaign", "--config", config]) == cli.INTERRUPTED
    assert "run the same command again to continue" in capsys.readouterr().err
    round0_model = tmp_path / "out" / "rounds" / "round0" / "model" / "standard.ckpt"
    trained = round0_model.stat().st_mtime_ns if round0_model.exists() else None
    second = accurate_calls(monkeypatch)
    assert cli.main(["campaign", "--config", config]) == 0
    printed = capsys.readouterr().out
    assert [line.split("] ")[1].split(":")[0] for line in printed.splitlines() if line.endswith("skipped")] == skipped
    labelled = accurate_frames(tmp_path / "out")
    assert len(first) == stop_after and len(first) + len(second) == len(labelled) == 22
    assert not any(np.allclose(a, b, atol=1e-6) for a in first for b in second)  # nothing labelled twice
    assert trained is None or round0_model.stat().st_mtime_ns == trained         # stage 1 of round 0 kept


@pytest.mark.parametrize("change, message", [
    ({"sampling": {"method": "normal-modes", "temprature_K": 300}},
     r"campaign.yaml: sampling: unknown key\(s\) \['temprature_K'\]; known: \['calculator', 'every'"),
    ({"acqusition": {}}, r"campaign.yaml: unknown key\(s\) \['acqusition'\]; known: \['accurate', 'acquisition'"),
    ({"acquisition": {"strategy": "greedy"}}, r"campaign.yaml: acquisition: strategy: must be one of random"),
    ({"accurate": {"method": "pyscf:mp3/sto-3g", "seed": 2.5}}, r"campaign.yaml: accurate: seed must be an integer"),
    ({"cheap": {"method": "xtb"}}, r"campaign.yaml: cheap: method: unknown labelling method 'xtb'"),
    ({"stability": {"step_sizes_fs": [1, -2]}}, r"campaign.yaml: stability: step_sizes_fs: must be a list of positive"),
    ({"training": {"method": "asteroid", "fit": {"epochz": 2}}},
     r"campaign.yaml: training: fit: unknown key\(s\) \['epochz'\]"),
    ({"training": {"method": "asteroid", "out": "x"}}, r"campaign.yaml: training.out: set by the campaign"),
    ({"molecule": {"smiles": "O", "xyz": "water.xyz"}}, r"campaign.yaml: molecule: give exactly one of smiles and xyz"),
])
def test_config_errors_name_the_file_and_key(tmp_path, change, message):
    path = write_config(tmp_path, {**tiny_values(tmp_path / "out"), **change})
    with pytest.raises(ValueError, match=message):
        load_campaign(path)


def test_changed_config_of_a_finished_step_is_refused(finished, monkeypatch, capsys, tmp_path):
    out, _, _, _ = finished
    values = tiny_values(out)
    values["acquisition"]["per_round"] = 4
    values["stability"]["replicas"] = 3
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    calls = accurate_calls(monkeypatch)
    assert cli.main(["campaign", "--config", write_config(tmp_path, values)]) == 1
    error = capsys.readouterr().err
    assert "step 'acquisition' (acquisition.per_round: 3 -> 4)" in error
    assert "step 'stability' (stability.replicas: 2 -> 3)" in error and "another 'out' folder" in error
    assert calls == [] and {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_methanol_example_config_is_valid():
    """The README's example: methanol from SMILES, GFN2-xTB cheap, MP2/6-31G* accurate, an EGNN."""
    from pathlib import Path

    config = load_campaign(Path(__file__).resolve().parents[1] / "examples" / "campaign_methanol.yaml")
    assert (config.molecule.smiles, config.cheap.method, config.accurate.method) == ("CO", "gfn2-xtb",
                                                                                     "pyscf:mp2/6-31g*")
    accurate = config.accurate.seed + config.accurate.val + config.accurate.test
    assert accurate + config.acquisition.rounds * config.acquisition.per_round == 270
    assert config.train_config(config.training["method"], "x").model.name == "egnn"


def test_molecule_file_is_relative_to_the_config_and_molecule_is_required(tmp_path):
    from ase_asteroid.campaign import campaign_from_values

    config = campaign_from_values({"molecule": {"xyz": "water.xyz"}}, tmp_path, "c.yaml")
    assert config.molecule.xyz == str(tmp_path / "water.xyz")
    with pytest.raises(ValueError, match=r"c.yaml: molecule: missing"):
        campaign_from_values({"out": "x"}, tmp_path, "c.yaml")


def test_workers_and_scheduler_reach_the_labelling(monkeypatch, tmp_path):
    """--workers / --scheduler go from the command line to every label run of the campaign."""
    from ase_asteroid.campaign import run as campaign_run
    from ase_asteroid.campaign.steps import Campaign

    seen = {}
    monkeypatch.setattr("ase_asteroid.campaign.run_campaign", lambda config, **options: seen.update(options) or "r.md")
    assert cli.main(["campaign", "--config", write_config(tmp_path, tiny_values(tmp_path / "out")),
                     "--scheduler", "tcp://host:8786"]) == 0
    assert seen["scheduler"] == "tcp://host:8786" and seen["workers"] == 1
    monkeypatch.setattr(campaign_run, "label_file", lambda *args, **options: seen.update(options) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        campaign_run.label(Campaign(load_campaign(tmp_path / "campaign.yaml"), workers=3), tmp_path / "a", "lj",
                           tmp_path / "b")
    assert seen["workers"] == 3 and seen["mode"] == "append"
