"""The steps of a campaign, each reading the outputs of the earlier ones from the campaign
folder and writing its own there; every step is made of the package's own tools (the
samplers, the label runner, ``select``, ``run_stages``, the stability sweep), and each
step's ``done`` looks at its outputs only, so a rerun skips what is complete and continues
what is not (labelling appends and skips what is labelled; training resumes its stages).

Files (``out/``): ``pool.extxyz`` (sampled), ``pool_cheap.extxyz`` (cheap labels: the
acquisition pool; indices below are into this file), ``rounds/roundR/picks.extxyz`` (+
``.json``: pool indices) and ``labels.extxyz`` (accurate labels; round 0 is the random
seed set, its first picks the validation and test sets), ``rounds/roundR/model/`` (the
stage-1 model(s) trained on rounds 0..R) and ``errors.json``, ``final/`` (the chosen
method's checkpoints and ``result.json``), ``stability/`` (the sweep), ``report.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data import Dataset, read_dataset
from ..labels.runner import read_done
from .config import CampaignConfig


def write_json(path: Path, value) -> None:
    """`value` as JSON at `path`, atomically (temporary file, then rename)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    temporary.replace(path)


def failed_indices(labels: Path) -> set[int]:
    """Source indices the label runner recorded as failed (``OUT.failed.json``)."""
    failed = labels.with_name(labels.name + ".failed.json")
    return {int(i) for i in json.loads(failed.read_text())} if failed.exists() else set()


def labelled_indices(labels: Path) -> list[int]:
    """Source indices of the complete frames in a label runner's output, in file order."""
    return [int(a.info["source_index"]) for a in read_done(labels)] if labels.exists() else []


def labels_complete(structures: Path, labels: Path) -> bool:
    """True once every structure of `structures` is labelled in `labels` or failed."""
    if not structures.exists() or not labels.exists():
        return False
    wanted = set(range(len(read_done(structures))))
    return wanted <= set(labelled_indices(labels)) | failed_indices(labels)


class Campaign:
    """A campaign's folder, settings and the data its steps share."""

    def __init__(self, config: CampaignConfig, workers: int = 1, scheduler: str | None = None,
                 progress: bool = True) -> None:
        self.config, self.folder = config, Path(config.out)
        self.workers, self.scheduler, self.progress = workers, scheduler, progress
        self.pool_path, self.cheap_path = self.folder / "pool.extxyz", self.folder / "pool_cheap.extxyz"
        self.final_dir, self.stability_dir = self.folder / "final", self.folder / "stability"

    def round_dir(self, r: int) -> Path:
        return self.folder / "rounds" / f"round{r}"

    def picks(self, r: int) -> Path:
        return self.round_dir(r) / "picks.extxyz"

    def picks_index(self, r: int) -> Path:
        """The pool indices of round r's picks (``asteroid select``'s OUT.json, written last)."""
        return self.round_dir(r) / "picks.extxyz.json"

    def labels(self, r: int) -> Path:
        return self.round_dir(r) / "labels.extxyz"

    def errors_path(self, r: int) -> Path:
        return self.round_dir(r) / "errors.json"

    def pool(self) -> Dataset:
        """The cheap-labelled pool (configurations whose cheap labelling failed are not in it)."""
        return read_dataset(self.cheap_path)

    def round_labels(self, r: int) -> tuple[Dataset, list[int]]:
        """Round r's accurate labels and, for each, its position among the round's picks."""
        data = read_dataset(self.labels(r)) if self.labels(r).exists() else Dataset([])
        return data, labelled_indices(self.labels(r))

    def seed_part(self, role: str) -> Dataset:
        """The part of the seed round with `role`: val (its first accurate.val picks), test
        (the next accurate.test) or train (the rest)."""
        spec = self.config.accurate
        low, high = {"val": (0, spec.val), "test": (spec.val, spec.val + spec.test),
                     "train": (spec.val + spec.test, np.inf)}[role]
        data, positions = self.round_labels(0)
        return data.subset([k for k, p in enumerate(positions) if low <= p < high])

    def accurate_train(self, last_round: int) -> Dataset:
        """The accurate training labels of rounds 0..last_round (the seed set's train part first)."""
        data = self.seed_part("train")
        for r in range(1, last_round + 1):
            data = data + self.round_labels(r)[0]
        return data

    def holdout_pool_indices(self) -> list[int]:
        """Pool indices of the validation and test picks (never trained on, even as cheap data)."""
        spec = self.config.accurate
        return json.loads(self.picks_index(0).read_text())["indices"][:spec.val + spec.test]

    def picked_so_far(self, last_round: int) -> Dataset:
        """Every configuration picked in rounds 0..last_round (labelled or not): never picked again."""
        picks = [read_dataset(self.picks(r)) for r in range(last_round + 1)]
        return sum(picks[1:], picks[0])

    def molecule(self):
        """The starting structure of the stability check: the first pool configuration."""
        from ase import Atoms

        first = self.pool()[0]
        return Atoms(numbers=first.numbers, positions=first.positions)

    def final_result(self) -> dict:
        return json.loads((self.final_dir / "result.json").read_text())
