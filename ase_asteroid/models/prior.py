"""A Lennard-Jones prior head with per-element-pair parameters, in torch (the formula:
ase_asteroid/lj.py):

    E = Σ_{i<j in a molecule} D_ab [ (r⁰_ab / r)^12 − 2 (r⁰_ab / r)^6 ],  a, b the elements of i, j

r⁰ (Å, the minimum) and D (eV, the well depth) start from UFF and can be fitted to a
dataset's forces. Energies and forces are analytic. Its labels cost microseconds, which
is what test-time training needs; it is one of the model's extras (models/extras.py),
stored in the checkpoint.

A quantum-chemical or force-field prior (:class:`MethodPrior`: ``gfn2-xtb``, ``gfn1-xtb``,
``gaff2``) is a labeller's name instead: its labels come from the same labeller code as
``asteroid data label`` (refinement/prior.py), so it has no tensors of its own.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..data.dataset import element_symbol
from ..graph import Batch, batch_configurations
from ..lj import UFF, pair_terms, uff_pair_parameters

PRIOR_FIDELITY = "lj-prior"

#: Labelling methods (ase_asteroid.labels) that can serve as a prior head's labels.
METHOD_PRIORS = ("gfn2-xtb", "gfn1-xtb", "gaff2")
#: Every `prior:` of a training config: LJ fitted to the data, LJ with UFF's parameters, or a method.
PRIOR_KINDS = ("lj", "lj-uff") + METHOD_PRIORS


class LJPrior(nn.Module):
    """Per-element-pair Lennard-Jones energy [B] (eV) and forces [N, 3] (eV/Å) of a batch."""

    kind, fidelity = "lj", PRIOR_FIDELITY

    def __init__(self, species) -> None:
        super().__init__()
        self.species = tuple(sorted(int(z) for z in species))
        missing = [z for z in self.species if z not in UFF]
        if missing:
            raise ValueError(f"no UFF Lennard-Jones parameters for atomic number(s) {missing}")
        pairs = list(itertools.combinations_with_replacement(range(len(self.species)), 2))
        table = torch.zeros(len(self.species), len(self.species), dtype=torch.long)
        for k, (a, b) in enumerate(pairs):
            table[a, b] = table[b, a] = k
        r_min, depth = uff_pair_parameters([self.species[a] for a, _ in pairs], [self.species[b] for _, b in pairs])
        self.register_buffer("pair_table", table)
        self.register_buffer("log_r_min", torch.tensor(np.log(r_min)))
        self.register_buffer("log_depth", torch.tensor(np.log(depth)))
        lookup = torch.full((119,), -1, dtype=torch.long)
        lookup[list(self.species)] = torch.arange(len(self.species))
        self.register_buffer("lookup", lookup, persistent=False)

    def metadata(self) -> dict:
        """What the checkpoint stores besides the tensors (see :func:`prior_from_metadata`)."""
        return {"kind": self.kind, "species": list(self.species)}

    def parameters_by_pair(self) -> dict[str, dict[str, float]]:
        """{"C-H": {"r_min_A": ..., "depth_eV": ...}, ...}."""
        out = {}
        for a, b in itertools.combinations_with_replacement(range(len(self.species)), 2):
            k = int(self.pair_table[a, b])
            name = f"{element_symbol(self.species[a])}-{element_symbol(self.species[b])}"
            out[name] = {"r_min_A": float(self.log_r_min[k].exp()), "depth_eV": float(self.log_depth[k].exp())}
        return out

    def forward(self, batch: Batch, log_r_min: torch.Tensor | None = None,
                log_depth: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        i, j = _intramolecular_pairs(batch)
        kinds = self.lookup[batch.numbers]
        k = self.pair_table[kinds[i], kinds[j]]
        dtype = batch.positions.dtype  # parameters are cast, never the module: a float32 model keeps its prior
        r_min = (self.log_r_min if log_r_min is None else log_r_min).to(dtype)[k].exp()
        depth = (self.log_depth if log_depth is None else log_depth).to(dtype)[k].exp()
        pair_energy, pull = pair_terms(batch.positions[j] - batch.positions[i], r_min, depth)  # pull = dE/dr_j
        forces = torch.zeros_like(batch.positions).index_add(0, i, pull).index_add(0, j, -pull)
        energy = torch.zeros(batch.num_graphs, dtype=dtype).index_add(0, batch.batch[i], pair_energy)
        return energy, forces

    def fit(self, data: Dataset, steps: int = 500, lr: float = 0.02, max_configurations: int = 300) -> dict:
        """Fit r⁰ and D of every pair to the forces of `data` (least squares, Adam), starting
        from r⁰ = the median over configurations of the pair's shortest distance and
        D = 0.5 eV (UFF's r⁰ puts bonded pairs deep in the repulsive wall); returns the
        force RMSE of UFF and of the fit (eV/Å)."""
        configs = _across_molecules([c for c in data if c.forces is not None], max_configurations)
        batch = batch_configurations(configs, 1.0).to(dtype=torch.float64)
        uff = float(((self(batch)[1] - batch.forces) ** 2).mean().sqrt())
        shortest, present = self._shortest_distances(batch)
        log_r_min = torch.log(shortest).requires_grad_(True)
        log_depth = torch.where(present, float(np.log(0.5)), self.log_depth.double()).requires_grad_(True)
        optimizer = torch.optim.Adam([log_r_min, log_depth], lr=lr)

        def rmse():
            return ((self(batch, log_r_min, log_depth)[1] - batch.forces) ** 2).mean().sqrt()

        for _ in range(steps):
            optimizer.zero_grad()
            loss = rmse()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            self.log_r_min.copy_(log_r_min.to(self.log_r_min.dtype))
            self.log_depth.copy_(log_depth.to(self.log_depth.dtype))
        return {"force_rmse_uff_eV_per_A": uff, "force_rmse_fitted_eV_per_A": float(rmse().detach())}

    def _shortest_distances(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per pair kind: the median over graphs of its shortest distance (UFF's r⁰ if the
        kind never occurs), and whether it occurs."""
        i, j = _intramolecular_pairs(batch)
        kinds = self.lookup[batch.numbers]
        k = self.pair_table[kinds[i], kinds[j]]
        r = (batch.positions[j] - batch.positions[i]).norm(dim=1)
        result = self.log_r_min.detach().double().exp().clone()
        present = torch.zeros(len(result), dtype=torch.bool)
        for kind in range(len(result)):
            per_graph = [r[(k == kind) & (batch.batch[i] == g)].min() for g in range(batch.num_graphs)
                         if bool(((k == kind) & (batch.batch[i] == g)).any())]
            if per_graph:
                result[kind], present[kind] = torch.stack(per_graph).median(), True
        return result, present


class MethodPrior(nn.Module):
    """A prior whose labels come from a labelling method (`method`, one of METHOD_PRIORS)
    computed for the structures at hand (refinement/prior.py); its head serves fidelity
    ``"{method}-prior"``. A module without tensors, so the model's extras hold it like the LJ prior."""

    def __init__(self, method: str) -> None:
        super().__init__()
        if method not in METHOD_PRIORS:
            raise ValueError(f"prior method must be one of {METHOD_PRIORS}, got {method!r}")
        self.kind = method

    @property
    def fidelity(self) -> str:
        return f"{self.kind}-prior"

    def metadata(self) -> dict:
        return {"kind": self.kind}


def _across_molecules(configs: list, n: int) -> list:
    """Up to `n` configurations taken in turn from each molecule (sequence of atomic numbers),
    so that every molecule's pairs are fitted, not only those of the first molecule listed."""
    groups: dict[bytes, list] = {}
    for c in configs:
        groups.setdefault(np.asarray(c.numbers).tobytes(), []).append(c)
    return [c for turn in itertools.zip_longest(*groups.values()) for c in turn if c is not None][:n]


def prior_from_metadata(meta: dict) -> LJPrior | MethodPrior:
    """An empty prior of the kind :meth:`LJPrior.metadata` / :meth:`MethodPrior.metadata`
    wrote (an LJ prior's tensors come with the model's state)."""
    kind = meta.get("kind")
    if kind == "lj":
        return LJPrior(meta["species"])
    if kind in METHOD_PRIORS:
        return MethodPrior(kind)
    raise ValueError(f"unknown prior kind {kind!r} (this version knows 'lj' and {', '.join(METHOD_PRIORS)})")


def _intramolecular_pairs(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """All atom pairs i < j within each graph of the batch."""
    firsts, seconds = [], []
    for start, stop in zip(batch.ptr[:-1].tolist(), batch.ptr[1:].tolist()):
        i, j = torch.triu_indices(stop - start, stop - start, 1)
        firsts.append(i + start)
        seconds.append(j + start)
    return torch.cat(firsts), torch.cat(seconds)
