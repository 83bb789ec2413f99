"""The pieces of ASTEROID's stages (Bukharin et al. 2023); training/pipeline.run_stages
chains them on the one fit() loop.

1. Bias identification: train on the accurate data D_A, then for every cheap configuration
   B(x) = ||F_θ0(x) - f_cheap(x)||_1 / (3N), the mean absolute force-component difference
   in eV/Å (the paper's L1 norm divided by 3N, so that B, and γ with it, do not grow with
   the size of the molecule).
2. Bias-aware pre-training from scratch on the cheap data with weights w = exp(-B/γ) on
   both loss terms (γ in eV/Å).
3. Fine-tuning on D_A from the stage-2 weights, the whole model trainable.

Each model carries one reference-energy row per fidelity (accurate first, the default),
so the energy offset moves from the cheap level to the accurate one by construction.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..data import Dataset, fit_energy_references, force_rms
from ..models import ForceField, build_model, predict_in_batches


def new_model(config, accurate: Dataset, cheap: Dataset | list[Dataset] | None = None, seed: int = 0,
              dtype: torch.dtype = torch.float32, prior=None, prior_labels: dict | None = None) -> ForceField:
    """A fresh model with reference energies for the accurate fidelity (first) and the cheap
    one(s), in that order (with one head per fidelity, head i serves fidelity i). With a
    `prior` (models.prior: LJPrior or MethodPrior), the model carries a copy and its last
    head and reference row serve the prior's labels (fidelity ``prior.fidelity``; a method
    prior's labels are cached in `prior_labels`, see refinement.prior.prior_labelled)."""
    model = build_model(config, seed=seed, dtype=dtype)
    references = fit_energy_references(accurate)
    for data in ([cheap] if isinstance(cheap, Dataset) else cheap or []):
        references.update({f: r for f, r in fit_energy_references(data).items() if f not in references})
    heads = None
    if prior is not None:
        from ..refinement.prior import prior_labelled
        n, num_heads = len(references), config.num_heads
        references[prior.fidelity] = fit_energy_references(
            prior_labelled(accurate, prior, cache=prior_labels))[prior.fidelity]
        heads = (list(range(n)) if num_heads == n + 1 else [0] * n) + [num_heads - 1]
        model.extras.prior = copy.deepcopy(prior).to(dtype)
    model.set_normalization(references, scale=force_rms(accurate), heads=heads)
    return model


def force_bias(model: ForceField, cheap: Dataset, batch_size: int = 50) -> np.ndarray:
    """B(x) per cheap configuration: mean |F_model - f_cheap| over force components (eV/Å)."""
    biases = []
    for batch, out in predict_in_batches(model, cheap, batch_size):
        error = (out["forces"] - batch.forces).abs().detach().sum(dim=1)
        per_graph = torch.zeros(batch.num_graphs, dtype=error.dtype).index_add(0, batch.batch, error)
        biases.append((per_graph / (3 * (batch.ptr[1:] - batch.ptr[:-1]))).double().numpy())
    return np.concatenate(biases)


def bias_spread(bias_eV_per_A: np.ndarray) -> dict:
    """B's quartiles (eV/Å) and the share of configurations above a fence set by B's lower
    half, the median + 4 × (median − first quartile): for a normal distribution the point of
    Tukey's fence (2.7 σ), but one that bad labels, which raise B, cannot move as long as they
    are fewer than half. That share estimates the fraction of cheap labels whose error stands
    out from the rest: the case bias weights help with (docs/benchmarks.md, "When bias weights
    help"); on MD17 ethanol it is 0.8-0.9 % for clean labels and 23-26 % with a known 25 %
    corrupted, where Tukey's own fence (third quartile + 1.5 IQR), moved by them, gives 1.8 %."""
    q1, median, q3 = np.percentile(bias_eV_per_A, [25, 50, 75])
    fence = median + 4 * (median - q1)
    return {"bias_quartiles_eV_per_A": [float(q1), float(median), float(q3)],
            "bias_fence_eV_per_A": float(fence),
            "share_above_bias_fence": float(np.mean(np.asarray(bias_eV_per_A) > fence))}


def bias_weights(bias_eV_per_A: np.ndarray, gamma_eV_per_A: float) -> np.ndarray:
    """w ∝ exp(-B/γ), normalised to mean 1 over the cheap set; γ = inf gives equal weights.

    Only the weights' ratios carry the method (Eq. 2); unnormalised, exp(-B/γ) is ~1e-3 for
    γ = 0.05 eV/Å and B ≈ 0.35 eV/Å, which shrinks the gradients towards Adam's ε and so
    quietly lowers the pre-training's learning rate as γ falls."""
    if not gamma_eV_per_A > 0:
        raise ValueError(f"gamma must be positive (eV/Å), got {gamma_eV_per_A}")
    bias = np.asarray(bias_eV_per_A, dtype=float)
    w = np.exp(-(bias - bias.min()) / gamma_eV_per_A)
    return w / w.mean()


def weighted(data: Dataset, weights: np.ndarray) -> Dataset:
    """`data` with per-configuration loss weights."""
    return Dataset([c.with_(weight=float(w)) for c, w in zip(data, weights)], data.source, dict(data.source_units))


def unlabelled(data: Dataset) -> Dataset:
    """`data`'s geometries without energies and forces (the score-matching variant's D_U)."""
    return Dataset([c.with_(energy=None, forces=None) for c in data], data.source, dict(data.source_units))
