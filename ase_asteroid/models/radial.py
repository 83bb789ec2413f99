"""Rescaling a Bessel radial basis and its polynomial envelope to a new cutoff: the one
place that writes those modules' buffers, for the backends' ``with_cutoff``."""

from __future__ import annotations

import numpy as np
import torch


def rescale_radial(bessel, envelope, cutoff_A: float) -> None:
    """Stretch `bessel` (mace's BesselBasis) and `envelope` (PolynomialCutoff) from their
    r_max to `cutoff_A` in place: sin(n π r / r_c) keeps its shape in units of r_c."""
    with torch.no_grad():
        bessel.bessel_weights.mul_(float(bessel.r_max) / cutoff_A)
        bessel.prefactor.fill_(float(np.sqrt(2.0 / cutoff_A)))
        bessel.r_max.fill_(cutoff_A)
        envelope.r_max.fill_(cutoff_A)
