"""bench/planner_validation.py: leave-one-out predictions of the planner on result rows."""

from __future__ import annotations

import json

import pytest

from conftest import bench_module


def _bench():
    return bench_module("planner_validation")


def _row(n: int, mae: float, seed: int = 0, method: str = "standard") -> dict:
    return {"molecule": "ethanol", "backend": "mace", "labels": "-", "method": method, "accurate": n, "cheap": 0,
            "seed": seed, "force_mae_kcal_per_mol_A": mae}


def test_a_power_law_is_predicted_exactly_and_seeds_are_averaged(tmp_path, capsys):
    bench = _bench()
    rows = [_row(n, 2.0 * n ** -0.5) for n in (100, 200, 400)]
    rows += [_row(800, 2.0 * 800 ** -0.5 * 1.5, seed=1), _row(800, 2.0 * 800 ** -0.5 * 0.5, seed=2)]  # mean on the law
    rows += [_row(100, 5.0, method="cheap_only"), _row(250, 1.0, method="other"), _row(500, 0.5, method="other")]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    points = bench.curves_of(rows)[("ethanol", "mace", "-", "", "standard")]
    assert points[(800, 0)] == pytest.approx(2.0 * 800 ** -0.5)
    predictions = bench.leave_one_out(points, "standard")
    assert len(predictions) == 4 and all(p["measured"] == pytest.approx(p["predicted"]) for p in predictions)
    assert [p["extrapolated"] for p in predictions] == [True, False, False, True]
    assert bench.main(["--results", str(path), "--where", "backend=mace"]) == 0
    out = capsys.readouterr().out
    assert "Within 25% of the measured error, fit on the others: 4 of 4 predictions." in out
    assert "Within 25% of the measured error, fit on fewer labels only: 2 of 2 predictions." in out  # 400 and 800
    assert "| other |" not in out  # two counts: nothing to leave out


def test_a_prediction_off_by_more_than_the_tolerance_is_counted_as_missed():
    bench = _bench()
    points = {(100, 0): 1.0, (200, 0): 0.5, (400, 0): 0.5}
    text = bench.table({("ethanol", "mace", "-", "", "standard"): bench.leave_one_out(points, "standard")})
    assert "Within 25% of the measured error, fit on the others: 0 of 3 predictions." in text  # ratios 2, 0.71, 2


def test_rows_of_other_epochs_are_other_curves():
    bench = _bench()
    rows = [dict(_row(250, 0.8), epochs=60), dict(_row(250, 0.6), epochs=140), dict(_row(450, 0.5), epochs=140)]
    curves = bench.curves_of(rows)
    assert curves[("ethanol", "mace", "-", "60", "standard")] == {(250, 0): 0.8}
    assert curves[("ethanol", "mace", "-", "140", "standard")] == {(250, 0): 0.6, (450, 0): 0.5}


def test_acquisition_rows_of_random_picks_form_their_own_curve_and_other_strategies_are_dropped(tmp_path, capsys):
    bench = _bench()
    acquisition = [{"molecule": "ethanol", "backend": "mace", "strategy": strategy, "seed": seed, "accurate": n,
                    "epochs": 100, "force_mae_kcal_per_mol_A": (3.0 if strategy == "random" else 1.0) * n ** -0.4
                    * (1.1 if seed else 0.9)}
                   for strategy in ("random", "bias") for seed in (0, 1) for n in (50, 100, 150, 250)]
    recipes = [dict(_row(n, 2.0 * n ** -0.5), epochs=100) for n in (100, 200, 400)]
    curves = bench.curves_of(bench.planner_rows(acquisition + recipes))
    random_curve = curves[("ethanol", "mace", "-", "100", bench.ACQUISITION_METHOD)]
    assert random_curve == pytest.approx({(n, 0): 3.0 * n ** -0.4 for n in (50, 100, 150, 250)})  # seeds averaged
    assert curves[("ethanol", "mace", "-", "100", "standard")] == pytest.approx({(n, 0): 2.0 * n ** -0.5 for n in (100, 200, 400)})
    assert len(curves) == 2  # the bias rows are not a curve of the planner's law
    path = tmp_path / "acquisition.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in acquisition))
    assert bench.main(["--results", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fit on the others: 4 of 4 predictions." in out and "| bias |" not in out
    assert "fit on fewer labels only: 2 of 2 predictions." in out  # 150 and 250


def test_forward_predictions_use_only_smaller_counts_and_skip_multi_fidelity_curves():
    bench = _bench()
    # a curve that flattens: the law fitted on 100 and 200 over-predicts the fall to 400 and 800
    points = {(100, 0): 1.0, (200, 0): 0.5, (400, 0): 0.45, (800, 0): 0.44}
    found = {p["accurate"]: p for p in bench.forward(points, "standard")}
    assert sorted(found) == [400, 800] and all(p["extrapolated"] for p in found.values())
    assert found[400]["predicted"] == pytest.approx(0.25) and found[400]["fitted_on"] == 2
    assert found[800]["fitted_on"] == 3
    assert bench.forward({(200, 1000): 0.3, (200, 2000): 0.28, (400, 4000): 0.2}, "pretrain_finetune") == []
