"""The stability sweep: models × step sizes × replicas of Langevin MD, with divergence
detection. Runs are simulated in batches (tasks: one per model, or one per (model, step
size) with workers or a Dask scheduler), but each run's row is written the moment the run
stops (``runs.jsonl``), in every mode: tasks on other processes or machines report it back
at once (ase_asteroid.parallel, ``on_item``). So an interrupted sweep keeps every finished
run and ``resume=True`` skips exactly those. ``sweep.json`` records the settings; a resume
with different ones is refused, and so is a resume of rows without ``sweep.json`` (written
before sweeps stored their settings: nothing to check them against). Seeds are derived
from (seed, model name, step size, replica), so any run can be repeated on its own.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms

from ase_asteroid.parallel import map_unordered
from ase_asteroid.predictor import REFERENCE_METHODS, predictor_for
from ase_asteroid.refinement.settings import RefineSettings, TTTSettings

from .batched import BatchedLangevin, RunSpec
from .divergence import DivergenceCriteria
from .langevin import PAPER_FRICTION_PER_FS, LangevinParameters

__all__ = ["REFERENCE_METHODS", "SWEEP_FILES", "SweepConfig", "run_sweep", "summarize", "write_outputs"]


@dataclass(frozen=True)
class SweepConfig:
    """step_sizes_fs (fs), replicas, time_ps (ps per run), temperature_K (K), friction_per_fs (1/fs);
    refine: test-time refinement of each checkpoint's model for the molecule, once per
    sweep task before its runs start (ase_asteroid/refinement), with `ttt` settings, and
    again every `ttt_every` batched steps (0: never) on the current structures of its runs;
    head: the fidelity/readout head every checkpoint predicts with (default its first)."""

    step_sizes_fs: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 3.0)
    replicas: int = 20
    time_ps: float = 1.0
    temperature_K: float = 500.0
    friction_per_fs: float = PAPER_FRICTION_PER_FS
    seed: int = 0
    criteria: DivergenceCriteria = field(default_factory=DivergenceCriteria)
    record_every: int = 10
    save_trajectories: int = 0
    refine: str = ""
    ttt: TTTSettings = field(default_factory=TTTSettings)
    head: str | None = None
    ttt_every: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_sizes_fs", tuple(float(s) for s in self.step_sizes_fs))
        if not self.step_sizes_fs or any(not s > 0 for s in self.step_sizes_fs):
            raise ValueError(f"step sizes must be positive (fs), got {list(self.step_sizes_fs)}")
        for name in ("replicas", "record_every"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.time_ps > 0:
            raise ValueError(f"time_ps must be positive, got {self.time_ps}")
        LangevinParameters(1.0, self.temperature_K, self.friction_per_fs)  # validates the rest
        self.refine_settings()

    def refine_settings(self) -> RefineSettings:
        """The refinement of every checkpoint in the sweep (validated here)."""
        return RefineSettings.parse(self.refine, self.ttt, self.ttt_every)

    def steps(self, step_size_fs: float) -> int:
        return max(1, int(round(self.time_ps * 1000.0 / step_size_fs)))

    def run_seed(self, model: str, step_size_fs: float, replica: int) -> list[int]:
        return [self.seed, zlib.crc32(model.encode()), int(round(step_size_fs * 1e6)), replica]


def predictor(source: str, molecule: Atoms, config: SweepConfig):
    """The Predictor of a checkpoint path (or a reference method's), checked against
    `molecule` before any run: clear errors for an element it never saw, a head it lacks,
    or a refinement it cannot do."""
    chosen = predictor_for(source, None if source in REFERENCE_METHODS else config.head,
                           "" if source in REFERENCE_METHODS else config.refine_settings())
    try:
        chosen.check_molecule(molecule)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    return chosen


def force_function(source: str, molecule: Atoms, config: SweepConfig | None = None):
    """Batched forces [R, n, 3] of a checkpoint path (with config.head, refined for
    `molecule` if config.refine, its Δ baseline added) or a reference method name."""
    return predictor(source, molecule, config or SweepConfig()).force_function(molecule)


def run_task(source: str, name: str, molecule: Atoms, config: SweepConfig,
             runs: Sequence[tuple[float, int]], on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Simulate the (step size, replica) runs of one model together; one row per run, also
    passed to `on_row` the moment its run stops."""
    specs = [RunSpec(LangevinParameters(dt, config.temperature_K, config.friction_per_fs), config.steps(dt),
                     config.run_seed(name, dt, replica), keep_frames=replica < config.save_trajectories)
             for dt, replica in runs]
    engine = BatchedLangevin(molecule, force_function(source, molecule, config), specs, config.criteria,
                             config.record_every)
    finished = None if on_row is None else (lambda i, result: on_row(_row(name, *runs[i], result)))
    results = engine.run(progress=False, on_finish=finished)
    return [_row(name, dt, replica, r) for (dt, replica), r in zip(runs, results)]


def _key(row: dict) -> tuple:
    return row["model"], row["step_size_fs"], row["replica"]


def _row(name: str, dt: float, replica: int, r) -> dict:
    return {"model": name, "step_size_fs": dt, "replica": replica, "stable": r.stable,
            "steps_completed": r.steps_completed, "steps_total": r.spec.steps,
            "time_to_divergence_ps": None if r.stable else r.time_ps, "reason": r.reason or "stable",
            "seed": list(r.spec.seed), "trace": r.trace if replica == 0 else None,
            "frames": [f.tolist() for f in r.frames] if r.frames else None}


def sweep_settings(models: dict[str, str], molecule: Atoms, config: SweepConfig) -> dict:
    """Everything a sweep's rows depend on, as JSON values (stored in ``sweep.json``)."""
    settings = {"config": asdict(config), "models": dict(models),
                "molecule": {"numbers": molecule.numbers.tolist(), "positions_A": molecule.positions.tolist()}}
    return json.loads(json.dumps(settings))


def check_same_settings(path: Path, settings: dict) -> None:
    """ValueError naming every setting of the stored sweep at `path` that differs (a model
    may be added to a sweep; an existing model name must keep its checkpoint)."""
    stored = json.loads(path.read_text())
    defaults = json.loads(json.dumps(asdict(SweepConfig())))  # for a setting added since the sweep ran
    config = {key: stored["config"].get(key, defaults.get(key)) for key in settings["config"]}
    config = {key: {**defaults[key], **value} if isinstance(value, dict) else value for key, value in config.items()}
    differences = [f"{key}: {config[key]!r} -> {value!r}" for key, value in settings["config"].items()
                   if config[key] != value]
    differences += [f"model {name}: {stored['models'][name]!r} -> {source!r}"
                    for name, source in settings["models"].items() if stored["models"].get(name, source) != source]
    if stored["molecule"] != settings["molecule"]:
        differences.append("the starting molecule")
    if differences:
        raise ValueError(f"--resume: the sweep in {path.parent} was run with other settings ({'; '.join(differences)}); "
                         "resume it with its own settings, or choose another --out")


def read_rows(path: Path) -> list[dict]:
    """Rows already written (a torn last line from a hard kill is ignored)."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def plan(models: dict[str, str], config: SweepConfig, done: set, spread: bool) -> list[tuple]:
    """Tasks (name, runs): one per model, or one per (model, step size) when `spread` over workers."""
    tasks = []
    for name in models:
        todo = [(dt, r) for dt in config.step_sizes_fs for r in range(config.replicas) if (name, dt, r) not in done]
        groups = [[run for run in todo if run[0] == dt] for dt in config.step_sizes_fs] if spread else [todo]
        tasks += [(name, group) for group in groups if group]
    return tasks


#: What a sweep writes into its output folder (and all that overwrite removes).
SWEEP_FILES = ("runs.jsonl", "sweep.json", "runs.csv", "runs.json", "summary.md", "stability.png",
               "bond_deviation.png", "trajectories/*fs_replica*.traj")


def check_out_folder(out_dir: Path, settings: dict, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse a folder with an earlier sweep's rows (FileExistsError) unless `resume` with the
    same settings or `overwrite`; refuse (ValueError) to resume a sweep written before sweeps
    stored their settings: rows without ``sweep.json`` cannot be checked against `settings`."""
    rows_path, settings_path = out_dir / "runs.jsonl", out_dir / "sweep.json"
    if resume and overwrite:
        raise ValueError("--resume continues the earlier sweep and --overwrite discards it: choose one")
    if overwrite or not rows_path.exists():
        return
    if not resume:
        raise FileExistsError(f"{rows_path} exists: pass --resume to continue that sweep, --overwrite to start "
                              "it again, or choose another --out")
    if not settings_path.exists():
        raise ValueError(f"--resume: the sweep in {out_dir} predates stored settings (runs.jsonl without "
                         "sweep.json), so nothing shows that its rows were run with this command's settings; "
                         "start it again with --overwrite, or run it in a new --out")
    check_same_settings(settings_path, settings)


def remove_earlier_sweep(out_dir: Path) -> None:
    """Delete the files of SWEEP_FILES in `out_dir` (and its trajectories folder once empty); nothing else."""
    for path in sorted({p for pattern in SWEEP_FILES for p in out_dir.glob(pattern)}):
        path.unlink()
    if (out_dir / "trajectories").is_dir() and not any((out_dir / "trajectories").iterdir()):
        (out_dir / "trajectories").rmdir()


def run_sweep(models: dict[str, str], molecule: Atoms, config: SweepConfig, out_dir, *, workers: int = 1,
              scheduler: str | None = None, resume: bool = False, overwrite: bool = False,
              progress: bool = True) -> list[dict]:
    """Run the sweep for {display name: checkpoint path or reference method}; returns all rows.
    Each run's row is appended to ``runs.jsonl`` as the run stops, also from a worker's batch
    still running; ``sweep.json`` holds the settings, which a resume must match. A folder
    with earlier rows needs `resume` or `overwrite` (check_out_folder)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rows_path, settings_path = out_dir / "runs.jsonl", out_dir / "sweep.json"
    settings = sweep_settings(models, molecule, config)
    check_out_folder(out_dir, settings, resume, overwrite)
    for source in models.values():  # every model must load and know the molecule before any run starts
        predictor(source, molecule, config)
    if overwrite:
        remove_earlier_sweep(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_path.write_text(json.dumps(settings, indent=1))
    rows = read_rows(rows_path)
    done = {_key(r) for r in rows}
    serial = workers == 1 and scheduler is None
    tasks = plan(models, config, done, spread=not serial)
    with open(rows_path, "a") as handle, tqdm(total=sum(len(runs) for _, runs in tasks), desc="stability sweep",
                                               unit="run", disable=not progress) as bar:
        def record(row: dict) -> None:
            if _key(row) in done:  # reported as the run stopped, then again in its task's result
                return
            done.add(_key(row))
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            rows.append(row)
            bar.update(1)

        arguments = [(models[name], name, molecule, config, runs) for name, runs in tasks]
        for task_rows in map_unordered(run_task, arguments, workers, scheduler, on_item=record):
            for row in task_rows:
                record(row)
    return rows


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Per (model, step size): runs, stable fraction, mean time to divergence of diverged runs (ps)."""
    table = []
    for name in dict.fromkeys(r["model"] for r in rows):
        for dt in sorted({r["step_size_fs"] for r in rows if r["model"] == name}):
            part = [r for r in rows if r["model"] == name and r["step_size_fs"] == dt]
            diverged = [r["time_to_divergence_ps"] for r in part if not r["stable"]]
            table.append({"model": name, "step_size_fs": dt, "runs": len(part),
                          "stable": sum(r["stable"] for r in part),
                          "fraction_stable": sum(r["stable"] for r in part) / len(part),
                          "mean_time_to_divergence_ps": float(np.mean(diverged)) if diverged else None})
    return table


def format_summary(table: Sequence[dict]) -> str:
    """Step sizes as rows, models side by side: 'stable/runs (mean ps to divergence)'."""
    models = list(dict.fromkeys(r["model"] for r in table))
    steps = sorted({r["step_size_fs"] for r in table})
    cell = {(r["model"], r["step_size_fs"]): r for r in table}
    lines = ["| step (fs) | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for dt in steps:
        cells = []
        for m in models:
            r = cell.get((m, dt))
            if r is None:
                cells.append("")
                continue
            t = r["mean_time_to_divergence_ps"]
            cells.append(f"{r['stable']}/{r['runs']}" + (f" (diverged at {t:.3f} ps)" if t is not None else ""))
        lines.append(f"| {dt:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failure_kind(reason: str) -> str:
    """A divergence reason without its measured numbers: "bond O-H (atoms 2-3)", "temperature", ..."""
    kind, _, detail = reason.partition(":")
    return f"{kind} {detail.split(' deviation')[0].strip()}" if kind == "bond" and detail else kind


def format_failures(rows: Sequence[dict]) -> str:
    """Why the runs diverged, per model and step size: each kind of failure with its count
    (most frequent first); empty when every run was stable."""
    lines = []
    for name in dict.fromkeys(r["model"] for r in rows):
        for dt in sorted({r["step_size_fs"] for r in rows if r["model"] == name}):
            kinds = Counter(failure_kind(r["reason"]) for r in rows
                            if r["model"] == name and r["step_size_fs"] == dt and not r["stable"])
            if kinds:
                lines.append(f"- {name}, {dt:g} fs: " + ", ".join(f"{k} ×{n}" for k, n in kinds.most_common()))
    return "Failures:\n" + "\n".join(lines) if lines else ""


def write_outputs(rows: Sequence[dict], molecule: Atoms, out_dir) -> str:
    """runs.csv, runs.json, summary.md, figures and trajectories; returns the summary table."""
    import csv

    from .plots import plot_observable, plot_stability

    out_dir = Path(out_dir)
    columns = ["model", "step_size_fs", "replica", "stable", "steps_completed", "steps_total",
               "time_to_divergence_ps", "reason"]
    ordered = sorted(rows, key=lambda r: (r["model"], r["step_size_fs"], r["replica"]))
    with open(out_dir / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
    (out_dir / "runs.json").write_text(json.dumps([{k: r[k] for k in columns} for r in ordered], indent=1))
    table = summarize(rows)
    text = "\n\n".join(part for part in (format_summary(table), format_failures(rows)) if part)
    (out_dir / "summary.md").write_text(text + "\n")
    plot_stability(table, out_dir / "stability.png")
    plot_observable(rows, out_dir / "bond_deviation.png")
    _write_trajectories(rows, molecule, out_dir / "trajectories")
    return text


def _write_trajectories(rows, molecule: Atoms, folder: Path) -> None:
    from ase.io import write

    for row in rows:
        if row.get("frames"):
            folder.mkdir(exist_ok=True)
            frames = [Atoms(numbers=molecule.numbers, positions=p) for p in row["frames"]]
            write(folder / f"{row['model']}_{row['step_size_fs']:g}fs_replica{row['replica']}.traj", frames)
