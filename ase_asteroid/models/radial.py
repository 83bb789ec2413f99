"""Radial basis and smooth envelope: EGNN's own modules, and rescaling either backend's to
a new cutoff.

The modules have the same functions, buffers and state-dict names as mace-torch's
``BesselBasis`` and ``PolynomialCutoff``, so checkpoints of either kind load (EGNN
checkpoints written while EGNN used mace-torch's modules included); they live here so that
EGNN models never import mace.

Bessel basis (MACE eq. 7):  b_n(r) = sqrt(2/r_max) · sin(nπ r / r_max) / r,  n = 1..N.
Polynomial envelope (p):    u(x) = 1 − (p+1)(p+2)/2 x^p + p(p+2) x^{p+1} − p(p+1)/2 x^{p+2},
x = r / r_max, and u = 0 beyond r_max: u(1) = u'(1) = u''(1) = 0, so energies stay smooth
when an atom crosses the cutoff.

``rescale_radial`` is the one place that writes those buffers, for the backends'
``with_cutoff``; it works on these modules and on mace-torch's alike (same buffers).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BesselBasis(nn.Module):
    """r [..., 1] (Å) -> [..., num_basis] Bessel functions with cutoff r_max (Å)."""

    def __init__(self, r_max: float, num_basis: int = 8) -> None:
        super().__init__()
        dtype = torch.get_default_dtype()
        self.register_buffer("bessel_weights",
                             math.pi / r_max * torch.linspace(1.0, num_basis, num_basis, dtype=dtype))
        self.register_buffer("r_max", torch.tensor(r_max, dtype=dtype))
        self.register_buffer("prefactor", torch.tensor(math.sqrt(2.0 / r_max), dtype=dtype))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.prefactor * (torch.sin(self.bessel_weights * r) / r)


class PolynomialCutoff(nn.Module):
    """r [..., 1] (Å) -> envelope u(r / r_max) [..., 1], exactly zero from r_max on."""

    def __init__(self, r_max: float, p: int = 6) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(p, dtype=torch.int))
        self.register_buffer("r_max", torch.tensor(r_max, dtype=torch.get_default_dtype()))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x, p = r / self.r_max, self.p.to(torch.int)
        envelope = (1.0 - ((p + 1.0) * (p + 2.0) / 2.0) * torch.pow(x, p)
                    + p * (p + 2.0) * torch.pow(x, p + 1) - (p * (p + 1.0) / 2) * torch.pow(x, p + 2))
        return envelope * (r < self.r_max)


def rescale_radial(bessel: nn.Module, envelope: nn.Module, cutoff_A: float) -> None:
    """Stretch `bessel` (a Bessel basis, ours or mace-torch's) and `envelope` (a polynomial
    cutoff) from their r_max to `cutoff_A` in place: sin(n π r / r_c) keeps its shape in
    units of r_c."""
    with torch.no_grad():
        bessel.bessel_weights.mul_(float(bessel.r_max) / cutoff_A)
        bessel.prefactor.fill_(math.sqrt(2.0 / cutoff_A))
        bessel.r_max.fill_(cutoff_A)
        envelope.r_max.fill_(cutoff_A)
