"""MACE force field built from mace-torch's modules (Batatia et al. 2022).

The wrapped ``mace.modules.MACE`` has zero atomic energies; reference energies, scale and
shift live in :class:`~ase_asteroid.models.base.ForceField`. ``self.mace`` is an ordinary
mace-torch model, so mace-torch's own tools (e.g. MACECalculator) can run the same network.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..graph import Batch
from .base import ForceField
from .config import COMMON_LIMITS, check_fields
from .mace_import import import_mace
from .radial import rescale_radial


@dataclass(frozen=True)
class MACEConfig:
    """MACE hyper-parameters; defaults are a small model that runs well on a CPU.

    channels: feature channels per irrep; max_L: highest irrep of hidden features;
    max_ell: highest spherical harmonic of edges; correlation: body order - 1 of products;
    cutoff: Å; avg_num_neighbors: normalisation of message sums; num_heads: readout heads,
    one per fidelity (mace-torch's multi-head readouts; 1 = one shared head).
    """

    species: tuple[int, ...]
    cutoff: float = 5.0
    channels: int = 32
    max_L: int = 1
    max_ell: int = 3
    correlation: int = 3
    num_interactions: int = 2
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    radial_mlp: tuple[int, ...] = (64, 64, 64)
    mlp_irreps: str = "16x0e"
    avg_num_neighbors: float = 8.0
    num_heads: int = 1
    name: str = "mace"

    def __post_init__(self) -> None:
        check_fields(self, "mace", MACE_LIMITS)
        if not re.fullmatch(r"[1-9][0-9]{0,2}x0e", self.mlp_irreps):
            raise ValueError(f"mlp_irreps must be scalar irreps such as '16x0e' (at most 999x0e), "
                             f"got {self.mlp_irreps!r}")

    @property
    def hidden_irreps(self) -> str:
        """e.g. '32x0e + 32x1o' for channels=32, max_L=1."""
        return " + ".join(f"{self.channels}x{l}{'e' if l % 2 == 0 else 'o'}"
                          for l in range(self.max_L + 1))


#: Inclusive limits of each field: far beyond sensible models, small enough to build.
MACE_LIMITS = {**COMMON_LIMITS, "channels": (1, 512), "max_L": (0, 3), "max_ell": (1, 4),
               "correlation": (1, 4), "num_interactions": (1, 6), "num_bessel": (1, 32),
               "num_polynomial_cutoff": (1, 16), "radial_mlp": (1, 1024), "len:radial_mlp": (1, 6)}


class MACEForceField(ForceField):
    """MACE backend: ε_i is mace-torch's node energy."""

    def __init__(self, config: MACEConfig) -> None:
        super().__init__(config)
        modules, o3 = import_mace()  # only here: EGNN models never import mace
        with warnings.catch_warnings():  # TorchScript chatter from e3nn's code generation
            warnings.filterwarnings("ignore", message="The TorchScript type system")
            self.mace = self._build(config, modules, o3)

    @staticmethod
    def _build(config: MACEConfig, modules, o3) -> torch.nn.Module:  # a mace.modules.MACE
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        return modules.MACE(
            r_max=config.cutoff, num_bessel=config.num_bessel,
            num_polynomial_cutoff=config.num_polynomial_cutoff, max_ell=config.max_ell,
            interaction_cls=block, interaction_cls_first=block,
            num_interactions=config.num_interactions, num_elements=len(config.species),
            hidden_irreps=o3.Irreps(config.hidden_irreps), MLP_irreps=o3.Irreps(config.mlp_irreps),
            atomic_energies=np.zeros((config.num_heads, len(config.species)) if config.num_heads > 1
                                     else len(config.species)),
            avg_num_neighbors=config.avg_num_neighbors, atomic_numbers=list(config.species),
            correlation=config.correlation, gate=torch.nn.functional.silu,
            radial_MLP=list(config.radial_mlp),
            **({"heads": [f"head{i}" for i in range(config.num_heads)]} if config.num_heads > 1 else {}))

    def readout_modules(self) -> list[torch.nn.Module]:
        return [self.mace.readouts]

    def _rescale_cutoff(self, cutoff_A: float) -> None:
        """mace-torch's one radial embedding (shared by every interaction) and its r_max."""
        embedding = self.mace.radial_embedding
        rescale_radial(embedding.bessel_fn, embedding.cutoff_fn, cutoff_A)
        self.mace.r_max.fill_(cutoff_A)

    def node_energies(self, batch: Batch, positions: torch.Tensor,
                      species: torch.Tensor) -> torch.Tensor:
        return self._run_mace(batch, positions, species)["node_energy"]

    def invariant_features(self, batch: Batch, positions: torch.Tensor,
                           species: torch.Tensor) -> torch.Tensor:
        """The scalar (0e) channels of every interaction's output, concatenated [N, C]
        (mace-torch's node_feats also hold the 1o, 2e, ... channels, which rotate)."""
        features = self._run_mace(batch, positions, species)["node_feats"]
        scalars, start = [], 0
        for product in self.mace.products:
            irreps = product.linear.irreps_out
            scalars += [features[:, start + s.start:start + s.stop]
                        for (_, ir), s in zip(irreps, irreps.slices()) if ir.l == 0]
            start += irreps.dim
        return torch.cat(scalars, dim=1)

    def _run_mace(self, batch: Batch, positions: torch.Tensor, species: torch.Tensor) -> dict:
        data = {
            "positions": positions,
            "node_attrs": torch.nn.functional.one_hot(species, len(self.species)).to(positions.dtype),
            "edge_index": batch.edge_index,
            "shifts": batch.shifts,
            "unit_shifts": torch.zeros_like(batch.shifts),
            "cell": batch.cell.reshape(-1, 3),
            "batch": batch.batch,
            "ptr": batch.ptr,
        }
        if self.config.num_heads > 1:
            data["head"] = self.graph_heads(batch)
        return self.mace(data, training=self.training, compute_force=False)
