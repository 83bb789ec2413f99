"""AsteroidCalculator: an ASE calculator for any ase_asteroid force field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .checkpoint import load_checkpoint
from .data.dataset import element_symbol
from .delta import BaselineAdder
from .graph import make_graph
from .models import ForceField, as_dtype
from .refinement.refine import check_refinable, refine_model
from .refinement.ttt import TTTSettings


class AsteroidCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) from a checkpoint path or a :class:`ForceField`.

    device: torch device ("cpu", "cuda"); dtype: torch.float32 or torch.float64, or its name
    "float32"/"float64" as the training YAML spells it (default:
    the model's own); fidelity: which energy references to use (default the model's first,
    the most accurate) and, for a multi-head model, which head; ``head=`` is accepted as
    the same thing.
    The models work in eV and Å, ASE's own units, so nothing is converted at this boundary.
    A Δ-learning model (``model.delta_baseline`` set) needs its cheap baseline method at
    inference: the calculator runs it and adds its energy and forces.

    refine: "radius", "ttt" or "radius+ttt" (refinement/): the model is refined for the
    first structure it is asked about, and again every `ttt_every` calls if that is > 0
    (e.g. every k MD steps); ttt_steps/ttt_lr/ttt_optimizer set the test-time training.
    A refined copy is used; the checkpoint and the model passed in are never changed.
    ``refinements`` lists what each refinement chose and cost.
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, model: ForceField | str | Path, device: str | torch.device = "cpu",
                 dtype: torch.dtype | str | None = None, fidelity: str | None = None, head: str | None = None,
                 refine: str | None = None, ttt_steps: int = 50, ttt_lr: float = 1e-4, ttt_optimizer: str = "adam",
                 ttt_every: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if head is not None and fidelity is not None and head != fidelity:
            raise ValueError(f"head={head!r} and fidelity={fidelity!r} name the same choice; give one")
        fidelity = fidelity if fidelity is not None else head
        dtype = as_dtype(dtype)
        if isinstance(model, (str, Path)):
            model = load_checkpoint(model, device=device, dtype=dtype)
        elif isinstance(model, ForceField):
            model = model.to(device=device, dtype=dtype or model.dtype).eval()
        else:
            raise TypeError(f"model must be a checkpoint path or a ForceField, got {type(model).__name__}")
        self.model = model
        self.fidelity = model.fidelities[model.fidelity_index(fidelity)]
        self.baseline = BaselineAdder(model.delta_baseline) if model.delta_baseline else None
        check_refinable(model, refine)
        self.refine, self.ttt_every, self.calls = refine, ttt_every, 0
        self.ttt = TTTSettings(ttt_steps, ttt_lr, ttt_optimizer)
        self.refined, self.refinements = None, []

    def _model_for(self, atoms) -> ForceField:
        if not self.refine:
            return self.model
        if self.refined is None or (self.ttt_every and self.calls % self.ttt_every == 0):
            self.refined, report = refine_model(self.model, [atoms], self.refine, self.ttt)
            self.refinements.append({"call": self.calls, **report})
        return self.refined

    def _check(self, atoms) -> None:
        known = set(self.model.species)
        unknown = [(i, int(z)) for i, z in enumerate(atoms.numbers) if int(z) not in known]
        if unknown:
            listed = ", ".join(f"{element_symbol(z)} (atom {i})" for i, z in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            known_symbols = ", ".join(element_symbol(z) for z in sorted(known))
            raise ValueError(f"this model was never trained on {listed}{more}; "
                             f"it knows {known_symbols}")
        bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
        if len(bad):
            raise ValueError(f"non-finite positions for atom(s) {bad[:10].tolist()}")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self._check(self.atoms)
        model = self._model_for(self.atoms)
        self.calls += 1
        periodic = bool(self.atoms.pbc.any())
        graph = make_graph(self.atoms.numbers, self.atoms.positions, model.cutoff,
                           cell=self.atoms.cell.array if periodic else None,
                           pbc=tuple(bool(p) for p in self.atoms.pbc),
                           fidelity=model.fidelity_index(self.fidelity))
        output = model(graph)
        energy = float(output["energy"].detach().double().cpu()[0])
        forces = output["forces"].detach().double().cpu().numpy()
        if self.baseline is not None:
            base_energy, base_forces = self.baseline(self.atoms)
            energy, forces = energy + base_energy, forces + base_forces
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
