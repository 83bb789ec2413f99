"""Budget planner: learning-curve fits and budget splits on synthetic power laws."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ase_asteroid import cli
from ase_asteroid.planning import fit_curves, fit_learning_curve, plan_budget, read_costs


def _noisy(values, seed=0, sigma=0.05):
    return np.asarray(values) * np.exp(np.random.default_rng(seed).normal(0, sigma, len(values)))


def test_fit_recovers_the_exponent_of_a_power_law_within_5_percent():
    n = np.array([25, 50, 100, 200, 400, 800, 1600])
    curve = fit_learning_curve(n, _noisy(2.5 * n ** -0.45), method="standard")
    assert curve.exponents[0] == pytest.approx(0.45, rel=0.05)
    assert 0.02 < curve.residual_std < 0.1                     # the 5 % log-normal scatter
    error, log_std = curve.predict(300)
    assert error == pytest.approx(2.5 * 300 ** -0.45, rel=0.1) and log_std >= curve.residual_std


def test_fit_recovers_both_exponents_with_cheap_labels():
    accurate, cheap = np.meshgrid([50, 100, 200, 400], [500, 2000, 8000])
    accurate, cheap = accurate.ravel(), cheap.ravel()
    curve = fit_learning_curve(accurate, _noisy(4.0 * accurate ** -0.3 * cheap ** -0.15, sigma=0.02), cheap,
                               "asteroid", "gfn2-xtb")
    assert curve.exponents == pytest.approx((0.3, 0.15), rel=0.05)


def test_rows_that_cannot_fit_the_exponents_are_named():
    with pytest.raises(ValueError, match="at least two different accurate counts"):
        fit_learning_curve([200, 200], [1.0, 1.1], method="standard")


def _curves():
    rows = [{"method": "standard", "accurate": n, "cheap": 0, "force_mae": 3 * n ** -0.4} for n in (50, 100, 200, 400)]
    rows += [{"method": "asteroid", "accurate": n, "cheap": m, "cheap_method": "gfn2-xtb",
              "force_mae": 5 * n ** -0.35 * m ** -0.2} for n in (50, 200) for m in (1000, 4000)]
    rows.append({"method": "asteroid", "accurate": 100, "cheap": 2000, "cheap_method": "gfn2-xtb",
                 "force_mae": 5 * 100 ** -0.35 * 2000 ** -0.2 * 1.03})
    return fit_curves(rows)[0]


@pytest.mark.parametrize("budget", [0.3, 2.0, 17.5, 300.0])
def test_no_plan_costs_more_than_the_budget(budget):
    costs = {"ccsd(t)/6-31g": 400.0, "gfn2-xtb": 0.05}
    plans, _ = plan_budget(_curves(), costs, budget, "pyscf:ccsd(t)/6-31g")
    assert plans
    for plan in plans:
        spent_s = plan.accurate * 400.0 + plan.cheap * 0.05
        assert spent_s <= budget * 3600 and plan.cpu_hours <= budget
        assert plan.error_low <= plan.error <= plan.error_high


def test_cheap_labels_win_when_cheap_and_lose_when_they_cost_as_much_as_accurate_ones():
    cheap, dear = ({"ccsd(t)": 400.0, "gfn2-xtb": c} for c in (0.05, 400.0))
    assert plan_budget(_curves(), cheap, 20, "ccsd(t)")[0][0].method == "asteroid"
    assert plan_budget(_curves(), dear, 20, "ccsd(t)")[0][0].method == "standard"


def test_the_best_split_follows_the_exponents():
    # for E = a·n^-b·m^-c under a linear budget, the optimum spends b/(b+c) on accurate labels
    curve = fit_learning_curve([50, 50, 200, 200], [5 * n ** -0.35 * m ** -0.2 for n, m in
                                                  ((50, 1000), (50, 4000), (200, 1000), (200, 4000))],
                               [1000, 4000, 1000, 4000], "asteroid", "gfn2-xtb")
    plan = plan_budget([curve], {"ccsd(t)": 400.0, "gfn2-xtb": 0.05}, 100, "ccsd(t)", steps=1000)[0][0]
    assert plan.accurate * 400 / (100 * 3600) == pytest.approx(0.35 / 0.55, abs=0.01)


def test_costs_from_json_and_from_a_labelled_file(tmp_path):
    import ase.io
    from ase import Atoms

    (tmp_path / "cost.json").write_text(json.dumps({"pyscf:MP2/6-31g*": {"ethanol": 30.0}, "gfn2-xtb": 0.04}))
    frames = [Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], info={"fidelity": "b3lyp/6-31g*", "label_cpu_s": s})
              for s in (2.0, 4.0)]
    ase.io.write(tmp_path / "dft.extxyz", frames)
    costs = read_costs([tmp_path / "cost.json", tmp_path / "dft.extxyz"], molecule="ethanol")
    assert costs == {"mp2/6-31g*": 30.0, "gfn2-xtb": 0.04, "b3lyp/6-31g*": 3.0}
    with pytest.raises(ValueError, match="choose one with --molecule"):
        read_costs([tmp_path / "cost.json"])


def test_cli_plan(tmp_path, capsys):
    rows = [{"method": "standard", "accurate": n, "cheap": 0, "molecule": "ethanol",
             "force_mae_kcal_per_mol_A": 3 * n ** -0.4 * (1.02 if n == 100 else 1)} for n in (50, 100, 200, 400)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "cost.json").write_text(json.dumps({"ccsd(t)/6-31g": 360.0}))
    argv = ["plan", "--budget-cpu-hours", "10", "--cost", str(tmp_path / "cost.json"),
            "--curve", str(tmp_path / "rows.jsonl"), "--accurate-method", "pyscf:ccsd(t)/6-31g"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "recommended for 10 CPU-hours: standard, 100 accurate labels" in out and "kcal/mol/Å" in out
    assert cli.main(argv[:-1] + ["gfn2-xtb"]) == 1
    assert "no cost for the accurate method 'gfn2-xtb'" in capsys.readouterr().err
    assert cli.main(["plan", "--budget-cpu-hours", "0.05"] + argv[3:]) == 1      # less than one label
    assert "no plan fits the budget" in capsys.readouterr().err
    assert cli.main(argv + ["--json"]) == 0
    assert math.isfinite(json.loads(capsys.readouterr().out)["plans"][0]["error"])


def test_rows_of_different_backends_are_not_mixed_in_one_curve(tmp_path):
    from ase_asteroid.planning import read_rows

    rows = [{"method": "standard", "accurate": n, "cheap": 0, "backend": b, "force_mae": s * n ** -0.4}
            for b, s in (("mace", 1.0), ("egnn", 3.0)) for n in (50, 100, 200)]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match="mix backend values egnn, mace: keep one with --where backend=VALUE"):
        fit_curves(read_rows([tmp_path / "rows.json"]))
    (curve,), _ = fit_curves(read_rows([tmp_path / "rows.json"], where={"backend": "mace"}))
    assert curve.n_rows == 3 and math.exp(curve.coefficients[0]) == pytest.approx(1.0)


def test_a_curve_without_cheap_labels_ignores_their_label_set_but_one_with_them_does_not():
    """bench/md17_ccsd.py writes stage 1's standard row with the cheap label set of its run
    ("old") and the other standard rows with "-": one accurate-only curve all the same."""
    rows = [{"method": "standard", "accurate": n, "cheap": 0, "labels": labels, "force_mae": n ** -0.5}
            for n, labels in ((200, "old"), (250, "-"), (450, "-"))]
    (curve,), notes = fit_curves(rows)
    assert curve.n_rows == 3 and curve.exponents[0] == pytest.approx(0.5) and not notes
    cheap = [{"method": "asteroid", "accurate": a, "cheap": m, "labels": labels, "cheap_method": "dft",
              "force_mae": a ** -0.5 * m ** -0.1} for a, m, labels in ((200, 1000, "old"), (400, 2000, "new"),
                                                                       (200, 4000, "old"))]
    with pytest.raises(ValueError, match="mix labels values new, old"):
        fit_curves(cheap)
