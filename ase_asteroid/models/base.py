"""The ForceField interface shared by every backend.

A backend computes one invariant energy contribution per atom, ε_i. The interface turns
it into the total energy of each graph g,

    E_g = Σ_{i∈g} ( scale · ε_i + shift + E0[fidelity_g, Z_i] ),

with per-fidelity reference energies E0 (eV) and a scale (eV) and per-atom shift (eV)
fitted from data, and into forces F = -∂E/∂r by automatic differentiation (one helper,
:func:`energy_and_forces`, for every model). Energies and forces are in eV and eV/Å.
"""

from __future__ import annotations

from dataclasses import asdict
import copy
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.dataset import element_symbol
from ..graph import Batch, batch_configurations
from .extras import ModelExtras


def check_species(numbers, species: Sequence[int], model: str = "this model", where: str = "") -> None:
    """ValueError naming the atoms whose element is not among `species` (the elements
    `model` was trained on): the one check of unknown elements, for every way a model runs.
    `numbers` are one structure's atoms, named by index; with `where` (e.g. "in the pool")
    they are the elements of a collection, named once each."""
    numbers = np.asarray(numbers).reshape(-1)
    unknown = np.flatnonzero(~np.isin(numbers, list(species)))
    if not len(unknown):
        return
    if where:
        listed = ", ".join(element_symbol(z) for z in sorted(set(numbers[unknown].tolist()))) + f" ({where})"
    else:
        listed = ", ".join(f"{element_symbol(int(numbers[i]))} (atom {i})" for i in unknown[:10])
        listed += f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    known = ", ".join(element_symbol(z) for z in sorted(species))
    raise ValueError(f"{model} was never trained on {listed}; it knows {known}")


def energy_and_forces(energy_fn: Callable[[torch.Tensor], torch.Tensor], positions: torch.Tensor,
                      compute_forces: bool = True, create_graph: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Energies [B] = energy_fn(positions) and forces [N, 3] = -dE/dr by autograd.

    `positions` is not modified: a copy that requires grad is differentiated unless the
    caller's tensor already requires grad (then forces stay differentiable w.r.t. it).
    create_graph keeps the graph of the forces, as force-matching training needs.
    """
    if compute_forces and not positions.requires_grad:
        positions = positions.detach().clone().requires_grad_(True)
    energy = energy_fn(positions)
    if not compute_forces:
        return energy, None
    (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
    return energy, -gradient


class ForceField(nn.Module):
    """Base of all models: ``forward(batch) -> {"energy": [B] eV, "forces": [N, 3] eV/Å}``.

    Subclasses set nothing but ``node_energies``. ``config`` is a frozen dataclass of plain
    values with ``name``, ``species`` and ``cutoff`` (Å).
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.species = tuple(config.species)
        self.cutoff = float(config.cutoff)
        lookup = torch.full((119,), -1, dtype=torch.long)
        lookup[list(self.species)] = torch.arange(len(self.species))
        self.register_buffer("species_lookup", lookup, persistent=False)
        self.fidelities: tuple[str, ...] = ("default",)
        self.register_buffer("atomic_energies", torch.zeros(1, len(self.species)), persistent=False)
        self.register_buffer("scale", torch.tensor(1.0), persistent=False)
        self.register_buffer("shift", torch.tensor(0.0), persistent=False)
        self.register_buffer("head_of_fidelity", torch.zeros(1, dtype=torch.long), persistent=False)
        self.extras = ModelExtras()  # prior head, Δ baseline, graph spectrum, history (models/extras.py)

    # --- what a backend implements -------------------------------------------------
    def node_energies(self, batch: Batch, positions: torch.Tensor,
                      species: torch.Tensor) -> torch.Tensor:
        """Per-atom energy contributions ε [N] (dimensionless, multiplied by ``scale``)."""
        raise NotImplementedError

    def invariant_features(self, batch: Batch, positions: torch.Tensor,
                           species: torch.Tensor) -> torch.Tensor:
        """Rotation-invariant per-atom features [N, C] that the readouts see (a descriptor)."""
        raise NotImplementedError

    def readout_modules(self) -> list[nn.Module]:
        """The readout heads (per-atom energy from the final features)."""
        raise NotImplementedError

    def _rescale_cutoff(self, cutoff_A: float) -> None:
        """Rescale the radial basis and envelope to `cutoff_A` in place (see models/radial.py)."""
        raise NotImplementedError

    # --- what refinement uses -----------------------------------------------------------
    def representation_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter except the readout heads' (what test-time training adapts)."""
        readout = {id(p) for module in self.readout_modules() for p in module.parameters()}
        return [p for p in self.parameters() if id(p) not in readout]

    def with_cutoff(self, cutoff_A: float) -> "ForceField":
        """A copy that builds its graphs at `cutoff_A` (Å), its radial basis and envelope
        rescaled to it (the weights are the same values, not retrained)."""
        if not cutoff_A > 0:
            raise ValueError(f"cutoff must be positive (Å), got {cutoff_A}")
        adapted = copy.deepcopy(self)
        adapted._rescale_cutoff(float(cutoff_A))
        adapted.cutoff = float(cutoff_A)
        return adapted

    # --- normalisation ---------------------------------------------------------------
    def set_normalization(self, references: Mapping[str, Mapping[int, float]],
                          scale: float = 1.0, shift: float = 0.0, heads: Sequence[int] | None = None) -> None:
        """Per-fidelity reference energies {fidelity: {Z: eV}}, scale (eV) and shift (eV/atom).
        The first fidelity is the default one. heads: the readout head of each fidelity;
        by default the current assignment if it fits, else all on head 0 for a one-head
        model and fidelity i on head i for a model with one head per fidelity."""
        if not references:
            raise ValueError("references must name at least one fidelity")
        num_heads = getattr(self.config, "num_heads", 1)
        if heads is None:
            current = self.head_of_fidelity.tolist() if self.fidelities != ("default",) else []
            if len(current) == len(references):
                heads = current
            elif num_heads == 1:
                heads = [0] * len(references)
            elif len(references) == num_heads:
                heads = list(range(num_heads))
            else:
                raise ValueError(f"a model with {num_heads} heads needs one fidelity per head, "
                                 f"got {list(references)}, or an explicit head for each")
        if len(heads) != len(references) or not all(0 <= h < num_heads for h in heads):
            raise ValueError(f"heads {list(heads)}: need one head in 0..{num_heads - 1} per fidelity {list(references)}")
        table = torch.zeros(len(references), len(self.species), dtype=torch.float64)
        for row, (fidelity, per_element) in enumerate(references.items()):
            for z, energy in per_element.items():
                if int(z) not in self.species:
                    raise ValueError(f"reference energy for {element_symbol(int(z))}, "
                                     f"which is not among the model's species {self.species}")
                table[row, self.species.index(int(z))] = float(energy)
        self.fidelities = tuple(references)
        self.head_of_fidelity = torch.tensor(list(heads), dtype=torch.long, device=self.head_of_fidelity.device)
        self.atomic_energies = table.to(self.atomic_energies.dtype).to(self.atomic_energies.device)
        self.scale.fill_(float(scale))
        self.shift.fill_(float(shift))

    def align_energy_references(self, data: Sequence, fidelity: str | None = None) -> dict[int, float]:
        """Add to `fidelity`'s reference energies (default the first) the least-squares
        per-element fit of this model's energy error on `data` (configurations with energies),
        and return the corrections {Z: eV}; forces do not change. Fine-tuning on a molecule
        whose composition the training data did not pin down needs it: references fitted on
        aspirin, benzene and uracil (four elements, three compositions) put naphthalene's energy
        829 eV off, and fine-tuning then spends its steps on that offset."""
        from ..data import Dataset
        from ..data.references import fit_energy_references

        row = self.fidelity_index(fidelity)
        labelled = [c.with_(fidelity=self.fidelities[row]) for c in data if c.energy is not None]
        if not labelled:
            raise ValueError("no configuration has an energy to align the reference energies to")
        training = self.training
        predicted = np.concatenate([out["energy"].detach().double().cpu().numpy()
                                    for _, out in predict_in_batches(self, labelled, compute_forces=False)])
        self.train(training)
        errors = Dataset([c.with_(energy=c.energy - e) for c, e in zip(labelled, predicted)])
        correction = fit_energy_references(errors, self.species)[self.fidelities[row]]  # {Z: eV}
        with torch.no_grad():
            self.atomic_energies[row] += torch.tensor([correction[z] for z in self.species]).to(self.atomic_energies)
        return correction

    @property
    def energy_references(self) -> dict[str, dict[int, float]]:
        """{fidelity: {Z: E0 in eV}}."""
        rows = self.atomic_energies.detach().cpu().double().tolist()
        return {f: {z: e for z, e in zip(self.species, row)} for f, row in zip(self.fidelities, rows)}

    @property
    def fidelity_heads(self) -> dict[str, int]:
        """{fidelity: index of its readout head}."""
        return dict(zip(self.fidelities, self.head_of_fidelity.tolist()))

    def graph_heads(self, batch: Batch) -> torch.Tensor:
        """The readout head of each graph [B] (from its fidelity row)."""
        return self.head_of_fidelity[batch.fidelity]

    def fidelity_rows(self) -> dict[str, int]:
        """{fidelity: its row in the reference table}: what a graph of that fidelity carries."""
        return {f: i for i, f in enumerate(self.fidelities)}

    def batch_of(self, configs: Sequence) -> Batch:
        """One batch of `configs` for this model: its cutoff and dtype, each configuration's
        fidelity label as its row (row 0 for a label the model does not know)."""
        return batch_configurations(list(configs), self.cutoff, self.fidelity_rows()).to(dtype=self.dtype)

    def fidelity_index(self, fidelity: str | None) -> int:
        """Row of `fidelity` in the reference table; None gives the default (0)."""
        if fidelity is None:
            return 0
        if fidelity not in self.fidelities:
            raise ValueError(f"unknown fidelity {fidelity!r}; this model knows {list(self.fidelities)}")
        return self.fidelities.index(fidelity)

    # --- forward -----------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.atomic_energies.dtype

    def species_indices(self, numbers: torch.Tensor) -> torch.Tensor:
        """Row of each atom's element in the model's species; ValueError for unknown elements."""
        index = self.species_lookup[numbers]
        if (index < 0).any():
            check_species(numbers.cpu().numpy(), self.species)
        return index

    def forward(self, batch: Batch, compute_forces: bool = True,
                create_graph: bool | None = None) -> dict[str, torch.Tensor]:
        """{"energy": [B] eV, "forces": [N, 3] eV/Å}; the batch is never modified.
        create_graph defaults to ``self.training`` (force losses need it)."""
        batch = batch.to(self.atomic_energies.device, self.dtype)
        species = self.species_indices(batch.numbers)
        create_graph = self.training if create_graph is None else create_graph

        def total_energy(positions: torch.Tensor) -> torch.Tensor:
            eps = self.node_energies(batch, positions, species)
            e0 = self.atomic_energies[batch.fidelity[batch.batch], species]
            per_atom = self.scale * eps + self.shift + e0
            return torch.zeros(batch.num_graphs, dtype=per_atom.dtype,
                               device=per_atom.device).index_add(0, batch.batch, per_atom)

        energy, forces = energy_and_forces(total_energy, batch.positions, compute_forces, create_graph)
        return {"energy": energy, "forces": forces}

    def node_features(self, batch: Batch) -> torch.Tensor:
        """The model's invariant per-atom features [N, C] for `batch` (no gradient, eval or
        train mode as set): the descriptor space of model-based acquisition (acquisition.py)."""
        batch = batch.to(self.atomic_energies.device, self.dtype)
        with torch.no_grad():
            return self.invariant_features(batch, batch.positions, self.species_indices(batch.numbers))

    def describe(self) -> dict:
        """Plain description: name and config as a dict."""
        return {"name": self.config.name, "config": asdict(self.config)}


def predict_in_batches(model: ForceField, configs: Sequence, batch_size: int = 50,
                       compute_forces: bool = True) -> Iterator[tuple[Batch, dict[str, torch.Tensor]]]:
    """(batch, model output) over `configs` in eval mode, in the model's dtype, each
    configuration predicted with the reference row of its fidelity label (row 0 if unknown)."""
    model.eval()
    configs = list(configs)
    for start in range(0, len(configs), batch_size):
        batch = model.batch_of(configs[start:start + batch_size])
        yield batch, model(batch, compute_forces=compute_forces)
