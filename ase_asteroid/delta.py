"""Δ-learning: a model of (accurate − baseline) on paired configurations, where the baseline
is a cheap method (any labeller, e.g. GFN2-xTB) that must then run at inference too.

The one place the baseline is subtracted (training targets, evaluation) or added back
(predictor.py, for every way a model runs); a model carries its baseline's name in
``model.extras.delta_baseline``.
"""

from __future__ import annotations

import time

import numpy as np

from .data import Dataset


def subtract_baseline(data: Dataset, method: str, progress: bool = False) -> tuple[Dataset, float]:
    """`data` with the baseline's energy and forces subtracted from its labels, and the
    baseline's cost in seconds per structure."""
    from tqdm import tqdm

    baseline, start, configs = BaselineAdder(method), time.perf_counter(), []
    for c in tqdm(data, desc=f"{method} baseline", unit="structure", disable=not progress):
        energy, forces = baseline(c.to_atoms())
        configs.append(c.with_(energy=None if c.energy is None else c.energy - energy,
                               forces=None if c.forces is None else c.forces - forces))
    seconds = (time.perf_counter() - start) / max(len(data), 1)
    return Dataset(configs, f"{data.source} minus {method}", dict(data.source_units)), seconds


class BaselineAdder:
    """The baseline's (energy eV, forces eV/Å) of one structure: what a Δ-model's prediction
    is added to, and what its training targets are corrected by. The labeller is prepared
    (checked, set up) once per molecule, i.e. per sequence of atomic numbers."""

    def __init__(self, method: str) -> None:
        from .labels import get_labeler
        self.method, self.labeler, self._prepared_for = method, get_labeler(method), None

    def prepare(self, atoms) -> None:
        """Check (and set up for) the molecule of `atoms`, unless done for it already."""
        key = tuple(int(z) for z in atoms.numbers)
        if key != self._prepared_for:
            self.labeler.prepare(atoms)
            self._prepared_for = key

    def __call__(self, atoms) -> tuple[float, np.ndarray]:
        self.prepare(atoms)
        return self.labeler.label(atoms)
