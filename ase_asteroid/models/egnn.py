"""Energy-conserving EGNN (after Satorras, Hoogeboom & Welling 2021).

Invariant message passing on interatomic distances (the E(n)-GNN's invariant branch,
as the paper uses for QM9; no coordinate updates), an energy per atom from the final
features, and forces by autograd. Each layer:

    m_ij = φ_e(h_i, h_j, Bessel(d_ij)) · u(d_ij)
    h_i ← h_i + φ_h(h_i, Σ_j m_ij / avg_num_neighbors)

u is a polynomial envelope that goes smoothly to zero at the cutoff, so the energy is
smooth when atoms cross it. The paper's setting is 5 layers of 128 channels; the CPU
default here is smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..graph import Batch
from .base import ForceField
from .config import COMMON_LIMITS, check_fields
from .radial import BesselBasis, PolynomialCutoff, rescale_radial


@dataclass(frozen=True)
class EGNNConfig:
    """EGNN hyper-parameters: cutoff in Å; channels per atom; layers; radial basis size;
    num_heads: readout heads, one per fidelity (multi-head training; 1 = one shared head)."""

    species: tuple[int, ...]
    cutoff: float = 5.0
    channels: int = 64
    num_layers: int = 3
    num_radial: int = 16
    avg_num_neighbors: float = 8.0
    num_heads: int = 1
    name: str = "egnn"

    def __post_init__(self) -> None:
        check_fields(self, "egnn", EGNN_LIMITS)


#: Inclusive limits of each field: far beyond sensible models, small enough to build.
EGNN_LIMITS = {**COMMON_LIMITS, "channels": (1, 1024), "num_layers": (1, 32), "num_radial": (1, 256)}


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


class EGNNLayer(nn.Module):
    """One invariant message-passing layer with a residual feature update."""

    def __init__(self, channels: int, num_radial: int, avg_num_neighbors: float) -> None:
        super().__init__()
        self.message = nn.Sequential(_mlp(2 * channels + num_radial, channels, channels), nn.SiLU())
        self.update = _mlp(2 * channels, channels, channels)
        self.norm = float(avg_num_neighbors)

    def forward(self, h, edge_index, radial, envelope):
        sender, receiver = edge_index
        m = self.edge_messages(h, sender, receiver, radial) * envelope
        aggregated = torch.zeros_like(h).index_add(0, receiver, m) / self.norm
        return h + self.update(torch.cat([h, aggregated], dim=-1))

    def edge_messages(self, h, sender, receiver, radial):
        """φ_e([h_i, h_j, radial_ij]) for every edge, with the first linear layer's node terms
        multiplied before they are gathered onto the edges: W·[h_i, h_j, r] = W_i h_i + W_j h_j
        + W_r r. Same weights, same result; with ~20 edges per atom most of the work is saved."""
        (first, activation, second), last_activation = self.message[0], self.message[1]
        c = h.shape[-1]
        w_receiver, w_sender, w_radial = first.weight.split([c, c, first.in_features - 2 * c], dim=1)
        pre = ((h @ w_receiver.T).index_select(0, receiver) + (h @ w_sender.T).index_select(0, sender)
               + nn.functional.linear(radial, w_radial, first.bias))
        return last_activation(second(activation(pre)))


class EGNNForceField(ForceField):
    """EGNN backend: ε_i from an MLP on the final invariant features (one MLP per head)."""

    def __init__(self, config: EGNNConfig) -> None:
        super().__init__(config)
        self.embedding = nn.Embedding(len(config.species), config.channels)
        self.radial = BesselBasis(config.cutoff, num_basis=config.num_radial)
        self.envelope = PolynomialCutoff(config.cutoff, p=6)
        self.layers = nn.ModuleList(EGNNLayer(config.channels, config.num_radial,
                                              config.avg_num_neighbors)
                                    for _ in range(config.num_layers))
        heads = config.num_heads
        self.readout = (_mlp(config.channels, config.channels, 1) if heads == 1 else
                        nn.ModuleList(_mlp(config.channels, config.channels, 1) for _ in range(heads)))

    def readout_modules(self) -> list[nn.Module]:
        return [self.readout]

    def _rescale_cutoff(self, cutoff_A: float) -> None:
        rescale_radial(self.radial, self.envelope, cutoff_A)

    def invariant_features(self, batch: Batch, positions: torch.Tensor,
                           species: torch.Tensor) -> torch.Tensor:
        """h [N, channels] after the last layer."""
        sender, receiver = batch.edge_index
        vectors = positions.index_select(0, receiver) - positions.index_select(0, sender) + batch.shifts
        lengths = vectors.norm(dim=-1, keepdim=True)
        radial, envelope = self.radial(lengths), self.envelope(lengths)
        h = self.embedding(species)
        for layer in self.layers:
            h = layer(h, batch.edge_index, radial, envelope)
        return h

    def node_energies(self, batch: Batch, positions: torch.Tensor,
                      species: torch.Tensor) -> torch.Tensor:
        h = self.invariant_features(batch, positions, species)
        if self.config.num_heads == 1:
            return self.readout(h).squeeze(-1)
        per_head = torch.cat([readout(h) for readout in self.readout], dim=1)
        return per_head.gather(1, self.graph_heads(batch)[batch.batch][:, None]).squeeze(1)
