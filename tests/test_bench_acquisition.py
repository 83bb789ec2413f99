"""bench/acquisition.py (issue 18, part 2) on a tiny setting: rows, table, figure, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_MD17, bench_module

STRATEGIES = ("random", "fps-geometry", "fps-model", "bias", "committee")


def _bench():
    return bench_module("acquisition")


def test_labels_to_reach_interpolates_on_log_log_axes():
    bench = _bench()
    curve = [(50, 2.0), (100, 1.0), (200, 0.8)]
    assert bench.labels_to_reach(curve, np.sqrt(2.0)) == pytest.approx(50 * np.sqrt(2.0))  # halfway in log-log
    assert bench.labels_to_reach(curve, 1.0) == pytest.approx(100.0)
    assert bench.labels_to_reach(curve, 3.0) == 50.0  # the first round is already there
    assert bench.labels_to_reach(curve, 0.5) is None  # not reached
    assert bench.labels_to_reach([(50, 2.0), (100, 2.5), (150, 1.0)], 1.5) == pytest.approx(
        np.exp(np.log(100) + np.log(1.5 / 2.5) / np.log(1.0 / 2.5) * np.log(1.5)))  # the first crossing counts


def test_reach_table_tells_an_unfinished_chain_from_one_that_never_reaches_random():
    bench = _bench()
    row = {"molecule": "m", "seed": 0, "force_mae_meV_per_A": 1.0, "seconds": 1.0}
    errors = {"random": [2.0, 1.0, 0.8], "fps-model": [2.0, 0.9, 0.7], "bias": [2.0, 1.2, 0.9], "committee": [2.0, 1.1]}
    rows = [{**row, "strategy": s, "accurate": n, "force_mae_kcal_per_mol_A": e}
            for s, curve in errors.items() for n, e in zip((50, 100, 150), curve)]
    lines = {line.split(" | ")[2]: line for line in bench.reach_table(rows) if line.startswith("| m |")}
    assert "| not reached | - |" in lines["bias"]  # run to 150 like random, never at 0.8
    assert "| not reached (run to 100 of 150) | - |" in lines["committee"]
    needed = np.exp(np.log(100) + np.log(0.8 / 0.9) / np.log(0.7 / 0.9) * np.log(1.5))
    assert f"| fps-model | {needed:.0f} | {150 / needed:.2f}× |" in lines["fps-model"]


@pytest.mark.skipif(not SHARED_MD17.is_dir(), reason="../shared/data/md17 not present")
def test_acquisition_bench_writes_rows_table_and_figure_and_a_rerun_skips_finished_rounds(tmp_path, monkeypatch):
    pytest.importorskip("tblite")
    bench = _bench()
    results, markdown, figure = tmp_path / "r.jsonl", tmp_path / "bench.md", tmp_path / "fig.png"
    argv = ["--molecules", "ethanol", "--model", "egnn", "--epochs", "1", "--rounds", "4", "8", "--seeds", "0", "1",
            "--committee", "2", "--pool", "24", "--val", "4", "--test-size", "10", "--results", str(results),
            "--figure", str(figure), "--write", str(markdown)]
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted((r["strategy"], r["seed"], r["accurate"]) for r in rows) == sorted(
        [(s, seed, n) for s in STRATEGIES for seed in ((0, 1) if s == "random" else (0,)) for n in (4, 8)])
    perm = np.random.default_rng(0).permutation(1000)
    by_key = {(r["strategy"], r["seed"], r["accurate"]): r for r in rows}
    for (strategy, seed, n), r in by_key.items():
        assert len(set(r["labelled"])) == n and set(r["labelled"]) <= set(perm[:20].tolist())  # never val/test
        assert r["labelled"][:4] == by_key[(strategy, seed, 4)]["labelled"]  # rounds add to the labels
        assert r["force_mae_meV_per_A"] == pytest.approx(43.364 * r["force_mae_kcal_per_mol_A"], rel=1e-3)
    assert by_key[("bias", 0, 4)]["labelled"] == by_key[("random", 0, 4)]["labelled"]  # one start set per seed
    assert by_key[("random", 1, 4)]["labelled"] != by_key[("random", 0, 4)]["labelled"]
    text = markdown.read_text()
    assert "<!-- begin acquisition -->" in text and "| ethanol | random | 8 | 2 |" in text
    assert "| ethanol | committee | 8 | 1 |" in text and "labels needed" in text
    assert figure.stat().st_size > 0
    runs = tmp_path / "runs"
    assert (runs / "ethanol_egnn_start_seed0_n4" / "member1").is_dir()  # the committee that picks round 2
    assert not (runs / "ethanol_egnn_committee_seed0_n8" / "member1").exists()  # the last round picks nothing

    calls = []
    original = bench.run_stages
    monkeypatch.setattr(bench, "run_stages", lambda *a, **k: calls.append(a[0].out) or original(*a, **k))
    assert bench.main(argv) == 0  # everything done: nothing trained or loaded
    assert calls == [] and results.read_text().count("\n") == len(rows)

    kept = [line for line in results.read_text().splitlines()
            if not (json.loads(line)["strategy"] == "fps-model" and json.loads(line)["accurate"] == 8)]
    results.write_text("\n".join(kept) + "\n")  # as if interrupted during fps-model's second round
    assert bench.main(argv) == 0
    assert results.read_text().count("\n") == len(rows)  # only the missing row is written again
    again = json.loads(results.read_text().splitlines()[-1])
    assert (again["strategy"], again["accurate"]) == ("fps-model", 8)
    assert again["labelled"] == by_key[("fps-model", 0, 8)]["labelled"]  # round 4's model loaded, same picks
    assert [Path(out).name for out in calls] == ["ethanol_egnn_start_seed0_n4", "ethanol_egnn_fps-model_seed0_n8"]

    calls.clear()
    assert bench.main(argv + ["--strategies", "fps-geometry", "--strategy-seeds", "0", "1"]) == 0  # a second seed
    added = [json.loads(line) for line in results.read_text().splitlines()[len(rows):]]
    assert [(r["strategy"], r["seed"], r["accurate"]) for r in added] == [("fps-geometry", 1, 4), ("fps-geometry", 1, 8)]
    assert added[0]["labelled"] == by_key[("random", 1, 4)]["labelled"]  # seed 1's start labels and model
    assert [Path(out).name for out in calls] == ["ethanol_egnn_start_seed1_n4", "ethanol_egnn_fps-geometry_seed1_n8"]
    assert "| ethanol | fps-geometry | 8 | 2 |" in markdown.read_text()
    results.write_text("\n".join(results.read_text().splitlines()[:len(rows)]) + "\n")

    assert bench.main(argv + ["--table-only", "--score-diagnostic"]) == 0  # models loaded, nothing trained
    diagnostic = markdown.read_text().split("What the scores rank")[1]
    lines = {line.split(" | ")[1]: line.split(" | ") for line in diagnostic.splitlines() if line.startswith("| ethanol")}
    assert sorted(lines) == ["bias", "committee"]  # one round each: the last round's model picked nothing
    for strategy, cells in lines.items():
        assert cells[2:4] == ["4", "16"]  # trained on 4 labels, 16 of the 20 acquirable not
        assert float(cells[4]) > 0 and float(cells[5]) > 0  # a score and a model error, eV/Å
    assert bench.main(argv + ["--table-only"]) == 0  # the table alone leaves the scores' own section as it was
    assert markdown.read_text().count("What the scores rank") == 1
    assert markdown.read_text().split("What the scores rank")[1] == diagnostic
    assert results.read_text().count("\n") == len(rows)


def test_spearman_ranks():
    bench = _bench()
    assert bench.spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert bench.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert bench.spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
