"""The one inference path: what are this checkpoint's energies and forces for these
structures? AsteroidCalculator, ``asteroid evaluate`` and ``asteroid-md`` (stability
sweeps and single runs) all ask a :class:`Predictor`, so a head choice, test-time
refinement and a Δ-learning baseline mean the same thing everywhere.

A reference method (``gfn2-xtb``, ``lj``, ...) answers through :class:`MethodPredictor`,
which has the same ``predict``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from ase import Atoms

from .checkpoint import load_checkpoint
from .delta import BaselineAdder
from .graph import Batch, collate, make_graph, replica_batch
from .models import ForceField, check_species
from .refinement.refine import check_refinable, refine_model
from .refinement.settings import RefineSettings

#: Reference methods that can stand in for a checkpoint (labeller names of ase_asteroid.labels).
REFERENCE_METHODS = ("gfn2-xtb", "gfn1-xtb", "lj", "gaff2")

#: positions [R, n, 3] Å -> forces [R, n, 3] eV/Å (what batched MD steps with)
ForceFunction = Callable[[np.ndarray], np.ndarray]


def check_finite(positions: np.ndarray) -> None:
    """ValueError naming the atoms with a NaN or infinite coordinate."""
    bad = np.flatnonzero(~np.isfinite(positions.reshape(-1, positions.shape[-1])).all(axis=1))
    if len(bad):
        raise ValueError(f"non-finite positions for atom(s) {bad[:10].tolist()}")


def _replicas(positions) -> np.ndarray:
    """positions as float64 [R, n, 3] (a single [n, 3] structure becomes R = 1)."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [n, 3] or [R, n, 3] (Å), got shape {positions.shape}")
    return positions


class Predictor:
    """Energies [R] (eV) and forces [R, n, 3] (eV/Å) of a ForceField for R structures of one
    molecule, with the reference energies and readout head of `fidelity` (default the
    model's first), test-time refinement `refine` (refinement/settings.py; the model is
    refined for the first structures predicted, and again every ``refine.every`` calls),
    and, for a Δ-learning model, its baseline method's energy and forces added.

    The model passed in is never changed; a refined copy is used. ``refinements`` lists what
    each refinement chose and cost; ``baseline_seconds`` the time spent in the baseline.
    """

    def __init__(self, model: ForceField, fidelity: str | None = None,
                 refine: RefineSettings | str | None = None) -> None:
        if not isinstance(model, ForceField):
            raise TypeError(f"model must be a ForceField, got {type(model).__name__}")
        self.model = model.eval()
        self.row = model.fidelity_index(fidelity)
        self.fidelity = model.fidelities[self.row]
        self.refine = RefineSettings.parse(refine)
        check_refinable(model, self.refine)
        baseline = model.extras.delta_baseline
        self.baseline = BaselineAdder(baseline) if baseline else None
        self.calls, self.refinements, self.baseline_seconds = 0, [], 0.0
        self._refined: ForceField | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, fidelity: str | None = None,
                        refine: RefineSettings | str | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype | str | None = None) -> "Predictor":
        """A Predictor of the model saved at `path` (in its saved dtype unless `dtype` is given:
        a torch dtype or its name, "float32"/"float64", read by models.as_dtype)."""
        return cls(load_checkpoint(path, device=device, dtype=dtype), fidelity, refine)

    @property
    def species(self) -> tuple[int, ...]:
        return self.model.species

    def check(self, numbers, positions: np.ndarray) -> None:
        """ValueError for an element the model never saw or a non-finite position."""
        check_species(numbers, self.model.species)
        check_finite(positions)

    def refine_for(self, structures: Sequence) -> ForceField:
        """Refine a copy of the model for `structures` (Configurations or Atoms) now; returns it."""
        self._refined, report = refine_model(self.model, structures, self.refine)
        self.refinements.append({"call": self.calls, **report})
        return self._refined

    def current_model(self, numbers, positions: np.ndarray) -> ForceField:
        """The model to predict with now: the original, or the refined copy (refined for
        these structures first if it is due; only the finite ones, since batched MD passes
        a diverged run's NaNs through, and the refined copy stays if none is finite)."""
        if not self.refine.enabled:
            return self.model
        if self._refined is None or (self.refine.every and self.calls and self.calls % self.refine.every == 0):
            finite = [p for p in positions if np.isfinite(p).all()]
            if finite or self._refined is None:
                self.refine_for([Atoms(numbers=numbers, positions=p) for p in finite or positions])
        return self._refined

    def predict(self, numbers, positions, cell=None, pbc=(False, False, False),
                check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(energies [R] eV, forces [R, n, 3] eV/Å) for positions [R, n, 3] or [n, 3] (Å) of
        the molecule `numbers`; cell [3, 3] (Å) and pbc for a periodic structure.
        check=False skips the element and finiteness checks (batched MD checks elements
        once and lets a diverged run's NaNs through to its divergence monitor)."""
        positions = _replicas(positions)
        if check:
            self.check(numbers, positions)
        model = self.current_model(numbers, positions)
        self.calls += 1
        output = model(self._graph(model, numbers, positions, cell, pbc))
        energies = output["energy"].detach().double().cpu().numpy()
        forces = output["forces"].detach().double().cpu().numpy().reshape(positions.shape)
        if self.baseline is not None:
            base_energies, base_forces = self._baseline(numbers, positions, cell, pbc)
            energies, forces = energies + base_energies, forces + base_forces
        return energies, forces

    def _graph(self, model: ForceField, numbers, positions: np.ndarray, cell, pbc) -> Batch:
        periodic = cell is not None and any(pbc)
        if len(positions) == 1 or periodic:
            graphs = [make_graph(numbers, p, model.cutoff, cell=cell if periodic else None,
                                 pbc=tuple(bool(x) for x in pbc), fidelity=self.row) for p in positions]
            return graphs[0] if len(graphs) == 1 else collate(graphs)
        batch = replica_batch(numbers, positions, model.cutoff)
        return batch if self.row == 0 else replace(batch, fidelity=torch.full_like(batch.fidelity, self.row))

    def _baseline(self, numbers, positions: np.ndarray, cell, pbc) -> tuple[np.ndarray, np.ndarray]:
        start, energies, forces = time.perf_counter(), [], []
        for p in positions:
            energy, f = self.baseline(Atoms(numbers=numbers, positions=p, cell=cell, pbc=pbc))
            energies.append(energy)
            forces.append(f)
        self.baseline_seconds += time.perf_counter() - start
        return np.array(energies), np.array(forces)

    def predict_configurations(self, configs: Sequence, batch_size: int = 50
                               ) -> Iterator[tuple[list, np.ndarray, list[np.ndarray]]]:
        """(configurations, energies [b] eV, forces per configuration [n_i, 3] eV/Å) in
        chunks of `batch_size` over configurations of any molecules (no cell), each
        predicted at this Predictor's fidelity. Refinement, if set, is done once for all
        of them before the first chunk."""
        configs = [c.with_(fidelity=self.fidelity) for c in configs]
        for c in configs:
            self.check(c.numbers, c.positions)
        model = self.refine_for(configs) if self.refine.enabled and self._refined is None else (
            self._refined or self.model)
        for start in range(0, len(configs), batch_size):
            chunk = configs[start:start + batch_size]
            batch = model.batch_of(chunk)
            output = model(batch)
            energies = output["energy"].detach().double().cpu().numpy()
            bounds = batch.ptr.tolist()
            forces = output["forces"].detach().double().cpu().numpy()
            forces = [forces[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            if self.baseline is not None:
                for k, c in enumerate(chunk):
                    base_energy, base_forces = self._baseline(c.numbers, c.positions[None], None, (False,) * 3)
                    energies[k] += base_energy[0]
                    forces[k] = forces[k] + base_forces[0]
            self.calls += 1
            yield chunk, energies, forces

    def check_molecule(self, molecule: Atoms) -> None:
        """ValueError now, before any work, if the model cannot run `molecule`."""
        self.check(molecule.numbers, molecule.positions)

    def force_function(self, molecule: Atoms) -> ForceFunction:
        """Batched forces [R, n, 3] for batched MD of `molecule`: its elements are checked,
        and with refinement the model is refined for `molecule`, now."""
        self.check_molecule(molecule)
        if self.refine.enabled and self._refined is None:
            self.refine_for([molecule])
        numbers = molecule.numbers
        return lambda positions: self.predict(numbers, positions, check=False)[1]


class MethodPredictor:
    """A reference method (labeller name, e.g. "gfn2-xtb") behind the Predictor's interface:
    one method call per structure."""

    def __init__(self, method: str) -> None:
        self.method, self.evaluate = method, BaselineAdder(method)
        self.refinements: list[dict] = []

    def predict(self, numbers, positions, cell=None, pbc=(False, False, False),
                check: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(energies [R] eV, forces [R, n, 3] eV/Å), as Predictor.predict."""
        positions = _replicas(positions)
        if check:
            check_finite(positions)
        results = [self.evaluate(Atoms(numbers=numbers, positions=p, cell=cell, pbc=pbc)) for p in positions]
        return np.array([e for e, _ in results]), np.array([f for _, f in results])

    def check_molecule(self, molecule: Atoms) -> None:
        """LabelError (a ValueError) now if the method cannot handle `molecule`."""
        self.evaluate.prepare(molecule)

    def force_function(self, molecule: Atoms) -> ForceFunction:
        """As Predictor.force_function; the method checks (and sets up for) `molecule` now."""
        self.check_molecule(molecule)
        return lambda positions: self.predict(molecule.numbers, positions, check=False)[1]


def predictor_for(source: str | Path, fidelity: str | None = None, refine: RefineSettings | str | None = None,
                  device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None
                  ) -> Predictor | MethodPredictor:
    """A checkpoint path's Predictor, or a reference method's MethodPredictor."""
    if str(source) in REFERENCE_METHODS:
        if fidelity or RefineSettings.parse(refine).enabled:
            raise ValueError(f"{source} is a reference method: it has no heads and cannot be refined")
        return MethodPredictor(str(source))
    return Predictor.from_checkpoint(source, fidelity, refine, device, dtype)
