"""bench/label_bias.py: how well B(x) tells known bad cheap labels from the rest."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bench_module


def test_a_perfect_separation_has_auc_one_and_the_weights_shrink_the_bad_share():
    bench = bench_module("label_bias")
    bias = np.concatenate([np.linspace(0.3, 0.4, 30), np.linspace(0.8, 0.9, 10)])
    is_bad = np.arange(40) >= 30
    result = bench.separation(bias, is_bad, [1.0, 0.5])
    assert result["bad"] == 10 and result["auc"] == 1.0
    assert result["B_median_bad"] == pytest.approx(0.85) and result["B_median_clean"] == pytest.approx(0.35)
    q1, q3 = np.percentile(bias, [25, 75])
    w = np.exp(-bias / (q3 - q1))
    assert result["weight_share_bad"]["1"] == pytest.approx(w[is_bad].sum() / w.sum())
    assert result["weight_share_bad"]["0.5"] < result["weight_share_bad"]["1"] < 10 / 40  # smaller γ, less weight


def test_no_separation_gives_auc_one_half_and_the_count_share():
    bench = bench_module("label_bias")
    bias = np.tile([0.3, 0.5], 20)
    is_bad = np.arange(40) % 4 < 2  # half the bad ones at each value, like the rest
    result = bench.separation(bias, is_bad, [1.0])
    assert result["auc"] == pytest.approx(0.5)
    assert result["weight_share_bad"]["1"] == pytest.approx(0.5)


def test_bond_offsets_are_the_force_difference_on_the_hydrogen_along_its_bond():
    bench = bench_module("label_bias")
    rng = np.random.default_rng(0)
    numbers = np.array([8, 6, 1, 1])
    positions = np.array([[0.0, 0, 0], [1.4, 0, 0], [-0.6, 0.8, 0], [2.0, 0, 3.0]])  # O-H bonded; H3 far from both heavy atoms
    assert bench.hydrogen_bonds(numbers, positions) == [(0, 2)]
    configurations = np.stack([positions + rng.normal(scale=0.01, size=positions.shape) for _ in range(3)])
    accurate = rng.normal(size=(3, 4, 3))
    unit = configurations[:, 2] - configurations[:, 0]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    cheap = accurate + rng.normal(size=(3, 4, 3)) * np.array([1, 1, 0, 1])[:, None]  # other atoms: anything
    cheap[:, 2] += np.array([0.1, 0.2, -0.3])[:, None] * unit + np.cross(unit, [0, 0, 1])  # + a sideways part
    offsets = bench.bond_offsets(configurations, cheap, accurate, [(0, 2)])
    assert offsets.shape == (3, 1) and offsets[:, 0] == pytest.approx([0.1, 0.2, -0.3])
