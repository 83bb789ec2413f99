"""Budget planner: how many accurate and cheap labels, and which cheap method, for a budget.

The model, and what it assumes:

- **Learning curves are power laws** in each label count, fitted per training method and
  cheap method on pilot rows by least squares in log space:
  ``log E = log a − b·log n_accurate`` (rows without cheap labels) and
  ``log E = log a − b·log n_accurate − c·log n_cheap`` (rows with them), i.e.
  E = a·n_acc^−b·n_cheap^−c: the two counts act independently (no interaction term).
  A curve needs rows at two or more accurate counts (and cheap counts) to fit its exponents.
- **Uncertainty** comes only from the fit: the residual standard deviation s in log space
  (n rows, p parameters, s² = RSS/(n − p)) and the parameters' covariance s²(XᵀX)⁻¹; the
  predicted log error at x has standard deviation s·sqrt(1 + xᵀ(XᵀX)⁻¹x) (a new run's
  scatter plus the curve's). The range printed is exp(log E ± that), about 68 %. With as
  many rows as parameters there are no residuals and the uncertainty is unknown (NaN).
  Predictions outside the pilot rows' label counts are extrapolations and are marked so.
- **Cost is linear**: n_acc·cost_acc + n_cheap·cost_cheap CPU-seconds, with the measured
  CPU-seconds per label of each method; training time is not counted.

The plan tries every curve (method × cheap method, and accurate-only) and, for those with
cheap labels, every split of the budget on a grid of fractions spent on accurate labels,
rounding both counts down, so a plan never costs more than the budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

#: Row keys of a force error, in the order they are looked for, and the unit each carries.
ERROR_KEYS = {"force_mae": "", "force_mae_kcal_per_mol_A": "kcal/mol/Å", "force_mae_meV_per_A": "meV/Å"}


@dataclass(frozen=True)
class LearningCurve:
    """log E = coefficients · (1, log n_acc[, log n_cheap]); E in the rows' error unit.

    method: training method of the rows; cheap_method: None for accurate-only rows;
    coefficients: (log a, −b[, −c]); inverse_gram: (XᵀX)⁻¹ of the fit's design matrix X
    (the coefficients' covariance is s²·(XᵀX)⁻¹); residual_std: s in log space (NaN without residuals); ranges: {"accurate": (min, max), "cheap": (min, max)}."""

    method: str
    cheap_method: str | None
    coefficients: tuple[float, ...]
    inverse_gram: tuple[tuple[float, ...], ...]
    residual_std: float
    n_rows: int
    ranges: dict

    @property
    def exponents(self) -> tuple[float, ...]:
        """(b[, c]) of E = a·n_acc^−b[·n_cheap^−c]."""
        return tuple(-x for x in self.coefficients[1:])

    def predict(self, accurate: float, cheap: float = 0) -> tuple[float, float]:
        """(predicted error, standard deviation of its logarithm) at these label counts."""
        x = np.array([1.0, math.log(accurate)] + ([math.log(cheap)] if self.cheap_method else []))
        h = float(x @ np.array(self.inverse_gram) @ x)
        return math.exp(float(x @ np.array(self.coefficients))), self.residual_std * math.sqrt(1 + h)

    def extrapolated(self, accurate: float, cheap: float = 0) -> bool:
        """True when a count lies outside the pilot rows' range."""
        counts = {"accurate": accurate, **({"cheap": cheap} if self.cheap_method else {})}
        return any(not lo <= counts[k] <= hi for k, (lo, hi) in self.ranges.items())


def fit_learning_curve(accurate: Sequence[float], errors: Sequence[float], cheap: Sequence[float] | None = None,
                       method: str = "", cheap_method: str | None = None) -> LearningCurve:
    """Least-squares fit of log error on log label counts (see the module docstring).
    ValueError when the rows cannot determine the exponents."""
    accurate, errors = np.asarray(accurate, float), np.asarray(errors, float)
    counts = [accurate] + ([np.asarray(cheap, float)] if cheap_method is not None else [])
    if not ((errors > 0).all() and all((c >= 1).all() for c in counts)):
        raise ValueError(f"learning curve {method!r}: errors must be positive and label counts at least 1")
    columns = [np.ones(len(accurate)), np.log(accurate)]
    ranges = {"accurate": (float(accurate.min()), float(accurate.max()))}
    if cheap_method is not None:
        cheap = np.asarray(cheap, float)
        columns.append(np.log(cheap))
        ranges["cheap"] = (float(cheap.min()), float(cheap.max()))
    design = np.stack(columns, axis=1)
    name = f"{method}" + (f" with {cheap_method}" if cheap_method else "")
    if np.linalg.matrix_rank(design) < design.shape[1]:
        varies = "accurate and cheap counts each" if cheap_method else "accurate counts"
        raise ValueError(f"learning curve {name!r}: its {len(errors)} row(s) need at least two different "
                         f"{varies}, with counts that do not rise together, to fit the exponents")
    coefficients, *_ = np.linalg.lstsq(design, np.log(errors), rcond=None)
    dof = len(errors) - design.shape[1]
    residual = np.log(errors) - design @ coefficients
    s = float(np.sqrt(residual @ residual / dof)) if dof > 0 else math.nan
    inverse_gram = np.linalg.inv(design.T @ design)
    return LearningCurve(method, cheap_method, tuple(float(c) for c in coefficients),
                         tuple(tuple(float(v) for v in row) for row in inverse_gram), s, len(errors), ranges)


#: Row keys that must not vary within one learning curve (rows of bench/md17_ccsd.py carry them).
SETTING_KEYS = ("molecule", "backend", "labels")
#: The same for a curve without cheap labels: their label set does not enter it.
ACCURATE_ONLY_KEYS = ("molecule", "backend")


def read_rows(paths: Sequence, molecule: str | None = None, where: dict[str, str] | None = None) -> list[dict]:
    """Pilot rows from JSON (a list) or JSONL files; with `molecule`, only rows of that
    molecule, and with `where` ({key: value}), only rows whose key has that value as text
    (rows without the key are kept in both cases)."""
    where = {**(where or {}), **({"molecule": molecule} if molecule else {})}
    rows = []
    for path in paths:
        text = _text(path)
        try:
            loaded = json.loads(text) if text.lstrip().startswith("[") else [
                json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: neither a JSON list nor JSON lines ({error})") from None
        rows += [r for r in loaded if all(str(r.get(k, v)) == v for k, v in where.items())]
    if not rows:
        raise ValueError(f"no pilot rows in {', '.join(map(str, paths))}"
                         + (" with " + ", ".join(f"{k}={v}" for k, v in where.items()) if where else ""))
    return rows


def error_key(rows: Sequence[dict]) -> str:
    """The first of ERROR_KEYS that every row has; ValueError naming them otherwise."""
    for key in ERROR_KEYS:
        if all(key in r for r in rows):
            return key
    raise ValueError(f"every pilot row needs a force error, one of {', '.join(ERROR_KEYS)}, "
                     "and 'accurate' (count), 'cheap' (count, 0 without) and 'method'")


def fit_curves(rows: Sequence[dict], cheap_method: str | None = None) -> tuple[list[LearningCurve], list[str]]:
    """One curve per (method, cheap method) of the rows (rows without cheap labels form the
    accurate-only curve of their method). A row's cheap method is its "cheap_method" key, else
    `cheap_method`. Returns the curves and a note for each group that could not be fitted."""
    key = error_key(rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if not all(k in row for k in ("accurate", "method")):
            raise ValueError(f"pilot row {row} lacks 'accurate' or 'method'")
        cheap = row.get("cheap", 0) or 0
        source = (row.get("cheap_method") or cheap_method) if cheap else None
        if cheap and source is None:
            raise ValueError(f"pilot row of method {row['method']!r} with {cheap} cheap labels names no cheap "
                             "method: give rows a 'cheap_method' key or pass --cheap-method")
        groups.setdefault((row["method"], source), []).append(row)
    curves, notes = [], []
    for (method, source), group in groups.items():
        for setting in SETTING_KEYS if source else ACCURATE_ONLY_KEYS:
            values = sorted({str(r[setting]) for r in group if setting in r})
            if len(values) > 1:
                raise ValueError(f"the pilot rows of method {method!r} mix {setting} values {', '.join(values)}: "
                                 f"keep one with --where {setting}=VALUE (or --molecule)")
        try:
            curves.append(fit_learning_curve([r["accurate"] for r in group], [r[key] for r in group],
                                             [r.get("cheap", 0) for r in group] if source else None, method, source))
        except ValueError as error:
            notes.append(str(error))
    return curves, notes


def cost_key(method: str) -> str:
    """Method names as the cost table compares them: lower case, without ``pyscf:`` (labelled
    files record the fidelity 'b3lyp/6-31g*' of the method 'pyscf:b3lyp/6-31g*')."""
    return method.strip().lower().removeprefix("pyscf:")


def read_costs(paths: Sequence, molecule: str | None = None) -> dict[str, float]:
    """{method: CPU-seconds per label} from JSON files ({method: seconds} or
    {method: {molecule: seconds}}, then `molecule` picks) and labelled extxyz files written
    by ``asteroid data label`` (the mean of their frames' label_cpu_s, per fidelity)."""
    costs: dict[str, float] = {}
    for path in map(Path, paths):
        if path.suffix == ".json":
            try:
                table = json.loads(_text(path))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not JSON ({error})") from None
            costs.update({cost_key(m): _seconds(path, m, v, molecule) for m, v in table.items()})
            continue
        import ase.io
        per_method: dict[str, list[float]] = {}
        _text(path)
        for atoms in ase.io.read(path, index=":"):
            if "label_cpu_s" in atoms.info:
                per_method.setdefault(cost_key(str(atoms.info.get("fidelity", ""))), []).append(atoms.info["label_cpu_s"])
        if not per_method:
            raise ValueError(f"{path}: no frame records label_cpu_s (is it a file written by asteroid data label?)")
        costs.update({m: float(np.mean(v)) for m, v in per_method.items()})
    return costs


def _text(path) -> str:
    """The file's text, or ValueError naming a missing file."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    return Path(path).read_text()


def _seconds(path, method: str, value, molecule: str | None) -> float:
    if isinstance(value, dict):
        if molecule is None or value.get(molecule) is None:
            raise ValueError(f"{path}: the cost of {method!r} is given per molecule ({', '.join(value)}); "
                             "choose one with --molecule")
        value = value[molecule]
    if not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{path}: the cost of {method!r} must be positive CPU-seconds per label, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Plan:
    """One way to spend the budget, with its predicted error (the rows' unit) and its ~68 % range."""

    method: str
    cheap_method: str | None
    accurate: int
    cheap: int
    cpu_hours: float
    error: float
    error_low: float
    error_high: float
    extrapolated: bool


def plan_budget(curves: Sequence[LearningCurve], costs: dict[str, float], budget_cpu_hours: float,
                accurate_method: str, max_cheap: int | None = None, steps: int = 400) -> tuple[list[Plan], list[str]]:
    """The best split of the budget for each curve, sorted by predicted error (best first),
    and notes on curves left out (no cost for their cheap method, or no label affordable)."""
    if not budget_cpu_hours > 0:
        raise ValueError(f"the budget must be positive CPU-hours, got {budget_cpu_hours}")
    if cost_key(accurate_method) not in costs:
        raise ValueError(f"no cost for the accurate method {accurate_method!r}; the cost files give {sorted(costs)}")
    budget_s, c_acc = budget_cpu_hours * 3600.0, costs[cost_key(accurate_method)]
    plans, notes = [], []
    for curve in curves:
        c_cheap = costs.get(cost_key(curve.cheap_method)) if curve.cheap_method else 0.0
        if c_cheap is None:
            notes.append(f"{curve.method} with {curve.cheap_method}: no cost for {curve.cheap_method!r} in the cost files")
            continue
        best = None
        for n_acc, n_cheap in _splits(budget_s, c_acc, c_cheap, max_cheap, steps, curve.cheap_method is not None):
            error, log_std = curve.predict(n_acc, n_cheap)
            if best is None or error < best.error:
                best = Plan(curve.method, curve.cheap_method, n_acc, n_cheap, (n_acc * c_acc + n_cheap * c_cheap) / 3600.0,
                            error, error * math.exp(-log_std), error * math.exp(log_std),
                            curve.extrapolated(n_acc, n_cheap))
        if best is None:
            notes.append(f"{curve.method}" + (f" with {curve.cheap_method}" if curve.cheap_method else "")
                         + ": the budget does not pay for one label of each kind")
        else:
            plans.append(best)
    return sorted(plans, key=lambda p: p.error), notes


def _splits(budget_s: float, c_acc: float, c_cheap: float, max_cheap: int | None, steps: int, with_cheap: bool):
    """(n_acc >= 1, n_cheap >= 1 or 0) pairs that fit the budget: counts rounded down."""
    if not with_cheap:
        n_acc = int(budget_s // c_acc)
        return [(n_acc, 0)] if n_acc >= 1 else []
    pairs = []
    for fraction in np.linspace(0.0, 1.0, steps + 1):
        n_acc = int(fraction * budget_s // c_acc)
        n_cheap = int((budget_s - n_acc * c_acc) // c_cheap)
        n_cheap = min(n_cheap, max_cheap) if max_cheap is not None else n_cheap
        while n_cheap > 0 and n_acc * c_acc + n_cheap * c_cheap > budget_s:  # float rounding
            n_cheap -= 1
        if n_acc >= 1 and n_cheap >= 1:
            pairs.append((n_acc, n_cheap))
    return pairs


def format_plans(plans: Sequence[Plan], curves: Sequence[LearningCurve], unit: str, budget_cpu_hours: float,
                 notes: Sequence[str] = ()) -> str:
    """The recommendation, every curve's best split, the fitted exponents and the notes."""
    unit = f" {unit}" if unit else ""
    lines = []
    if plans:
        p = plans[0]
        lines.append(f"recommended for {budget_cpu_hours:g} CPU-hours: {p.method}, {p.accurate} accurate labels"
                     + (f" + {p.cheap} {p.cheap_method} labels" if p.cheap_method else "")
                     + f" ({p.cpu_hours:.3g} CPU-hours): predicted force MAE {p.error:.3g}{unit} "
                     + f"(68 % range {p.error_low:.3g}–{p.error_high:.3g})"
                     + (" — an extrapolation beyond the pilot rows" if p.extrapolated else ""))
    lines += ["", "| method | cheap method | accurate | cheap | CPU-hours | predicted error | 68 % range | extrapolated |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p.method} | {p.cheap_method or '-'} | {p.accurate} | {p.cheap} | {p.cpu_hours:.3g} | "
              f"{p.error:.3g}{unit} | {p.error_low:.3g}–{p.error_high:.3g} | {'yes' if p.extrapolated else 'no'} |"
              for p in plans]
    lines += ["", "fitted curves (E = a·n_acc^-b·n_cheap^-c, log-space residual s):"]
    lines += [f"  {c.method}" + (f" + {c.cheap_method}" if c.cheap_method else "")
              + f": a = {math.exp(c.coefficients[0]):.3g}, " + ", ".join(
                  f"{n} = {e:.3f}" for n, e in zip("bc", c.exponents)) + f", s = {c.residual_std:.3g}, {c.n_rows} rows"
              for c in curves]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
