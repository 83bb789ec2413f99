"""``run_campaign``: the steps in order, each skipped when its outputs are complete, with a
progress line per step. The settings each step ran with are kept in ``campaign.json``;
a rerun whose config changes a step that has run is refused, naming what changed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..labels.files import label_file, sample_to_file
from .config import CampaignConfig, step_settings
from .steps import Campaign, labels_complete, write_json

STATE_FILE = "campaign.json"


def _flat(value, prefix: str = "") -> dict:
    """{dotted key: leaf value} of nested mappings."""
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}.{key}" if prefix else key).items()}


def check_settings(folder: Path, settings: dict) -> None:
    """ValueError naming every changed key of every step that has already run in `folder`."""
    path = folder / STATE_FILE
    stored = json.loads(path.read_text()) if path.exists() else {}
    changes = []
    for step, before in stored.items():
        old, new = _flat(before), _flat(json.loads(json.dumps(settings.get(step, {}))))
        changed = [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(set(old) | set(new))
                   if old.get(key) != new.get(key)]
        if changed:
            changes.append(f"step {step!r} ({'; '.join(changed)})")
    if changes:
        raise ValueError(f"{folder} holds a campaign whose steps ran with other settings: {', '.join(changes)}; "
                         "continue it with its own config, or give the new one another 'out' folder")


def record_settings(folder: Path, step: str, settings: dict) -> None:
    """Store the settings `step` runs with (before it writes anything)."""
    path = folder / STATE_FILE
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[step] = json.loads(json.dumps(settings))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, stored)


def sample(c: Campaign) -> str:
    s, molecule = c.config.sampling, c.config.molecule
    frames = sample_to_file(c.pool_path, s.method, s.n, s.temperature_K, smiles=molecule.smiles or None,
                            xyz=molecule.xyz or None, calculator=s.calculator, every=s.every,
                            timestep_fs=s.timestep_fs, seed=c.config.seed, charge=molecule.charge,
                            overwrite=True, progress=c.progress)
    return f"{len(frames)} configurations ({s.method}, {s.temperature_K:g} K) in {c.pool_path}"


def label(c: Campaign, structures: Path, method: str, out: Path) -> str:
    """Label `structures` into `out`, continuing what is there (the runner skips what is done)."""
    report = label_file(structures, method, out, workers=c.workers, scheduler=c.scheduler, mode="append",
                        charge=c.config.molecule.charge, progress=c.progress)
    return report.summary().splitlines()[0]


def pick_and_label(c: Campaign, r: int, models: list = ()) -> str:
    """Round r's picks (random for the seed round, then the strategy with `models`, round
    r-1's stage-1 models), written once, then labelled accurately."""
    from ..acquisition import select, write_selection

    if not c.picks_index(r).exists():  # written after the picks: both are complete
        spec, pool = c.config.acquisition, c.pool()
        if r == 0:
            accurate = c.config.accurate
            selection = select(pool, accurate.val + accurate.test + accurate.seed, "random", seed=c.config.seed)
        else:
            models = list(models) if spec.strategy in ("fps-model", "bias", "committee") else []
            selection = select(pool, spec.per_round, spec.strategy, labelled=c.picked_so_far(r - 1), models=models,
                               seed=c.config.seed + r, progress=c.progress)
        write_selection(pool, selection, c.picks(r), str(c.cheap_path), overwrite=True)
    return label(c, c.picks(r), c.config.accurate.method, c.labels(r))


def stage_one(c: Campaign, r: int) -> list:
    """The stage-1 model(s) on the accurate labels of rounds 0..r (trained, or loaded once
    trained), their first one's errors written to ``errors.json`` (the learning curve)."""
    from ..evaluation import evaluate
    from ..training.pipeline import Splits, run_stages

    train, val, test = c.accurate_train(r), c.seed_part("val"), c.seed_part("test")
    count, models, checkpoint = c.config.acquisition.models_per_round, [], None
    for k in range(count):
        out = c.round_dir(r) / "model" / (f"member{k}" if count > 1 else "")
        model, paths = run_stages(c.config.stage_one_config(out, seed_offset=k), Splits(train, val),
                                  c.progress, resume=True)
        models.append(model)
        checkpoint = checkpoint or str(paths["standard"])
    if not c.errors_path(r).exists():
        write_json(c.errors_path(r), {"round": r, "accurate": len(train), "checkpoint": checkpoint,
                                      "val": evaluate(models[0], val), "test": evaluate(models[0], test)})
    return models


def acquisition(c: Campaign) -> str:
    rounds = c.config.acquisition.rounds
    for r in range(1, rounds + 1):
        models = stage_one(c, r - 1)  # the learning curve's point r - 1; loaded if trained before
        if not labels_complete(c.picks(r), c.labels(r)):
            pick_and_label(c, r, models)
    stage_one(c, rounds)
    last = json.loads(c.errors_path(rounds).read_text())
    return (f"{rounds} round(s) of {c.config.acquisition.strategy}; stage 1 on {last['accurate']} accurate labels: "
            f"test force MAE {last['test']['force_mae_meV_per_A']:.1f} meV/Å")


def acquisition_done(c: Campaign) -> bool:
    rounds = c.config.acquisition.rounds
    return c.errors_path(rounds).exists() and all(labels_complete(c.picks(r), c.labels(r)) for r in range(rounds + 1))


def final_training(c: Campaign) -> str:
    """The configured method on every accurate training label and the cheap pool (without
    the validation and test configurations; cheap.val of it validate pre-training)."""
    import numpy as np

    from ..evaluation import evaluate
    from ..training.pipeline import Splits, run_stages

    method = c.config.training.get("method", "asteroid")
    holdout = set(c.holdout_pool_indices())
    pool = c.pool()
    cheap_indices = np.random.default_rng(c.config.seed).permutation([i for i in range(len(pool)) if i not in holdout])
    val_count = c.config.cheap.val
    if len(cheap_indices) <= val_count:
        raise ValueError(f"cheap.val: {val_count} cheap validation labels leave no cheap training data "
                         f"({len(cheap_indices)} pool configurations outside the accurate val/test sets)")
    train = c.accurate_train(c.config.acquisition.rounds)
    splits = Splits(train, c.seed_part("val"), pool.subset(cheap_indices[val_count:]), pool.subset(cheap_indices[:val_count]))
    model, paths = run_stages(c.config.train_config(method, c.final_dir), splits, c.progress, resume=True)
    final = paths.get("fine_tuned") or list(paths.values())[-1]
    test = evaluate(model, c.seed_part("test"))
    write_json(c.final_dir / "result.json", {"method": method, "checkpoint": str(final), "accurate": len(train),
                                            "cheap": len(splits.cheap), "test": test,
                                            "val": evaluate(model, splits.val)})
    return f"{method}: test force MAE {test['force_mae_meV_per_A']:.1f} meV/Å -> {final}"


def stability(c: Campaign) -> str:
    """The final model beside the reference method in a small Langevin sweep, run by the
    `asteroid-md stability` command (simulations/ imports ase_asteroid, never the reverse,
    so the campaign runs that program rather than importing it); its own --resume continues
    an interrupted sweep."""
    from ase.io import write

    spec, start = c.config.stability, c.folder / "stability_start.xyz"
    write(start, c.molecule())
    command = [sys.executable, "-m", "simulations.cli", "stability", c.final_result()["checkpoint"],
               "--calculator", spec.reference, "--molecule", str(start), "--out", str(c.stability_dir),
               "--step-sizes-fs", *map(str, spec.step_sizes_fs), "--replicas", str(spec.replicas),
               "--time-ps", str(spec.time_ps), "--temperature-K", str(spec.temperature_K),
               "--seed", str(c.config.seed)]
    command += ["--scheduler", c.scheduler] if c.scheduler else ["--workers", str(c.workers)]
    command += ["--resume"] if (c.stability_dir / "sweep.json").exists() else []
    finished = subprocess.run(command, capture_output=not c.progress, text=True)
    if finished.returncode:
        raise RuntimeError(f"the stability sweep ({' '.join(command[1:4])} ...) failed with exit code "
                           f"{finished.returncode}: {(finished.stderr or '')[-2000:]}")
    return (c.stability_dir / "summary.md").read_text().strip()


def steps(c: Campaign) -> list[tuple[str, Callable[[], bool], Callable[[], str]]]:
    """(name, done, run) of every step, in order."""
    from .report import write_report

    return [("sample", c.pool_path.exists, lambda: sample(c)),
            ("cheap labels", lambda: labels_complete(c.pool_path, c.cheap_path),
             lambda: label(c, c.pool_path, c.config.cheap.method, c.cheap_path)),
            ("seed set", lambda: labels_complete(c.picks(0), c.labels(0)), lambda: pick_and_label(c, 0)),
            ("acquisition", lambda: acquisition_done(c), lambda: acquisition(c)),
            ("final training", (c.final_dir / "result.json").exists, lambda: final_training(c)),
            ("stability", (c.stability_dir / "summary.md").exists, lambda: stability(c)),
            ("report", (c.folder / "report.md").exists, lambda: write_report(c))]


def run_campaign(config: CampaignConfig, *, workers: int = 1, scheduler: str | None = None, progress: bool = True,
                 say: Callable[[str], None] = print) -> Path:
    """Run (or continue) the campaign; `say` gets a line per step. Returns the report's path."""
    c = Campaign(config, workers, scheduler, progress)
    settings = step_settings(config)
    check_settings(c.folder, settings)
    todo = steps(c)
    ran = False
    for number, (name, done, run) in enumerate(todo, 1):
        where = f"[{number}/{len(todo)}] {name}"
        if done() and not (ran and name == "report"):  # the report is rewritten after any step ran
            say(f"{where}: complete, skipped")
            continue
        say(f"{where}: running")
        start = time.perf_counter()
        record_settings(c.folder, name, settings.get(name, {}))
        detail = run()
        ran = True
        say(f"{where}: done in {time.perf_counter() - start:.0f} s: {detail}")
    return c.folder / "report.md"
