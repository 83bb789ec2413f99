"""AsteroidCalculator: an ASE calculator for any ase_asteroid force field, a thin shell
over the one inference path (predictor.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from ase.calculators.calculator import Calculator, all_changes

from .checkpoint import load_checkpoint
from .models import ForceField, as_dtype
from .predictor import MethodPredictor, Predictor
from .refinement.settings import RefineSettings, TTTSettings


def _ttt_settings(steps: int | None, lr: float | None, optimizer: str | None, gate: float | None) -> TTTSettings:
    """TTTSettings with the given values; None keeps TTTSettings' own default."""
    given = {"steps": steps, "lr": lr, "optimizer": optimizer, "gate": gate}
    return TTTSettings(**{k: v for k, v in given.items() if v is not None})


class AsteroidCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) from a checkpoint path, a :class:`ForceField`, or a
    ready :class:`~ase_asteroid.predictor.Predictor` (or a reference method's
    MethodPredictor; the other options must then be left at their defaults).

    device: torch device ("cpu", "cuda"); dtype: torch.float32 or torch.float64, or its name
    "float32"/"float64" as the training YAML spells it (default:
    the model's own); fidelity: which energy references to use (default the model's first,
    the most accurate) and, for a multi-head model, which head; ``head=`` is accepted as
    the same thing.
    The models work in eV and Å, ASE's own units, so nothing is converted at this boundary.
    A Δ-learning model (``model.extras.delta_baseline`` set) needs its cheap baseline method
    at inference: the Predictor runs it and adds its energy and forces.

    refine: "radius", "ttt" or "radius+ttt" (refinement/): the model is refined for the
    first structure it is asked about, and again every `ttt_every` calls if that is > 0
    (e.g. every k MD steps); ttt_steps/ttt_lr/ttt_optimizer/ttt_gate set the test-time training
    (None: the defaults of refinement.settings.TTTSettings).
    A refined copy is used; the checkpoint and the model passed in are never changed.
    ``refinements`` lists what each refinement chose and cost.
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, model: ForceField | str | Path | Predictor | MethodPredictor, device: str | torch.device = "cpu",
                 dtype: torch.dtype | str | None = None, fidelity: str | None = None, head: str | None = None,
                 refine: str | None = None, ttt_steps: int | None = None, ttt_lr: float | None = None,
                 ttt_optimizer: str | None = None, ttt_every: int = 0, ttt_gate: float | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(model, (Predictor, MethodPredictor)):
            self.predictor, self.model = model, getattr(model, "model", None)
            self.fidelity = getattr(model, "fidelity", None)
            return
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
        refine = RefineSettings.parse(refine, _ttt_settings(ttt_steps, ttt_lr, ttt_optimizer, ttt_gate), ttt_every)
        self.predictor = Predictor(model, fidelity, refine)
        self.model, self.fidelity = model, self.predictor.fidelity

    @property
    def refinements(self) -> list[dict]:
        return self.predictor.refinements

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.any())
        energies, forces = self.predictor.predict(self.atoms.numbers, self.atoms.positions,
                                                  cell=self.atoms.cell.array if periodic else None,
                                                  pbc=tuple(bool(p) for p in self.atoms.pbc))
        energy = float(energies[0])
        self.results = {"energy": energy, "free_energy": energy, "forces": forces[0]}
