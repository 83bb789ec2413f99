"""Parameter gradients of the energy/force loss without double backpropagation
(Smith, Lubbers, Thompson & Barros, "Simple and efficient algorithms for training machine
learning potentials to force data").

With F̂ = −∂Ê/∂r and G_i = ∂L/∂F̂_i (for the squared error, proportional to the force
error), the force part of the parameter gradient is a directional derivative:

    ∇_θ L_F = Σ_i G_i · ∂F̂_i/∂θ = −∂/∂θ Σ_i G_i · ∂Ê/∂r_i = −D_G ∇_θ Ê.

- ``double_backprop``: backpropagate through the force computation (create_graph).
- ``central_difference``: D_G ∇_θ Ê ≈ [∇_θ Ê(r + ηG) − ∇_θ Ê(r − ηG)] / (2η), one
  first-order backward pass over the displaced geometries, with η = ε·(1 Å)/g₀ and
  g₀ = max_i |G_i| per configuration (so every configuration moves by at most ε Å, however
  small its error). The energy term's gradient uses [Ê(r₊) + Ê(r₋)]/2 = Ê(r) + O(η²).
- ``forward_mode``: D_G ∇_θ Ê exactly, as a Jacobian-vector product (torch.func.jvp) of
  the reverse-mode parameter gradient (Pearlmutter's trick), where the backend's
  operations support forward-mode autodiff.

G and ∂L/∂Ê are taken by autograd from the loss itself, so every loss kind and
per-configuration weight (the ASTEROID weights included) is handled the same way.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..graph import Batch
from ..losses import energy_force_loss

METHODS = ("double_backprop", "central_difference", "forward_mode")


def default_epsilon(dtype: torch.dtype) -> float:
    """The paper's step (Å): 1e-5 in float64, 1e-3 in lower precision."""
    return 1e-5 if dtype == torch.float64 else 1e-3


def loss_and_backward(model, batch: Batch, rho: float, kind: str, method: str = "double_backprop",
                      epsilon: float = 1e-5) -> torch.Tensor:
    """The loss (detached) of one batch, its parameter gradients accumulated in .grad."""
    if method == "double_backprop":
        loss = energy_force_loss(model(batch), batch, rho, kind)
        loss.backward()
        return loss.detach()
    if method not in METHODS:
        raise ValueError(f"force_grad must be one of {METHODS}, got {method!r}")
    batch = batch.to(dtype=model.dtype)
    out = model(batch, create_graph=False)
    energy, forces = out["energy"].detach().requires_grad_(True), out["forces"].detach().requires_grad_(True)
    loss = energy_force_loss({"energy": energy, "forces": forces}, batch, rho, kind)
    loss_energy, loss_forces = torch.autograd.grad(loss, (energy, forces))
    if method == "central_difference":
        _central_difference_backward(model, batch, loss_forces, loss_energy, epsilon)
    else:
        _forward_mode_backward(model, batch, loss_forces, loss_energy)
    return loss.detach()


def displacement_scale(batch: Batch, direction: torch.Tensor, epsilon: float) -> torch.Tensor:
    """η per configuration [B] = ε (Å) / max over its atoms of |direction_i| (1 where zero)."""
    norms = direction.norm(dim=1)
    largest = torch.zeros(batch.num_graphs, dtype=norms.dtype).scatter_reduce(0, batch.batch, norms, "amax")
    return torch.where(largest > 0, epsilon / largest, torch.ones_like(largest))


def _central_difference_backward(model, batch, loss_forces, loss_energy, epsilon) -> None:
    eta = displacement_scale(batch, loss_forces, epsilon)
    step = eta[batch.batch][:, None] * loss_forces
    for sign in (1, -1):  # one displaced geometry at a time: only one forward graph is ever alive
        energy = model(replace(batch, positions=batch.positions + sign * step), compute_forces=False)["energy"]
        (-sign * energy / (2 * eta) + loss_energy * energy / 2).sum().backward()


def _forward_mode_backward(model, batch, loss_forces, loss_energy) -> None:
    from torch.func import functional_call, grad, jvp

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}

    def energy(p, positions):
        return functional_call(model, p, (replace(batch, positions=positions),), {"compute_forces": False})["energy"]

    def parameter_gradient(positions):
        return grad(lambda p: energy(p, positions).sum())(params)

    try:
        _, directional = jvp(parameter_gradient, (batch.positions,), (loss_forces,))
    except (RuntimeError, NotImplementedError) as error:
        raise NotImplementedError(f"forward_mode is not supported by the {model.config.name} backend here "
                                  f"({type(error).__name__}: {str(error).splitlines()[0]}); use central_difference") from error
    (loss_energy * model(batch, compute_forces=False)["energy"]).sum().backward()
    for name, parameter in model.named_parameters():
        if name in names:
            parameter.grad = parameter.grad - directional[name] if parameter.grad is not None else -directional[name]


def proxy_error(model, batch: Batch, epsilon: float) -> float:
    """Err[L̃] = |L̃ − L| / |L| of the central difference along g = F̂ − f (their Eq. 13):
    L = ½ Σ|g|², L̃ = −[Ê(r₊) − Ê(r₋)]/(4η) − ½ Σ g·f, r± = r ± η g, η = ε (Å)/max|g_i|.
    Summed over the batch; small values mean ε resolves the directional derivative."""
    batch = batch.to(dtype=model.dtype)
    forces = model(batch, create_graph=False)["forces"].detach()
    g = forces - batch.forces
    eta = displacement_scale(batch, g, epsilon)
    step = eta[batch.batch][:, None] * g
    with torch.no_grad():
        plus = model(replace(batch, positions=batch.positions + step), compute_forces=False)["energy"]
        minus = model(replace(batch, positions=batch.positions - step), compute_forces=False)["energy"]
    per_graph_gf = torch.zeros(batch.num_graphs, dtype=g.dtype).index_add(0, batch.batch, (g * batch.forces).sum(1))
    approx = (-(plus - minus) / (4 * eta) - 0.5 * per_graph_gf).sum()
    exact = 0.5 * (g ** 2).sum()
    return float((approx - exact).abs() / exact.abs())
