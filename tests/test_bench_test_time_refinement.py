"""bench/test_time_refinement.py's result file: every row measured once, even by concurrent runs."""

from __future__ import annotations

import json

import pytest

from conftest import bench_module

Results = bench_module("test_time_refinement").Results


def test_a_row_is_measured_once_and_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    calls = []
    measure = lambda: calls.append(1) or {"value": 1.5}
    assert Results(path).row("lj", "refinement", "benzene", measure)["value"] == 1.5
    assert Results(path).row("lj", "refinement", "benzene", measure)["value"] == 1.5  # a rerun reads it
    assert len(calls) == 1
    assert [json.loads(line)["name"] for line in path.read_text().splitlines()] == ["benzene"]


def test_a_row_written_by_a_concurrent_run_is_not_measured_again(tmp_path):
    path = tmp_path / "results.jsonl"
    first, second = Results(path), Results(path)  # both started before either measured anything
    first.row("gfn2-xtb", "stability", "paracetamol", lambda: {"stable": 20})
    row = second.row("gfn2-xtb", "stability", "paracetamol", lambda: {"stable": 0})
    assert row["stable"] == 20
    assert len(path.read_text().splitlines()) == 1


def test_table_only_reads_rows_and_refuses_to_measure_a_missing_one(tmp_path):
    path = tmp_path / "results.jsonl"
    Results(path).row("lj", "refinement", "benzene", lambda: {"value": 1.5})
    never = lambda: pytest.fail("--table-only measured a row")
    assert Results(path, table_only=True).row("lj", "refinement", "benzene", never)["value"] == 1.5
    with pytest.raises(SystemExit, match=r"no row \(lj, refinement, uracil\)"):
        Results(path, table_only=True).row("lj", "refinement", "uracil", never)


def test_table_only_trains_nothing(tmp_path):
    """No data and no model: the run stops at the first missing row instead of training a base model."""
    main = bench_module("test_time_refinement").main
    with pytest.raises(SystemExit, match=r"no row \(lj, training, model\)"):
        main(["--table-only", "--priors", "lj", "--out", str(tmp_path), "--data-dir", str(tmp_path / "none")])


def test_labels_needed_finds_the_fewest_plain_labels_that_match_ttt():
    labels_needed = bench_module("test_time_refinement").labels_needed
    errors = {(10, None): 140.0, (10, "ttt"): 120.0, (50, None): 119.0, (50, "ttt"): 110.0,
              (100, None): 112.0, (100, "ttt"): 105.0}
    text = labels_needed(errors, [10, 50, 100])
    assert "10 labels after TTT (120.0 meV/Å): more than 10, at most 50 without" in text
    assert "50 labels after TTT (110.0 meV/Å): more than 100 without" in text


def test_summary_table_has_a_row_per_prior_with_its_mean_changes():
    bench = bench_module("test_time_refinement")
    report = {"ttt_prior_loss_before": 4.0, "ttt_prior_loss_train": 2.0}
    ttt_report = {"seconds_per_structure": 3.0, "ttt_label_seconds": 0.3, "ttt_structures": 30}
    rows = [{"unseen": unseen, "none": 100.0, "ttt": 100.0 * (0.8 if unseen else 1.02), "ttt_gated": 100.0 * (0.8 if unseen else 1.0),
             "gradient_cosine": 0.5, "report": report, "ttt_report": ttt_report} for unseen in (False, True)]
    table = bench.summary_table({"gfn2-xtb": bench.prior_summary(rows, 600.0), "lj": bench.prior_summary(rows, 60.0)})
    line = next(l for l in table.splitlines() if l.startswith("| gfn2-xtb"))
    assert "| 10 | +2.0% | +0.0% | -20.0% | -20.0% |" in line and "| 2.0 | 2.0 |" in line and "3.00 (0.0100)" in line
    assert any(l.startswith("| lj | 1 |") for l in table.splitlines())
