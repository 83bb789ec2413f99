"""Figures of a stability sweep (matplotlib, written to PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ase_asteroid.figures import pyplot as _pyplot
from ase_asteroid.figures import save_figure


def plot_stability(table: Sequence[dict], path: Path) -> None:
    """Fraction of stable runs vs step size, one line per model (like ASTEROID's Fig. 6b)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    styles = [("o", "-", 9), ("s", "--", 7), ("^", ":", 6), ("D", "-.", 5)]  # overlapping lines stay visible
    for k, model in enumerate(dict.fromkeys(r["model"] for r in table)):
        part = sorted((r for r in table if r["model"] == model), key=lambda r: r["step_size_fs"])
        marker, line, size = styles[k % len(styles)]
        ax.plot([r["step_size_fs"] for r in part], [r["fraction_stable"] for r in part], marker=marker,
                linestyle=line, markersize=size, label=model)
    ax.set_xlabel("time step (fs)")
    ax.set_ylabel("fraction of stable runs")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    save_figure(fig, path)


def plot_observable(rows: Sequence[dict], path: Path) -> None:
    """Largest bond deviation (Å) over time of replica 0, per model and step size; × marks divergence."""
    plt = _pyplot()
    traced = [r for r in rows if r.get("trace")]
    models = list(dict.fromkeys(r["model"] for r in traced))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.5 * max(1, len(models)), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        for row in sorted((r for r in traced if r["model"] == model), key=lambda r: r["step_size_fs"]):
            times, _, deviation = zip(*row["trace"])
            line, = ax.plot(times, deviation, label=f"{row['step_size_fs']:g} fs")
            if not row["stable"]:  # mark where it diverged (a fast divergence is a single point)
                ax.plot(times[-1], deviation[-1], "x", color=line.get_color(), markersize=9)
        ax.set_title(model)
        ax.set_xlabel("time (ps)")
        ax.set_ylabel("max bond deviation (Å)")
        ax.legend(fontsize=7)
    save_figure(fig, path)
