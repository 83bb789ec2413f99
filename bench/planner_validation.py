"""Does `asteroid plan` predict errors it has not seen? Leave-one-out on measured rows.

    python bench/planner_validation.py --results bench_results/md17_recipes.jsonl bench_results/acquisition.jsonl \
        --where backend=mace --write docs/acquisition.md

The rows (bench/md17_ccsd.py's results: one per run, seeds averaged per label count) are
grouped into learning curves as the planner groups them (method, and molecule, backend and
cheap label set held fixed), and by training epochs. For every label count of a curve, the planner's own fit
(ase_asteroid.planning.fit_curves) is made on the curve's other counts and asked for the
left-out one; reported: predicted and measured force MAE, their ratio, whether the
prediction extrapolates beyond the fitted counts, and how many predictions lie within 25 %
(the issue's target). A curve needs three or more counts to leave one out. Accurate-only
curves are also predicted forward, as a pilot study would be used: each count from the
smaller counts alone (two or more), always an extrapolation.

bench/acquisition.py's results files are read too: their `random` rows (accurate labels drawn
at random, round after round, no cheap labels) form the curve "standard, random picks" of
their molecule, backend and epochs — one where the accurate count spans a factor of five.
The other strategies' rows are not used: the planner's law is for labels drawn at random.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from docs_section import report

from ase_asteroid.planning import SETTING_KEYS, fit_curves, read_rows

KEY = "force_mae_kcal_per_mol_A"
TOLERANCE = 0.25


ACQUISITION_METHOD = "standard, random picks"


def planner_rows(rows: list[dict]) -> list[dict]:
    """The rows as learning-curve points: bench/acquisition.py's rows (they have a "strategy")
    become accurate-only rows of ACQUISITION_METHOD if their strategy is random, and are
    dropped otherwise; bench/md17_ccsd.py's rows are kept as they are."""
    return [r if "strategy" not in r else {**r, "method": ACQUISITION_METHOD, "cheap": 0, "labels": "-"}
            for r in rows if r.get("strategy", "random") == "random"]


def curves_of(rows: list[dict]) -> dict[tuple, dict[tuple, float]]:
    """{(molecule, backend, labels, epochs, method): {(accurate, cheap): mean force MAE over seeds}}:
    rows of other training epochs are other curves, never averaged together."""
    groups: dict[tuple, dict[tuple, list[float]]] = {}
    for r in rows:
        if r["method"] == "cheap_only":  # no accurate labels: not a point of any planner curve
            continue
        settings = {**r, "labels": r.get("labels", "") if r.get("cheap") else "-"}  # no cheap labels, no label set
        group = tuple(str(settings.get(k, "")) for k in (*SETTING_KEYS, "epochs")) + (r["method"],)
        groups.setdefault(group, {}).setdefault((r["accurate"], r.get("cheap", 0)), []).append(r[KEY])
    return {g: {n: float(np.mean(v)) for n, v in points.items()} for g, points in groups.items()}


def _prediction(points: dict[tuple, float], left: tuple, fitted: list[tuple], method: str) -> dict | None:
    """The planner's prediction at `left` from its fit on the points `fitted` (None if they cannot be fitted)."""
    rest = [{"method": method, "accurate": a, "cheap": c, "cheap_method": "cheap" if c else None, KEY: points[(a, c)]}
            for a, c in fitted]
    curves, _ = fit_curves(rest) if rest else ([], [])
    if not curves:
        return None
    predicted, log_std = curves[0].predict(*left)
    return {"accurate": left[0], "cheap": left[1], "measured": points[left], "predicted": predicted,
            "log_std": log_std, "extrapolated": curves[0].extrapolated(*left), "fitted_on": len(rest)}


def leave_one_out(points: dict[tuple, float], method: str) -> list[dict]:
    """One prediction per point, from the planner's fit on the others (none if they cannot be fitted)."""
    found = (_prediction(points, left, [k for k in points if k != left], method) for left in points)
    return [dict(p, fit="the others") for p in found if p]


def forward(points: dict[tuple, float], method: str) -> list[dict]:
    """As a pilot study is used: on an accurate-only curve, each count predicted from the
    smaller counts alone (two or more of them), always an extrapolation."""
    if any(cheap for _, cheap in points):
        return []
    found = (_prediction(points, left, [k for k in points if k[0] < left[0]], method) for left in sorted(points)
             if sum(k[0] < left[0] for k in points) >= 2)
    return [dict(p, fit="fewer labels only") for p in found if p]


def table(results: dict[tuple, list[dict]]) -> str:
    lines = ["| molecule | model | labels | epochs | method | accurate | cheap | measured kcal/mol/Å | fit on | "
             "predicted | measured / predicted | extrapolated |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    within: dict[str, list[bool]] = {}
    for (molecule, backend, labels, epochs, method), predictions in results.items():
        for p in predictions:
            ratio = p["measured"] / p["predicted"]
            within.setdefault(p["fit"], []).append(abs(ratio - 1) <= TOLERANCE)
            lines.append(f"| {molecule} | {backend} | {labels} | {epochs} | {method} | {p['accurate']} | {p['cheap']} | "
                         f"{p['measured']:.3f} | {p['fit']} ({p['fitted_on']} counts) | {p['predicted']:.3f} | "
                         f"{ratio:.2f} | {'yes' if p['extrapolated'] else 'no'} |")
    if not within:
        return "No curve has three label counts yet: nothing can be left out."
    lines.append("")
    lines += [f"Within {TOLERANCE:.0%} of the measured error, fit on {fit}: {sum(hits)} of {len(hits)} predictions."
              for fit, hits in within.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="bench/md17_ccsd.py or bench/acquisition.py results files")
    parser.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE", help="keep rows with this value")
    parser.add_argument("--write", type=Path, help="update this markdown file's planner-validation section")
    args = parser.parse_args(argv)
    rows = planner_rows(read_rows(args.results, where=dict(w.split("=", 1) for w in args.where)))
    results = {group: leave_one_out(points, group[-1]) + forward(points, group[-1])
               for group, points in curves_of(rows).items() if len(points) >= 3}
    command = "python bench/planner_validation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(table(results), "planner-validation", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
