"""Radius graphs and batches.

A :class:`Batch` holds one or many structures as flat tensors. Edges point from
``edge_index[0]`` (sender j) to ``edge_index[1]`` (receiver i) and the edge vector is
``positions[i] - positions[j] + shifts`` (Å), mace-torch's convention. Molecules use a
dense distance matrix; periodic cells use ASE's neighbour list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping, Sequence

import numpy as np
import torch

from .data.dataset import Configuration


def radius_graph(positions: np.ndarray, cutoff_A: float, cell: np.ndarray | None = None,
                 pbc=(False, False, False)) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs closer than `cutoff_A`: (edge_index [2, E], shifts [E, 3] in Å)."""
    positions = np.asarray(positions, dtype=np.float64)
    if any(pbc):
        from ase.neighborlist import primitive_neighbor_list

        i, j, unit_shifts = primitive_neighbor_list("ijS", pbc, np.asarray(cell), positions,
                                                    cutoff_A, self_interaction=False)
        return np.stack([i, j]).astype(np.int64), unit_shifts @ np.asarray(cell)
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    close = distances < cutoff_A
    np.fill_diagonal(close, False)
    i, j = np.nonzero(close)
    return np.stack([i, j]).astype(np.int64), np.zeros((len(i), 3))


@dataclass
class Batch:
    """Structures as flat tensors (shapes: N atoms, E edges, B graphs).

    positions [N, 3] Å; numbers [N]; batch [N] graph of each atom; edge_index [2, E];
    shifts [E, 3] Å; cell [B, 3, 3] Å; pbc [B, 3]; ptr [B + 1] atom offsets;
    targets: energy [B] eV, forces [N, 3] eV/Å (NaN where unlabelled), weight [B],
    fidelity [B] (an index into the model's fidelities).
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    ptr: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    weight: torch.Tensor
    fidelity: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Batch":
        """A copy on `device` with floating-point tensors cast to `dtype`."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            cast = dtype if (dtype is not None and value.is_floating_point()) else None
            moved[f.name] = value.to(device=device, dtype=cast)
        return Batch(**moved)


def make_graph(numbers, positions, cutoff_A: float, cell=None, pbc=(False, False, False),
               energy: float | None = None, forces=None, weight: float = 1.0,
               fidelity: int = 0) -> Batch:
    """A one-structure :class:`Batch` (float64) with its radius graph."""
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    edge_index, shifts = radius_graph(positions, cutoff_A, cell, pbc)
    nan = float("nan")
    return Batch(
        positions=torch.from_numpy(positions.copy()),
        numbers=torch.as_tensor(np.asarray(numbers), dtype=torch.long),
        batch=torch.zeros(n, dtype=torch.long),
        edge_index=torch.from_numpy(edge_index),
        shifts=torch.from_numpy(np.asarray(shifts, dtype=np.float64)),
        cell=torch.as_tensor(np.zeros((3, 3)) if cell is None else np.asarray(cell),
                             dtype=torch.float64).reshape(1, 3, 3),
        pbc=torch.as_tensor(pbc, dtype=torch.bool).reshape(1, 3),
        ptr=torch.tensor([0, n]),
        energy=torch.tensor([nan if energy is None else energy], dtype=torch.float64),
        forces=(torch.full((n, 3), nan, dtype=torch.float64) if forces is None
                else torch.as_tensor(np.asarray(forces), dtype=torch.float64)),
        weight=torch.tensor([weight], dtype=torch.float64),
        fidelity=torch.tensor([fidelity], dtype=torch.long))


def graph_from_configuration(config: Configuration, cutoff_A: float,
                             fidelity_index: Mapping[str, int] | None = None) -> Batch:
    """The graph of one configuration; its fidelity label becomes an index via `fidelity_index`
    (labels not in the mapping, or no mapping, give index 0)."""
    index = (fidelity_index or {}).get(config.fidelity, 0)
    return make_graph(config.numbers, config.positions, cutoff_A, config.cell, config.pbc,
                      config.energy, config.forces, config.weight, index)


def collate(graphs: Sequence[Batch]) -> Batch:
    """Concatenate batches into one, offsetting atom indices in edges and ``batch``."""
    if not graphs:
        raise ValueError("collate needs at least one graph")
    atom_offsets = np.cumsum([0] + [g.num_atoms for g in graphs])
    graph_offsets = np.cumsum([0] + [g.num_graphs for g in graphs])
    return Batch(
        positions=torch.cat([g.positions for g in graphs]),
        numbers=torch.cat([g.numbers for g in graphs]),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, graph_offsets)]),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, atom_offsets)], dim=1),
        shifts=torch.cat([g.shifts for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        pbc=torch.cat([g.pbc for g in graphs]),
        ptr=torch.cat([torch.zeros(1, dtype=torch.long)]
                      + [g.ptr[1:] + int(o) for g, o in zip(graphs, atom_offsets)]),
        energy=torch.cat([g.energy for g in graphs]),
        forces=torch.cat([g.forces for g in graphs]),
        weight=torch.cat([g.weight for g in graphs]),
        fidelity=torch.cat([g.fidelity for g in graphs]))


def batch_configurations(configs: Sequence[Configuration], cutoff_A: float,
                         fidelity_index: Mapping[str, int] | None = None) -> Batch:
    """One batch of many configurations."""
    return collate([graph_from_configuration(c, cutoff_A, fidelity_index) for c in configs])


def average_num_neighbors(configs: Sequence[Configuration], cutoff_A: float) -> float:
    """Mean number of neighbours within `cutoff_A` per atom (MACE's and EGNN's
    ``avg_num_neighbors`` normalisation, best set from the training data)."""
    edges = sum(radius_graph(c.positions, cutoff_A, c.cell, c.pbc)[0].shape[1] for c in configs)
    atoms = sum(c.n_atoms for c in configs)
    if atoms == 0:
        raise ValueError("no atoms to count neighbours of")
    return edges / atoms


def replica_batch(numbers, positions: np.ndarray, cutoff_A: float) -> Batch:
    """One batch of R geometries [R, n, 3] (Å) of the same molecule (no cell), with every
    radius graph built in one vectorised step; equals ``collate`` of ``make_graph`` per replica."""
    positions = np.asarray(positions, dtype=np.float64)
    replicas, n = positions.shape[:2]
    distances = np.linalg.norm(positions[:, :, None, :] - positions[:, None, :, :], axis=-1)
    close = distances < cutoff_A
    close[:, np.arange(n), np.arange(n)] = False
    r, i, j = np.nonzero(close)
    nan = torch.full((replicas,), float("nan"), dtype=torch.float64)
    return Batch(
        positions=torch.from_numpy(positions.reshape(-1, 3).copy()),
        numbers=torch.as_tensor(np.tile(np.asarray(numbers), replicas), dtype=torch.long),
        batch=torch.arange(replicas).repeat_interleave(n),
        edge_index=torch.from_numpy(np.stack([i + r * n, j + r * n]).astype(np.int64)),
        shifts=torch.zeros((len(r), 3), dtype=torch.float64),
        cell=torch.zeros((replicas, 3, 3), dtype=torch.float64),
        pbc=torch.zeros((replicas, 3), dtype=torch.bool),
        ptr=torch.arange(replicas + 1) * n,
        energy=nan, forces=torch.full((replicas * n, 3), float("nan"), dtype=torch.float64),
        weight=torch.ones(replicas, dtype=torch.float64), fidelity=torch.zeros(replicas, dtype=torch.long))
