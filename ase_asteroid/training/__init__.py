"""Training: weighted losses and the one fit() loop (the ASTEROID stages build on these)."""

from .loop import FitConfig, errors, fit
from ..losses import energy_force_loss

__all__ = ["FitConfig", "energy_force_loss", "errors", "fit"]
