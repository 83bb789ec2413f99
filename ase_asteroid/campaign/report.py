"""The campaign's report: ``report.md`` with tables (labels and their cost per step, the
learning curve of the acquisition rounds, the final model's errors, the stability sweep)
and figures written with matplotlib into the campaign folder (``learning_curve.png``,
``parity.png``; the sweep's own ``stability/stability.png``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..figures import parity_axes, pyplot, save_figure
from ..labels.runner import read_done
from .steps import Campaign, failed_indices


def label_row(step: str, method: str, path: Path) -> dict:
    """Labels, failures and CPU-seconds (label_cpu_s of each frame) of one label file."""
    seconds = [float(a.info.get("label_cpu_s", np.nan)) for a in read_done(path)] if path.exists() else []
    return {"step": step, "method": method, "labels": len(seconds), "failed": len(failed_indices(path)),
            "cpu_s_per_label": float(np.nanmean(seconds)) if seconds else float("nan"),
            "cpu_h": float(np.nansum(seconds)) / 3600.0}


def label_rows(c: Campaign) -> list[dict]:
    """One row per labelling step: the cheap pool, the seed set, each acquisition round."""
    accurate, strategy = c.config.accurate, c.config.acquisition.strategy
    rows = [label_row("pool (cheap)", c.config.cheap.method, c.cheap_path),
            label_row(f"seed set (random: {accurate.val} val, {accurate.test} test, {accurate.seed} train)",
                      accurate.method, c.labels(0))]
    rows += [label_row(f"round {r} ({strategy})", accurate.method, c.labels(r))
             for r in range(1, c.config.acquisition.rounds + 1)]
    return rows


def format_label_table(rows: list[dict]) -> str:
    lines = ["| step | method | labels | failed | CPU s per label | CPU h |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['method']} | {r['labels']} | {r['failed']} | {r['cpu_s_per_label']:.3g} | "
              f"{r['cpu_h']:.3g} |" for r in rows]
    return "\n".join(lines)


def cost_ratio_line(rows: list[dict]) -> str:
    """How many cheap labels one accurate label costs (mean CPU-seconds per label)."""
    cheap = rows[0]["cpu_s_per_label"]
    labels = sum(r["labels"] for r in rows[1:])
    accurate = sum(3600.0 * r["cpu_h"] for r in rows[1:]) / labels if labels else float("nan")
    if not (np.isfinite(cheap) and np.isfinite(accurate) and cheap > 0):
        return "CPU s per label: the mean of the labeller's CPU time per configuration (`label_cpu_s`)."
    return (f"CPU s per label: the mean of the labeller's CPU time per configuration (`label_cpu_s`); one "
            f"accurate label cost as much as {accurate / cheap:.3g} cheap ones.")


def curve_rows(c: Campaign) -> list[dict]:
    """The learning curve: each round's stage-1 errors, then the final model's."""
    rows = []
    for r in range(c.config.acquisition.rounds + 1):
        errors = json.loads(c.errors_path(r).read_text())
        rows.append({"model": f"stage 1, round {r}", "accurate": errors["accurate"], "cheap": 0,
                     "val": errors["val"], "test": errors["test"]})
    final = c.final_result()
    rows.append({"model": f"final ({final['method']})", "accurate": final["accurate"], "cheap": final["cheap"],
                 "val": final["val"], "test": final["test"]})
    return rows


def format_curve_table(rows: list[dict]) -> str:
    lines = ["| model | accurate labels | cheap labels | val force MAE meV/Å | test force MAE meV/Å | "
             "test kcal/mol/Å | test energy MAE meV |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['accurate']} | {r['cheap']} | {r['val']['force_mae_meV_per_A']:.1f} | "
              f"{r['test']['force_mae_meV_per_A']:.1f} | {r['test']['force_mae_kcal_per_mol_A']:.3f} | "
              f"{r['test']['energy_mae_meV']:.1f} |" for r in rows]
    return "\n".join(lines)


def plot_learning_curve(rows: list[dict], path: Path) -> None:
    """Test force MAE (meV/Å, linear) against accurate labels (log): stage 1 per round, the
    final model apart."""
    fig, ax = pyplot().subplots(figsize=(5, 3.5))
    stage_one, final = rows[:-1], rows[-1]
    ax.plot([r["accurate"] for r in stage_one], [r["test"]["force_mae_meV_per_A"] for r in stage_one], "o-",
            label="stage 1 (accurate labels only)")
    ax.plot([final["accurate"]], [final["test"]["force_mae_meV_per_A"]], "*", markersize=12,
            label=f"{final['model']} + {final['cheap']} cheap")
    counts = sorted({r["accurate"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(n) for n in counts])  # the label counts themselves, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("accurate training labels")
    ax.set_ylabel("test force MAE (meV/Å)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_parity(checkpoint: str, test, path: Path, accurate_method: str) -> None:
    """Force components of the final model (through the Predictor) against the accurate labels."""
    from ..predictor import Predictor

    predicted, reference = [], []
    for chunk, _, forces in Predictor.from_checkpoint(checkpoint).predict_configurations(list(test)):
        predicted += [f.ravel() for f in forces]
        reference += [c.forces.ravel() for c in chunk]
    fig, ax = pyplot().subplots(figsize=(4, 4))
    parity_axes(ax, np.concatenate(reference), np.concatenate(predicted), "test",
                f"{accurate_method} force component (eV/Å)", "final model (eV/Å)")
    save_figure(fig, path)


def _header(c: Campaign) -> list[str]:
    config = c.config
    molecule = config.molecule.smiles or Path(config.molecule.xyz).name
    return [f"# Campaign report: {molecule}", "",
            f"Pool: {config.sampling.n} configurations by {config.sampling.method} at "
            f"{config.sampling.temperature_K:g} K; cheap labels {config.cheap.method}; accurate labels "
            f"{config.accurate.method}; acquisition {config.acquisition.strategy}, {config.acquisition.rounds} "
            f"round(s) of {config.acquisition.per_round}; final training {config.training.get('method')}. "
            f"Folder: `{c.folder}`.", ""]


def write_report(c: Campaign) -> str:
    """report.md, learning_curve.png and parity.png in the campaign folder; returns the report's path."""
    curve, labels = curve_rows(c), label_rows(c)
    plot_learning_curve(curve, c.folder / "learning_curve.png")
    final = c.final_result()
    plot_parity(final["checkpoint"], c.seed_part("test"), c.folder / "parity.png", c.config.accurate.method)
    stability = (c.stability_dir / "summary.md").read_text().strip()
    lines = _header(c) + [
        "## Labels", "", format_label_table(labels), "", cost_ratio_line(labels), "",
        "## Learning curve", "", format_curve_table(curve), "",
        f"Stage 1 of round R: a model trained from scratch on the accurate labels of rounds 0..R; it picked round "
        f"R + 1. Test: the {c.config.accurate.test} random test configurations of the seed set.", "",
        "![learning curve](learning_curve.png)", "",
        "## Final model", "", f"Checkpoint `{final['checkpoint']}`.", "", "![parity](parity.png)", "",
        "## MD stability", "", f"Stable runs / runs per time step ({c.config.stability.replicas} replicas of "
        f"{c.config.stability.time_ps:g} ps at {c.config.stability.temperature_K:g} K), final model against "
        f"{c.config.stability.reference}:", "", stability, "", "![stability](stability/stability.png)", ""]
    (c.folder / "report.md").write_text("\n".join(lines))
    return str(c.folder / "report.md")
