"""Acquisition: which configurations of a pool to label accurately next.

``select(pool, n, strategy, ...)`` returns the pool indices of the `n` configurations to
label, never one already labelled (a pool configuration within 1e-4 Å of a labelled one,
compared by interatomic distances, counts as labelled). Strategies:

- ``random``: `n` drawn with ``default_rng(seed)``.
- ``fps-geometry``: farthest-point sampling on a geometry descriptor, for each pair of
  elements (Z_a <= Z_b) the sorted inverse distances (1/Å) of its atom pairs; blind to
  rotation, translation and permutations of like atoms. Only configurations with the same
  atoms (composition) are comparable; one with no chosen or labelled configuration of its
  composition is infinitely far, so every composition is covered first.
- ``fps-model``: farthest-point sampling on a model's descriptor, the mean over atoms of
  its invariant node features (``ForceField.node_features``); needs one model.
- ``bias``: the largest B(x) = mean |F_model(x) − f_cheap(x)| (eV/Å, training/stages.py
  ``force_bias``) of a stage-1 model against the pool's own (cheap) force labels: where the
  cheap labels and the accurate-data model disagree most. Needs one model and a labelled pool.
- ``committee``: the largest disagreement of several models' forces, the root mean square
  over force components of their standard deviation across models (eV/Å); needs ≥ 2 models.

FPS starts from the labelled set when one is given: each step picks the configuration whose
Euclidean distance to the nearest labelled or already chosen one is largest. Without a
labelled set it starts from the configuration farthest from its composition's mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .data import Dataset
from .data.tools import matching_pairs
from .models import ForceField, check_species

STRATEGIES = ("random", "fps-geometry", "fps-model", "bias", "committee")

#: Pool configurations closer than this (Å, largest interatomic-distance difference) to a
#: labelled one count as labelled (extxyz keeps 8 decimals, so a round trip stays far below).
LABELLED_TOLERANCE_A = 1e-4


@dataclass(frozen=True)
class Selection:
    """What ``select`` chose: pool indices in the order picked, each with its score (FPS:
    distance to the nearest labelled/earlier pick; bias: B in eV/Å; committee: force
    disagreement in eV/Å; random: NaN), and the pool indices that counted as labelled."""

    strategy: str
    indices: list[int]
    scores: list[float]
    excluded: list[int]


def labelled_indices(pool: Dataset, labelled: Dataset | None) -> list[int]:
    """Pool indices whose geometry is in `labelled` (within LABELLED_TOLERANCE_A)."""
    if labelled is None or not len(labelled):
        return []
    return sorted({i for i, _ in matching_pairs(pool, labelled, LABELLED_TOLERANCE_A)})


def select(pool: Dataset, n: int, strategy: str, *, labelled: Dataset | None = None,
           models: Sequence[ForceField] = (), seed: int = 0, batch_size: int = 50,
           progress: bool = False) -> Selection:
    """The `n` pool configurations to label next by `strategy` (see the module docstring);
    `progress` shows a bar over the model evaluations.
    ValueError for an unknown strategy, n outside 1..(unlabelled pool size), the wrong
    number of models, a model that lacks an element of the pool, or bias without cheap labels."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    excluded = labelled_indices(pool, labelled)
    candidates = np.setdiff1d(np.arange(len(pool)), excluded)
    if n < 1:
        raise ValueError(f"the number of configurations to select must be at least 1, got {n}")
    if n > len(candidates):
        raise ValueError(f"cannot select {n} configurations: the pool has {len(pool)}, "
                         f"{len(excluded)} of them already labelled, so at most {len(candidates)}")
    _check_models(strategy, pool, models)
    if strategy == "random":
        chosen = np.random.default_rng(seed).choice(candidates, n, replace=False)
        return Selection(strategy, [int(i) for i in chosen], [float("nan")] * n, excluded)
    if strategy in ("bias", "committee"):
        score = ((lambda data: bias_scores(models[0], data, batch_size)) if strategy == "bias"
                 else lambda data: committee_scores(models, data, batch_size))
        scores = _in_chunks(score, pool.subset(candidates), strategy, progress)
        order = np.argsort(-scores, kind="stable")[:n]
        return Selection(strategy, [int(candidates[i]) for i in order], [float(scores[i]) for i in order], excluded)
    describe = lambda data: _descriptor_groups(strategy, models, data, batch_size, progress)
    anchors = describe(labelled) if labelled is not None and len(labelled) else {}
    picks = farthest_points(describe(pool.subset(candidates)), n, anchors)
    return Selection(strategy, [int(candidates[i]) for i, _ in picks], [d for _, d in picks], excluded)


def _descriptor_groups(strategy: str, models: Sequence[ForceField], data: Dataset, batch_size: int,
                       progress: bool) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """{group: (indices into data, descriptors)} of an FPS strategy: geometry descriptors per
    composition, or the model's mean node features in one group."""
    if strategy == "fps-geometry":
        return geometry_descriptors(data)
    features = _in_chunks(lambda chunk: model_descriptors(models[0], chunk, batch_size), data, "descriptors", progress)
    return {(): (np.arange(len(data)), features)}


def _in_chunks(function, data: Dataset, description: str, progress: bool, size: int = 500) -> np.ndarray:
    """function(chunk) [len(chunk), ...] over chunks of `data`, concatenated; a progress bar
    in configurations when `progress`."""
    results = []
    with tqdm(total=len(data), desc=description, unit="config", disable=not progress) as bar:
        for start in range(0, len(data), size):
            results.append(function(data[start:start + size]))
            bar.update(len(results[-1]))
    return np.concatenate(results)


def _check_models(strategy: str, pool: Dataset, models: Sequence[ForceField]) -> None:
    needed = {"random": (0, 0), "fps-geometry": (0, 0), "fps-model": (1, 1), "bias": (1, 1),
              "committee": (2, None)}[strategy]
    low, high = needed
    if len(models) < low or (high is not None and len(models) > high):
        wanted = "no model" if high == 0 else "one model" if high == 1 else f"at least {low} models"
        raise ValueError(f"strategy {strategy!r} takes {wanted} (--model), got {len(models)}")
    for k, model in enumerate(models):
        check_species(pool.species, model.species, f"model {k + 1}", "in the pool")
    if strategy == "bias" and any(c.forces is None for c in pool):
        unlabelled = sum(c.forces is None for c in pool)
        raise ValueError(f"strategy 'bias' compares the model with the pool's cheap force labels, but "
                         f"{unlabelled} of {len(pool)} pool configurations have no forces "
                         "(label the pool with a cheap method first: asteroid data label)")


def bias_scores(model: ForceField, pool: Dataset, batch_size: int = 50) -> np.ndarray:
    """B(x) [len(pool)] in eV/Å: the stage-1 bias of training/stages.py."""
    from .training.stages import force_bias

    return force_bias(model, pool, batch_size)


def committee_scores(models: Sequence[ForceField], pool: Dataset, batch_size: int = 50) -> np.ndarray:
    """[len(pool)] eV/Å: sqrt(mean over the 3N force components of the variance across models)."""
    from .predictor import Predictor

    forces = [[f for _, _, chunk in Predictor(model).predict_configurations(pool, batch_size) for f in chunk]
              for model in models]
    return np.array([np.sqrt(np.stack([m[i] for m in forces]).var(axis=0).mean()) for i in range(len(pool))])


def _composition(config) -> tuple[int, ...]:
    return tuple(sorted(int(z) for z in config.numbers))


def geometry_descriptor(numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """For each element pair (Z_a <= Z_b, in order) the sorted inverse distances (1/Å) of its
    atom pairs, concatenated; equal length for equal compositions."""
    i, j = np.triu_indices(len(numbers), 1)
    inverse = 1.0 / np.linalg.norm(positions[i] - positions[j], axis=1)
    pair = np.stack([np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])], axis=1)
    parts = [np.sort(inverse[(pair == key).all(axis=1)]) for key in np.unique(pair, axis=0)]
    return np.concatenate(parts) if parts else np.zeros(0)


def geometry_descriptors(data: Dataset) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """{composition: (indices into data, descriptors [k, d])}."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(data):
        groups.setdefault(_composition(config), []).append(i)
    return {key: (np.array(idx), np.stack([geometry_descriptor(np.asarray(data[i].numbers), data[i].positions)
                                           for i in idx])) for key, idx in groups.items()}


def model_descriptors(model: ForceField, data: Dataset, batch_size: int = 50) -> np.ndarray:
    """Mean node features over each configuration's atoms [len(data), C]: one space for
    every molecule."""
    model.eval()
    means = []
    for start in range(0, len(data), batch_size):
        batch = model.batch_of(data[start:start + batch_size])
        features = model.node_features(batch).double().cpu()
        sums = torch.zeros(batch.num_graphs, features.shape[1], dtype=torch.float64).index_add(0, batch.batch.cpu(), features)
        means.append((sums / (batch.ptr[1:] - batch.ptr[:-1]).cpu()[:, None]).numpy())
    return np.concatenate(means)


def farthest_points(groups: dict, n: int, anchors: dict) -> list[tuple[int, float]]:
    """Greedy farthest-point sampling: `n` (index, distance) pairs over the groups of
    ``{key: (indices, vectors)}``; a point's distance is to the nearest anchor (same key) or
    earlier pick in its group, infinite while its group has none (then the group's point
    farthest from the group mean goes first)."""
    state = {}
    for key, (indices, vectors) in groups.items():
        nearest = np.full(len(indices), np.inf)
        if key in anchors:
            for anchor in anchors[key][1]:
                nearest = np.minimum(nearest, np.linalg.norm(vectors - anchor, axis=1))
        state[key] = [indices, vectors, nearest, np.zeros(len(indices), dtype=bool)]
    picks = []
    for _ in range(n):
        best = None
        for key, (indices, vectors, nearest, taken) in state.items():
            if taken.all():
                continue
            score = np.where(taken, -1.0, nearest)
            if np.isinf(score).any():
                spread = np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)
                k = int(np.argmax(np.where(taken, -1.0, spread)))
            else:
                k = int(np.argmax(score))
            if best is None or score[k] > best[2]:
                best = (key, k, float(score[k]))
        key, k, distance = best
        indices, vectors, nearest, taken = state[key]
        taken[k] = True
        np.minimum(nearest, np.linalg.norm(vectors - vectors[k], axis=1), out=nearest)
        picks.append((int(indices[k]), distance))
    return picks


def write_selection(pool: Dataset, selection: Selection, out, pool_path: str = "",
                    overwrite: bool = False) -> tuple[Path, Path]:
    """The chosen configurations as extxyz (`out`, each with ``info["pool_index"]``; any
    labels they carried are dropped: they are to be labelled) and ``OUT.json`` beside it
    (pool, strategy, indices, scores, excluded). Returns both paths."""
    import ase.io

    out = Path(out)
    index_file = out.with_name(out.name + ".json")
    for path in (out, index_file):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists: pass --overwrite to replace it")
    frames = []
    for i in selection.indices:
        config = pool[i].with_(energy=None, forces=None)
        atoms = config.to_atoms()
        atoms.info["pool_index"] = i
        frames.append(atoms)
    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out, frames, format="extxyz")
    scores = [None if not np.isfinite(s) else s for s in selection.scores]
    index_file.write_text(json.dumps({"pool": pool_path, "pool_size": len(pool), "strategy": selection.strategy,
                                      "indices": selection.indices, "scores": scores,
                                      "excluded_as_labelled": selection.excluded}, indent=1))
    return out, index_file
