"""Out-of-distribution benchmark of test-time refinement (radius refinement, TTT, both).

    python bench/test_time_refinement.py --write docs/benchmarks.md

Train on rMD17 aspirin, benzene and uracil (PBE/def2-SVP; `--train-per-molecule`
configurations of each, from their train_01 files), jointly with a Lennard-Jones prior head
fitted to the same data; test on 100 configurations of each training molecule's test_01
file (in distribution) and of naphthalene, salicylic acid and paracetamol (unseen). Force
MAE without refinement, with radius refinement, with TTT and with both; TTT adapts a copy of
the model to each test set (all its structures at once). Then: MD stability on the unseen
molecules with and without TTT (a short batched Langevin sweep), and fine-tuning on a few
labels of naphthalene, starting with and without TTT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from docs_section import report

from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.evaluation import evaluate
from ase_asteroid.refinement.refine import refine_model
from ase_asteroid.refinement.ttt import TTTSettings
from ase_asteroid.training.config import DataSpec, TrainConfig
from ase_asteroid.training.loop import fit
from ase_asteroid.training.recipes import recipe
from ase_asteroid.training.pipeline import Splits, run_stages

TRAIN = ("aspirin", "benzene", "uracil")
UNSEEN = ("naphthalene", "salicylic", "paracetamol")
REFINEMENTS = (None, "radius", "ttt", "radius+ttt")


def load(data_dir: Path, molecule: str, split: str, n: int, offset: int = 0) -> Dataset:
    data = read_dataset(data_dir / f"rmd17_{molecule}_{split}_01.npz")
    return data.subset(np.random.default_rng(0).permutation(len(data))[offset:offset + n])


def train_model(args, out: Path):
    train = Dataset([c for m in TRAIN for c in load(args.data_dir, m, "train", args.train_per_molecule)])
    val = Dataset([c for m in TRAIN for c in load(args.data_dir, m, "train", 30, offset=args.train_per_molecule)])
    config = TrainConfig(method="standard", accurate=DataSpec("rMD17 " + "+".join(TRAIN)), model={"name": "egnn"},
                         prior="lj", prior_weight=args.prior_weight,
                         fit={"epochs": args.epochs}, out=str(out))
    start = time.perf_counter()
    model, paths = run_stages(config, Splits(train, val), progress=args.progress, resume=True)
    return model, time.perf_counter() - start


def refinement_table(model, args, ttt: TTTSettings) -> tuple[list[dict], str]:
    rows = []
    for molecule in TRAIN + UNSEEN:
        test = load(args.data_dir, molecule, "test", args.test_per_molecule)
        row = {"molecule": molecule, "unseen": molecule in UNSEEN}
        for refine in REFINEMENTS:
            result = evaluate(model, test, refine=refine, ttt=ttt)
            row[refine or "none"] = result["force_mae_meV_per_A"]
            row[f"{refine or 'none'}_report"] = result["refinement"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("report")}), file=sys.stderr, flush=True)
    lines = ["| molecule | seen in training | none | radius | TTT | radius + TTT | TTT vs none | cutoff chosen (Å) | "
             "TTT s/structure |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['molecule']} | {'no' if r['unseen'] else 'yes'} | {r['none']:.1f} | {r['radius']:.1f} | "
                     f"{r['ttt']:.1f} | {r['radius+ttt']:.1f} | {r['ttt'] / r['none'] - 1:+.1%} | "
                     f"{r['radius_report']['cutoff_A']} | {r['ttt_report']['seconds_per_structure']:.3f} |")
    for seen in (True, False):
        group = [r for r in rows if r["unseen"] != seen]
        change = np.mean([r["ttt"] / r["none"] - 1 for r in group])
        lines.append(f"\nMean change of force MAE with TTT, {'in distribution' if seen else 'unseen molecules'}: "
                     f"{change:+.1%}.")
    return rows, "\n".join(lines)


def ttt_grid(model, args) -> str:
    """TTT settings against force MAE on every test set (the main table uses --ttt-steps/--ttt-lr)."""
    tests = {m: load(args.data_dir, m, "test", args.test_per_molecule) for m in TRAIN + UNSEEN}
    plain = {m: evaluate(model, t)["force_mae_meV_per_A"] for m, t in tests.items()}
    lines = ["| TTT steps | lr | " + " | ".join(tests) + " |", "|---|---|" + "---|" * len(tests)]
    for steps in args.grid_steps:
        for lr in args.grid_lr:
            settings = TTTSettings(steps, lr)
            changes = [evaluate(model, t, refine="ttt", ttt=settings)["force_mae_meV_per_A"] / plain[m] - 1
                       for m, t in tests.items()]
            lines.append(f"| {steps} | {lr:g} | " + " | ".join(f"{c:+.1%}" for c in changes) + " |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def stability(model, args, ttt: TTTSettings) -> str:
    from simulations.batched import BatchedLangevin, RunSpec, model_forces
    from simulations.divergence import DivergenceCriteria
    from simulations.langevin import LangevinParameters

    lines = ["| molecule | refinement | stable runs | mean time to divergence ps |", "|---|---|---|---|"]
    for molecule in UNSEEN:
        start = load(args.data_dir, molecule, "test", 1)[0].to_atoms()
        for refine in (None, "ttt"):
            refined, _ = refine_model(model, [start], refine, ttt)
            params = LangevinParameters(args.md_timestep_fs, 500.0)
            specs = [RunSpec(params, int(args.md_time_ps * 1000 / args.md_timestep_fs), [0, r])
                     for r in range(args.md_replicas)]
            results = BatchedLangevin(start, model_forces(refined, start.numbers), specs,
                                      DivergenceCriteria()).run(progress=False)
            diverged = [r.time_ps for r in results if not r.stable]
            lines.append(f"| {molecule} | {refine or 'none'} | {len(results) - len(diverged)}/{len(results)} | "
                         f"{np.mean(diverged) if diverged else float('nan'):.3f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def fine_tuning(model, args, ttt: TTTSettings) -> str:
    test = load(args.data_dir, "naphthalene", "test", args.test_per_molecule)
    pool = load(args.data_dir, "naphthalene", "train", 200)
    lines = ["| labels of naphthalene | fine-tuned from | force MAE meV/Å |", "|---|---|---|"]
    for n in args.finetune_labels:
        for refine in (None, "ttt"):
            start, _ = refine_model(model, list(test) + list(pool.subset(range(n))), refine, ttt)
            tuned, _ = fit(_copy(start), pool.subset(range(n)), pool.subset(range(150, 200)),
                           recipe("egnn", "finetune", {"epochs": args.finetune_epochs, "batch_size": min(10, n)}), progress=False)
            lines.append(f"| {n} | {'model after TTT' if refine else 'model'} | "
                         f"{evaluate(tuned, test)['force_mae_meV_per_A']:.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def _copy(model):
    import copy
    return copy.deepcopy(model)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/md17")
    parser.add_argument("--out", type=Path, default=Path("bench_results/ttt"))
    parser.add_argument("--train-per-molecule", type=int, default=200)
    parser.add_argument("--test-per-molecule", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--prior-weight", type=float, default=0.1)
    parser.add_argument("--ttt-steps", type=int, default=50)
    parser.add_argument("--ttt-lr", type=float, default=1e-4)
    parser.add_argument("--grid-steps", type=int, nargs="*", default=[20, 100])
    parser.add_argument("--grid-lr", type=float, nargs="*", default=[1e-4, 1e-3])
    parser.add_argument("--md-replicas", type=int, default=5)
    parser.add_argument("--md-time-ps", type=float, default=0.2)
    parser.add_argument("--md-timestep-fs", type=float, default=0.5)
    parser.add_argument("--finetune-labels", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, seconds = train_model(args, args.out)
    ttt = TTTSettings(args.ttt_steps, args.ttt_lr)
    _, table = refinement_table(model, args, ttt)
    text = "\n\n".join([
        f"EGNN (default size) trained jointly with a fitted LJ prior head (weight {args.prior_weight}) on "
        f"{args.train_per_molecule} rMD17 configurations each of {', '.join(TRAIN)}, {args.epochs} epochs "
        f"({seconds / 60:.0f} min); test: {args.test_per_molecule} configurations per molecule; TTT: "
        f"{args.ttt_steps} Adam steps, lr {args.ttt_lr}, on each test set. Force MAE, meV/Å:",
        table,
        "Change of force MAE with TTT, other settings (Adam), per test set:",
        ttt_grid(model, args),
        f"MD on the unseen molecules: {args.md_replicas} replicas, {args.md_time_ps} ps at "
        f"{args.md_timestep_fs} fs, 500 K, default divergence criteria; TTT on the starting structure:",
        stability(model, args, ttt),
        f"Fine-tuning on a few labelled naphthalene configurations ({args.finetune_epochs} epochs), from the "
        "model and from the model after TTT on the test and fine-tuning structures:",
        fine_tuning(model, args, ttt)])
    command = "python bench/test_time_refinement.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(text, "test-time-refinement", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
