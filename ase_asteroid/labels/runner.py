"""Labelling many configurations without losing work.

Each result is appended to the output extxyz as soon as it arrives (one complete frame
per write, so Ctrl-C leaves a valid file); ``mode="append"`` skips what the file already
holds; a configuration that fails is recorded with its reason in ``OUT.failed.json`` and
reported, and the rest go on. Work runs in this process, in a local process pool
(``workers``), or on a Dask cluster (``scheduler``), through :mod:`ase_asteroid.parallel`. At the end the file is sorted by
source index, so an interrupted-and-resumed run writes the same file as an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from ..parallel import map_unordered
from .base import Labeler

MODES = ("new", "append", "overwrite")


@dataclass
class LabelReport:
    """What a labelling run did: counts, failures with reasons, CPU-seconds per label."""

    method: str
    out: str
    labelled: int = 0
    already_done: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    cpu_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    def summary(self) -> str:
        cost = (f"{np.mean(self.cpu_seconds):.3g} CPU-s per label (median {np.median(self.cpu_seconds):.3g})"
                if self.cpu_seconds else "no labels computed")
        lines = [f"{self.method}: {self.labelled} labelled, {self.already_done} already in {self.out}, "
                 f"{len(self.failed)} failed; {cost}; wall {self.wall_seconds:.1f} s"]
        lines += [f"  failed #{index}: {reason}" for index, reason in sorted(self.failed.items())[:20]]
        return "\n".join(lines)


def label_one(labeler: Labeler, index: int, numbers, positions) -> dict:
    """Label one configuration; never raises: a failure comes back with its reason."""
    start = time.process_time()
    try:
        energy, forces = labeler.label(Atoms(numbers=numbers, positions=positions))
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise ValueError("non-finite energy or forces")
        return {"index": index, "energy": energy, "forces": forces, "cpu_s": time.process_time() - start}
    except Exception as error:  # recorded, reported, and the run goes on
        return {"index": index, "error": f"{type(error).__name__}: {error}", "cpu_s": time.process_time() - start}


def choose_subset(n_total: int, subset: int | None, seed: int = 0) -> list[int]:
    """All indices, or `subset` of them drawn with ``default_rng(seed)`` (sorted)."""
    if subset is None:
        return list(range(n_total))
    if not 0 < subset <= n_total:
        raise ValueError(f"--subset must be between 1 and {n_total} (the number of configurations), got {subset}")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n_total, subset, replace=False))


def read_done(out: Path) -> list[Atoms]:
    """Complete frames already in `out`. A torn last frame (a hard kill mid-write: too few
    lines, or no final newline, so its last number may be cut short) is dropped; anything else that does not parse is a
    ValueError naming the file and line, since labels after it would be lost."""
    text = Path(out).read_text()
    lines, frames, start = text.splitlines(), [], 0
    while start < len(lines) and any(line.strip() for line in lines[start:]):
        try:
            count = int(lines[start].strip())
        except ValueError:
            raise ValueError(f"{out}: line {start + 1}: expected the atom count of a frame, got "
                             f"{lines[start][:40]!r}; the file is corrupt (repair or delete it)") from None
        stop = start + count + 2
        last = stop >= len(lines)
        if stop > len(lines) or (last and not text.endswith("\n")):
            break  # torn: the file ends inside this frame, or inside its last line (a number may be cut short)
        try:
            frames.append(ase.io.read(io.StringIO("\n".join(lines[start:stop]) + "\n"), format="extxyz"))
        except Exception as error:  # ase raises many kinds for a malformed frame
            raise ValueError(f"{out}: frame starting at line {start + 1} does not parse "
                             f"({type(error).__name__}: {error}); the file is corrupt (repair or delete it)") from error
        start = stop
    return frames


def frame_text(labeler: Labeler, source: Atoms, result: dict) -> str:
    atoms = Atoms(numbers=source.numbers, positions=source.positions)
    atoms.calc = SinglePointCalculator(atoms, energy=result["energy"], forces=result["forces"])
    atoms.info.update(fidelity=labeler.fidelity, level_of_theory=labeler.level_of_theory,
                      source_index=result["index"], label_cpu_s=round(result["cpu_s"], 4))
    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="extxyz")
    return buffer.getvalue()


def _prepare_output(out: Path, mode: str) -> list[Atoms]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if out.exists() and mode == "new":
        raise FileExistsError(f"{out} exists: pass --append to continue labelling into it (finished "
                              "configurations are skipped) or --overwrite to start again")
    if mode == "append" and out.exists():
        done = read_done(out)
        write_frames(out, done)  # drops a truncated last frame, if any
        return done
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    return []


def write_frames(out: Path, frames: Sequence[Atoms]) -> None:
    """Write `frames` to the extxyz file `out` atomically (temporary file, then rename)."""
    temporary = out.with_name(out.name + ".tmp")
    ase.io.write(temporary, list(frames), format="extxyz") if frames else temporary.write_text("")
    os.replace(temporary, out)


def label_configurations(frames: Sequence[Atoms], labeler: Labeler, out, *, subset: int | None = None,
                         seed: int = 0, workers: int = 1, scheduler: str | None = None, mode: str = "new",
                         progress: bool = True) -> LabelReport:
    """Label `frames` (or a seeded `subset`) with `labeler` into the extxyz file `out`."""
    out = Path(out)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")  # before any file is touched
    indices = choose_subset(len(frames), subset, seed)
    labeler.prepare(frames[indices[0]])
    done = _prepare_output(out, mode)
    done_indices = {int(a.info["source_index"]) for a in done if "source_index" in a.info}
    todo = [i for i in indices if i not in done_indices]
    report = LabelReport(labeler.method, str(out), already_done=len(indices) - len(todo))
    failed_path = out.with_name(out.name + ".failed.json")
    results = map_unordered(label_one, [(labeler, i, frames[i].numbers, frames[i].positions) for i in todo],
                            workers, scheduler)
    start = time.perf_counter()
    with open(out, "a") as handle, tqdm(total=len(todo), desc=labeler.method, unit="label",
                                        disable=not progress) as bar:
        for result in results:
            report.cpu_seconds.append(result["cpu_s"])
            if "error" in result:
                report.failed[result["index"]] = result["error"]
                failed_path.write_text(json.dumps(report.failed, indent=1))
            else:
                handle.write(frame_text(labeler, frames[result["index"]], result))
                handle.flush()
                report.labelled += 1
            bar.update(1)
    report.wall_seconds = time.perf_counter() - start
    write_frames(out, sorted(read_done(out), key=lambda a: int(a.info["source_index"])))
    if not report.failed and failed_path.exists():
        failed_path.unlink()
    return report
