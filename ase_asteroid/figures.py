"""Figures written to PNG with matplotlib, headless (the Agg backend): the helpers the
package's reports share (quickstart, campaign, the stability sweep's plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """Lay out `fig`, write it to `path` and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def parity_axes(ax, reference: np.ndarray, predicted: np.ndarray, name: str, xlabel: str,
                ylabel: str = "predicted (eV/Å)") -> None:
    """Predicted against reference force components (eV/Å) on `ax`, the diagonal, and the
    MAE (meV/Å) after `name` in the title."""
    ax.plot(reference, predicted, ".", markersize=2, alpha=0.5)
    ax.plot([reference.min(), reference.max()], [reference.min(), reference.max()], "k-", linewidth=0.8)
    ax.set_title(f"{name}: MAE {1000 * np.mean(np.abs(predicted - reference)):.0f} meV/Å")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
