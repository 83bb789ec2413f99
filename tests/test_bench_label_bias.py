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
