"""bench/test_time_refinement.py's result file: every row measured once, even by concurrent runs."""

from __future__ import annotations

import json

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
