"""Weighted energy/force losses (ASTEROID's Eq. 1, with per-configuration weights as in Eq. 2).

    L = (1 - ρ) / (3N) Σ_i w_g(i) ℓ(f_i, -∇_i E) + ρ / B Σ_g w_g ℓ(e_g, E_g)

over the N atoms and B graphs of a batch; ℓ is applied per component (squared error,
absolute error or Huber), forces in eV/Å and energies in eV per atom of the graph, so
that ρ weighs quantities of comparable size.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from ase.units import kB

from .graph import Batch

KINDS = ("mse", "mae", "huber")


def _elementwise(error: torch.Tensor, kind: str, huber_delta: float = 0.01) -> torch.Tensor:
    if kind == "mse":
        return error ** 2
    if kind == "mae":
        return error.abs()
    if kind == "huber":
        return torch.nn.functional.huber_loss(error, torch.zeros_like(error), reduction="none", delta=huber_delta)
    raise ValueError(f"loss must be one of {KINDS}, got {kind!r}")


def energy_force_loss(prediction: dict[str, torch.Tensor], batch: Batch, rho: float = 0.01,
                      kind: str = "mse") -> torch.Tensor:
    """The weighted loss above for one batch (a scalar tensor)."""
    atoms_per_graph = (batch.ptr[1:] - batch.ptr[:-1]).to(prediction["energy"].dtype)
    weight_atom = batch.weight[batch.batch][:, None]
    force_error = prediction["forces"] - batch.forces
    force_term = (weight_atom * _elementwise(force_error, kind)).sum() / (3 * batch.num_atoms)
    energy_error = (prediction["energy"] - batch.energy) / atoms_per_graph
    energy_term = (batch.weight * _elementwise(energy_error, kind)).sum() / batch.num_graphs
    return (1 - rho) * force_term + rho * energy_term


def score_matching_loss(model, batch: Batch, temperature_K: float, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
    """Sliced score matching on unlabelled configurations (ASTEROID's Eq. 3):

        L = 1/(3N) Σ_g w_g [ k_B T · vᵀ(∇F)v + ½ |F|² ]

    with F = -∇E (eV/Å), v a Rademacher vector per atom component (E[v vᵀ] = I, so
    vᵀ(∇F)v estimates Tr ∇F) and k_B T in eV. For samples of the Boltzmann distribution
    at T its minimiser is F = k_B T ∇ log p, the true forces; the labels are not used.
    """
    positions = batch.positions.to(model.dtype).detach().requires_grad_(True)
    forces = model(_with_positions(batch, positions), create_graph=True)["forces"]
    v = torch.randint(0, 2, forces.shape, generator=generator).to(forces.dtype) * 2 - 1
    (hessian_v,) = torch.autograd.grad((forces * v).sum(), positions, create_graph=True)
    per_atom = (kB * temperature_K * v * hessian_v + 0.5 * forces ** 2).sum(dim=1)
    weight_atom = batch.weight.to(per_atom.dtype)[batch.batch]
    return (weight_atom * per_atom).sum() / (3 * batch.num_atoms)


def _with_positions(batch: Batch, positions: torch.Tensor) -> Batch:
    return replace(batch.to(dtype=positions.dtype), positions=positions)
