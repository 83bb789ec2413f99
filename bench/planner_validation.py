"""Does `asteroid plan` predict errors it has not seen? Leave-one-out on measured rows.

    python bench/planner_validation.py --results bench_results/md17_recipes.jsonl \
        --where backend=mace --write docs/acquisition.md

The rows (bench/md17_ccsd.py's results: one per run, seeds averaged per label count) are
grouped into learning curves as the planner groups them (method, and molecule, backend and
cheap label set held fixed), and by training epochs. For every label count of a curve, the planner's own fit
(ase_asteroid.planning.fit_curves) is made on the curve's other counts and asked for the
left-out one; reported: predicted and measured force MAE, their ratio, whether the
prediction extrapolates beyond the fitted counts, and how many predictions lie within 25 %
(the issue's target). A curve needs three or more counts to leave one out.

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


def leave_one_out(points: dict[tuple, float], method: str) -> list[dict]:
    """One prediction per point, from the planner's fit on the others (none if they cannot be fitted)."""
    out = []
    for left in points:
        rest = [{"method": method, "accurate": a, "cheap": c, "cheap_method": "cheap" if c else None, KEY: e}
                for (a, c), e in points.items() if (a, c) != left]
        curves, _ = fit_curves(rest) if rest else ([], [])
        if not curves:
            continue
        curve = curves[0]
        predicted, log_std = curve.predict(*left)
        out.append({"accurate": left[0], "cheap": left[1], "measured": points[left], "predicted": predicted,
                    "log_std": log_std, "extrapolated": curve.extrapolated(*left), "fitted_on": len(rest)})
    return out


def table(results: dict[tuple, list[dict]]) -> str:
    lines = ["| molecule | model | labels | epochs | method | accurate | cheap | measured kcal/mol/Å | predicted (fit "
             "on the others) | measured / predicted | extrapolated |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    within = []
    for (molecule, backend, labels, epochs, method), predictions in results.items():
        for p in predictions:
            ratio = p["measured"] / p["predicted"]
            within.append(abs(ratio - 1) <= TOLERANCE)
            lines.append(f"| {molecule} | {backend} | {labels} | {epochs} | {method} | {p['accurate']} | {p['cheap']} | "
                         f"{p['measured']:.3f} | {p['predicted']:.3f} (from {p['fitted_on']} counts) | {ratio:.2f} | "
                         f"{'yes' if p['extrapolated'] else 'no'} |")
    if not within:
        return "No curve has three label counts yet: nothing can be left out."
    lines.append(f"\nWithin {TOLERANCE:.0%} of the measured error: {sum(within)} of {len(within)} predictions.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="bench/md17_ccsd.py or bench/acquisition.py results files")
    parser.add_argument("--where", nargs="*", default=[], metavar="KEY=VALUE", help="keep rows with this value")
    parser.add_argument("--write", type=Path, help="update this markdown file's planner-validation section")
    args = parser.parse_args(argv)
    rows = planner_rows(read_rows(args.results, where=dict(w.split("=", 1) for w in args.where)))
    results = {group: leave_one_out(points, group[-1]) for group, points in curves_of(rows).items()
               if len(points) >= 3}
    command = "python bench/planner_validation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(table(results), "planner-validation", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
