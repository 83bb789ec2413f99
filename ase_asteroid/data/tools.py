"""Dataset tools: seeded splits, duplicate removal, leakage filtering, centering.

Two configurations are compared only if they have the same atomic numbers in the same
order (as within one molecule's MD17 and rMD17 files). Their distance is the largest
absolute difference (Å) of either

- ``compare="distances"`` (default): all interatomic distances. Blind to rotation and
  translation, which matters: the MD17 ethanol CCSD(T) file stores its geometries in a
  different frame from rMD17, so 23 rMD17 ethanol configurations equal CCSD(T) ones by
  their distances (to < 1e-3 Å) while their coordinates differ by up to 3.4 Å;
- ``compare="coordinates"``: Cartesian coordinates (the same frame is assumed).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

from .dataset import Dataset


def split_indices(n: int, sizes: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes from ``default_rng(seed).permutation(n)``.

    The last size may be -1 for "all the rest". Matches the benchmark protocol:
    ``split_indices(1000, [200, 50], 0)`` is ``perm[:200], perm[200:250]``.
    """
    sizes = list(sizes)
    if sizes and sizes[-1] == -1:
        sizes[-1] = n - sum(sizes[:-1])
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"split sizes {list(sizes)} do not fit in {n} configurations")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + sizes)
    return [perm[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def split(dataset: Dataset, sizes: Sequence[int], seed: int = 0) -> list[Dataset]:
    """Seeded random split of `dataset` into parts of the given sizes (last may be -1)."""
    return [dataset.subset(idx) for idx in split_indices(len(dataset), sizes, seed)]


def _groups(dataset: Dataset) -> dict[tuple, list[int]]:
    """Indices grouped by their atomic-number sequence (only these are comparable)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, config in enumerate(dataset):
        groups[tuple(int(z) for z in config.numbers)].append(i)
    return groups


COMPARISONS = ("distances", "coordinates")


def _features(dataset: Dataset, indices, compare: str) -> np.ndarray:
    """[len(indices), d] vectors whose max-norm difference is the geometry distance (Å)."""
    if compare not in COMPARISONS:
        raise ValueError(f"compare must be one of {COMPARISONS}, got {compare!r}")
    positions = np.stack([dataset[i].positions for i in indices])
    if compare == "coordinates":
        return positions.reshape(len(indices), -1)
    upper = np.triu_indices(positions.shape[1], 1)
    vectors = positions[:, upper[0]] - positions[:, upper[1]]
    return np.linalg.norm(vectors, axis=-1)


def duplicate_indices(dataset: Dataset, tolerance_A: float = 1e-6,
                      compare: str = "distances") -> list[int]:
    """Indices of configurations that repeat an earlier one within `tolerance_A`."""
    duplicates = set()
    for indices in _groups(dataset).values():
        tree = cKDTree(_features(dataset, indices, compare))
        for a, b in tree.query_pairs(tolerance_A, p=np.inf):
            duplicates.add(indices[max(a, b)])
    return sorted(duplicates)


def remove_duplicates(dataset: Dataset, tolerance_A: float = 1e-6,
                      compare: str = "distances") -> Dataset:
    """`dataset` without repeated geometries (the first occurrence is kept)."""
    drop = set(duplicate_indices(dataset, tolerance_A, compare))
    return dataset.subset(i for i in range(len(dataset)) if i not in drop)


def matching_pairs(dataset: Dataset, test: Dataset, tolerance_A: float = 1e-3,
                   compare: str = "distances") -> list[tuple[int, int]]:
    """(i, j) for each configuration i of `dataset` within `tolerance_A` of configuration j
    of `test` (the nearest one), sorted by i."""
    test_groups = _groups(test)
    pairs = []
    for key, indices in _groups(dataset).items():
        if key not in test_groups:
            continue
        tree = cKDTree(_features(test, test_groups[key], compare))
        distance, nearest = tree.query(_features(dataset, indices, compare), p=np.inf,
                                       distance_upper_bound=tolerance_A)
        pairs += [(i, test_groups[key][k]) for i, d, k in zip(indices, distance, nearest) if np.isfinite(d)]
    return sorted(pairs)


def leaking_indices(dataset: Dataset, test: Dataset, tolerance_A: float = 1e-3,
                    compare: str = "distances") -> list[int]:
    """Indices of `dataset` within `tolerance_A` of any configuration of `test`."""
    return [i for i, _ in matching_pairs(dataset, test, tolerance_A, compare)]


def remove_leakage(dataset: Dataset, test: Dataset, tolerance_A: float = 1e-3,
                   compare: str = "distances") -> Dataset:
    """`dataset` without any configuration that matches one of `test` (e.g. rMD17 vs a CCSD test set)."""
    drop = set(leaking_indices(dataset, test, tolerance_A, compare))
    return dataset.subset(i for i in range(len(dataset)) if i not in drop)


def center(dataset: Dataset) -> Dataset:
    """Move each non-periodic configuration's geometric centre to the origin
    (rMD17 benzene drifts ~200 Å away). Periodic ones are left as they are."""
    configs = [c if any(c.pbc) else c.with_(positions=c.positions - c.positions.mean(axis=0))
               for c in dataset]
    return Dataset(configs, dataset.source, dict(dataset.source_units))
