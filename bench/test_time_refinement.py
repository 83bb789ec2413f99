"""Out-of-distribution benchmark of test-time refinement (radius refinement, TTT, both).

    OMP_NUM_THREADS=1 python bench/test_time_refinement.py --priors gfn2-xtb lj --write docs/benchmarks.md

Per prior of ``--priors``, train a model (MACE by default, the default recipe) on rMD17
aspirin, benzene and uracil (PBE/def2-SVP; ``--train-per-molecule`` configurations of each,
from their train_01 files) jointly with that prior on an auxiliary head; test on
``--test-per-molecule`` configurations of each training molecule's test_01 file (in
distribution) and of naphthalene, salicylic acid and paracetamol (unseen). Reported: force
MAE without refinement, with radius refinement, with TTT and with both (TTT adapts a copy of
the model to each test set, all its structures at once, with the prior's labels computed
for them; its cost per structure includes them); the gradient diagnostic (cosine between
the prior loss's and the true loss's gradients on the representation: TTT can only help
where it is positive); MD stability on the unseen molecules with and without TTT (batched
Langevin, 500 K); and fine-tuning on a few labels of naphthalene, from the model and from
the model after TTT. Every result is a row of ``--out``/results.jsonl, written when it is
measured; a rerun skips the rows it has, and ``--table-only`` writes the tables from the
rows alone (no model is trained or loaded; a missing row is an error).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from docs_section import report
from overrides import key_values

from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.evaluation import evaluate
from ase_asteroid.losses import energy_force_loss
from ase_asteroid.predictor import Predictor
from ase_asteroid.refinement.prior import prior_labelled
from ase_asteroid.refinement.refine import refine_model
from ase_asteroid.refinement.ttt import TTTSettings, prior_loss, store_prior_reference
from ase_asteroid.training.config import DataSpec, TrainConfig
from ase_asteroid.training.loop import fit
from ase_asteroid.training.pipeline import Splits, run_stages
from ase_asteroid.training.recipes import recipe

TRAIN = ("aspirin", "benzene", "uracil")
UNSEEN = ("naphthalene", "salicylic", "paracetamol")
REFINEMENTS = (None, "radius", "ttt", "radius+ttt")
MODELS = {"mace": {"name": "mace", "channels": 32, "max_L": 1}, "egnn": {"name": "egnn"}}


def load(data_dir: Path, molecule: str, split: str, n: int, offset: int = 0) -> Dataset:
    data = read_dataset(data_dir / f"rmd17_{molecule}_{split}_01.npz")
    return data.subset(np.random.default_rng(0).permutation(len(data))[offset:offset + n])


class Results:
    """The rows of results.jsonl, keyed by (prior, part, name); `row` measures a missing one, or with
    `table_only` refuses to (the model is not loaded then)."""

    def __init__(self, path: Path, table_only: bool = False) -> None:
        self.path, self.table_only = path, table_only
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = self._read()

    def _read(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []

    def get(self, prior: str, part: str, name: str) -> dict | None:
        return next((r for r in self.rows if (r["prior"], r["part"], r["name"]) == (prior, part, name)), None)

    def row(self, prior: str, part: str, name: str, measure) -> dict:
        found = self.get(prior, part, name)
        if found is None:  # another run on the same file may have measured it since this one started
            self.rows = self._read()
            found = self.get(prior, part, name)
        if found is None and self.table_only:
            raise SystemExit(f"--table-only: {self.path} has no row ({prior}, {part}, {name}); "
                             "run without --table-only to measure it")
        if found is None:
            found = {"prior": prior, "part": part, "name": name, **measure()}
            self.rows.append(found)
            with open(self.path, "a") as handle:
                handle.write(json.dumps(found) + "\n")
            print(json.dumps(found)[:300], file=sys.stderr, flush=True)
        return found


def train_model(args, prior: str):
    train = Dataset([c for m in TRAIN for c in load(args.data_dir, m, "train", args.train_per_molecule)])
    val = Dataset([c for m in TRAIN for c in load(args.data_dir, m, "train", 30, offset=args.train_per_molecule)])
    config = TrainConfig(method="standard", accurate=DataSpec("rMD17 " + "+".join(TRAIN)), model=MODELS[args.backend],
                         prior=prior, prior_weight=args.prior_weight, fit={"epochs": args.epochs},
                         out=str(args.out / prior))
    start = time.perf_counter()
    model, _ = run_stages(config, Splits(train, val), progress=args.progress, resume=True)
    if model.extras.prior_train_loss is None:  # a checkpoint trained before training stored TTT's gate reference
        store_prior_reference(model, train)
    log = args.out / prior / "standard_epochs.json"  # its wall time counts the epochs before a resume too
    return model, json.loads(log.read_text())[-1]["elapsed_s"] if log.exists() else time.perf_counter() - start


def refinement_rows(model, prior: str, args, results: Results, ttt: TTTSettings) -> list[dict]:
    """Per test set: every refinement with TTT always adapting (gate 0), and TTT with `ttt`'s gate."""
    rows = []
    for molecule in TRAIN + UNSEEN:
        test = load(args.data_dir, molecule, "test", args.test_per_molecule)

        def measure():
            row = {"unseen": molecule in UNSEEN}
            for refine in REFINEMENTS:
                if refine == "radius+ttt" and row["radius_report"]["cutoff_A"] == model.cutoff:
                    # radius refinement kept the trained cutoff: the same model as TTT alone (TTT is deterministic)
                    row[refine], row[f"{refine}_report"] = row["ttt"], {**row["ttt_report"], "same_as": "ttt"}
                    continue
                result = evaluate(model, test, refine=refine, ttt=replace(ttt, gate=0.0))
                row[refine or "none"] = result["force_mae_meV_per_A"]
                row[f"{refine or 'none'}_report"] = result["refinement"]
            row["gradient_cosine"] = gradient_cosine(model, test)
            return row

        def gated():
            before, reference = prior_loss(model, prior_labelled(test, model.extras.prior)), model.extras.prior_train_loss
            if before > ttt.gate * reference:  # the gate opens: the same adaptation as the "TTT always" column
                always = results.get(prior, "refinement", molecule)
                return {"ttt_gated": always["ttt"], "report": {**always["ttt_report"], "ttt_adapted": True,
                        "ttt_prior_loss_before": before, "ttt_prior_loss_train": reference, "same_as": "ttt"}}
            result = evaluate(model, test, refine="ttt", ttt=ttt)
            return {"ttt_gated": result["force_mae_meV_per_A"], "report": result["refinement"]}
        row = results.row(prior, "refinement", molecule, measure)
        rows.append({**row, **results.row(prior, f"ttt_gate_{ttt.gate:g}", molecule, gated)})
    return rows


def gradient_cosine(model, test: Dataset) -> float:
    """Cosine between the gradients, on the representation's parameters, of the prior head's
    loss (the prior's labels: what TTT descends) and the accurate head's loss (the true labels)."""
    model = copy.deepcopy(model).train()
    params = list(model.representation_parameters())
    accurate = Dataset([c.with_(fidelity=model.fidelities[0]) for c in test])

    def gradient(data) -> torch.Tensor:
        batch = model.batch_of(data)
        grads = torch.autograd.grad(energy_force_loss(model(batch), batch, rho=0.0), params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])

    prior, true = gradient(prior_labelled(test, model.extras.prior)), gradient(accurate)
    return float(torch.nn.functional.cosine_similarity(prior, true, dim=0))


def refinement_table(rows: list[dict], gate: float) -> str:
    lines = [f"TTT always: adapting on every test set (gate 0); TTT gated: the default, adapting only where the prior "
             f"head's loss exceeds {gate:g} × its training loss (the ratio is the last column).", "",
             "| molecule | seen in training | none | radius | TTT always | radius + TTT | TTT gated | TTT always vs none | "
             "TTT gated vs none | RR vs none | cutoff chosen (Å) | TTT s/structure (labels s) | gradient cosine | "
             "prior loss / training |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, g = r["ttt_report"], r["report"]
        lines.append(f"| {r['name']} | {'no' if r['unseen'] else 'yes'} | {r['none']:.1f} | {r['radius']:.1f} | "
                     f"{r['ttt']:.1f} | {r['radius+ttt']:.1f} | {r['ttt_gated']:.1f} | {r['ttt'] / r['none'] - 1:+.1%} | "
                     f"{r['ttt_gated'] / r['none'] - 1:+.1%} | "
                     f"{r['radius'] / r['none'] - 1:+.1%} | {r['radius_report']['cutoff_A']} | "
                     f"{t['seconds_per_structure']:.3f} ({t['ttt_label_seconds'] / t['ttt_structures']:.3f}) | "
                     f"{r['gradient_cosine']:+.2f} | {g['ttt_prior_loss_before'] / g['ttt_prior_loss_train']:.1f} |")
    for seen in (True, False):
        group = [r for r in rows if r["unseen"] != seen]
        change = {k: np.mean([r[k] / r["none"] - 1 for r in group]) for k in ("ttt", "ttt_gated", "radius")}
        lines.append(f"\nMean change of force MAE, {'in distribution' if seen else 'unseen molecules'}: "
                     f"TTT always {change['ttt']:+.1%}, TTT gated {change['ttt_gated']:+.1%}, radius refinement "
                     f"{change['radius']:+.1%} (worst molecule {max(r['radius'] / r['none'] - 1 for r in group):+.1%}).")
    return "\n".join(lines)


def prior_summary(rows: list[dict], training_seconds: float) -> dict:
    """One prior's means over the in-distribution and the unseen test sets."""
    summary = {"training_min": training_seconds / 60}
    for key, seen in (("in", True), ("unseen", False)):
        group = [r for r in rows if r["unseen"] != seen]
        summary[key] = {"always": np.mean([r["ttt"] / r["none"] - 1 for r in group]),
                        "gated": np.mean([r["ttt_gated"] / r["none"] - 1 for r in group]),
                        "cosine": np.mean([r["gradient_cosine"] for r in group]),
                        "ratio": [r["report"]["ttt_prior_loss_before"] / r["report"]["ttt_prior_loss_train"]
                                  for r in group]}
    reports = [r["ttt_report"] for r in rows]
    summary["seconds"] = np.mean([t["seconds_per_structure"] for t in reports])
    summary["label_seconds"] = np.mean([t["ttt_label_seconds"] / t["ttt_structures"] for t in reports])
    return summary


def summary_table(summaries: dict) -> str:
    """The priors side by side: mean change of force MAE by TTT, gradient cosine, gate ratios, cost."""
    lines = ["Priors side by side (means over the three test sets of each group; each prior has its own base model, "
             "details below):", "",
             "| prior | base model's training min | TTT always, in distribution | TTT gated, in distribution | "
             "TTT always, unseen | TTT gated, unseen | gradient cosine in / unseen | prior loss / training, in | "
             "prior loss / training, unseen | TTT s/structure (labels s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for prior, s in summaries.items():
        ratios = {k: ", ".join(f"{x:.1f}" for x in s[k]["ratio"]) for k in ("in", "unseen")}
        lines.append(f"| {prior} | {s['training_min']:.0f} | {s['in']['always']:+.1%} | {s['in']['gated']:+.1%} | "
                     f"{s['unseen']['always']:+.1%} | {s['unseen']['gated']:+.1%} | {s['in']['cosine']:+.2f} / "
                     f"{s['unseen']['cosine']:+.2f} | {ratios['in']} | {ratios['unseen']} | {s['seconds']:.2f} "
                     f"({s['label_seconds']:.4f}) |")
    return "\n".join(lines)


def ttt_grid(model, prior: str, args, results: Results) -> str:
    """TTT settings against force MAE on every test set (the main table uses --ttt-steps/--ttt-lr)."""
    tests = {m: load(args.data_dir, m, "test", args.test_per_molecule) for m in TRAIN + UNSEEN}
    plain = {m: results.get(prior, "refinement", m)["none"] for m in tests}
    lines = ["| TTT steps | lr | " + " | ".join(tests) + " |", "|---|---|" + "---|" * len(tests)]
    for steps in args.grid_steps:
        for lr in args.grid_lr:
            settings = TTTSettings(steps, lr)
            row = results.row(prior, "ttt_grid", f"{steps}_{lr:g}", lambda: {
                m: evaluate(model, t, refine="ttt", ttt=settings)["force_mae_meV_per_A"] for m, t in tests.items()})
            lines.append(f"| {steps} | {lr:g} | " + " | ".join(f"{row[m] / plain[m] - 1:+.1%}" for m in tests) + " |")
    return "\n".join(lines)


def stability(model, prior: str, args, results: Results, ttt: TTTSettings) -> str:
    from simulations.batched import BatchedLangevin, RunSpec
    from simulations.divergence import DivergenceCriteria
    from simulations.langevin import LangevinParameters

    lines = ["| molecule | refinement | stable runs | mean time to divergence ps | wall s |", "|---|---|---|---|---|"]
    for molecule in args.md_molecules:
        start = load(args.data_dir, molecule, "test", 1)[0].to_atoms()
        for refine in (None, "ttt"):
            def measure():
                began = time.perf_counter()
                refined, refinement = refine_model(model, [start], refine, ttt)
                params = LangevinParameters(args.md_timestep_fs, 500.0)
                specs = [RunSpec(params, int(args.md_time_ps * 1000 / args.md_timestep_fs), [0, r])
                         for r in range(args.md_replicas)]
                runs = BatchedLangevin(start, Predictor(refined).force_function(start), specs,
                                       DivergenceCriteria()).run(progress=args.progress)
                return {"stable": sum(r.stable for r in runs), "replicas": len(runs),
                        "ttt_adapted": refinement.get("ttt_adapted"),
                        "divergence_ps": [r.time_ps for r in runs if not r.stable],
                        "seconds": time.perf_counter() - began}
            settings = f"{args.md_replicas}x{args.md_time_ps:g}ps_{args.md_timestep_fs:g}fs"
            r = results.row(prior, "stability", f"{molecule}_{refine or 'none'}_{settings}", measure)
            mean = f"{np.mean(r['divergence_ps']):.3f}" if r["divergence_ps"] else "- (none diverged)"
            lines.append(f"| {molecule} | {refine or 'none'} | {r['stable']}/{r['replicas']} | {mean} | "
                         f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def fine_tuning(model, prior: str, args, results: Results, ttt: TTTSettings) -> str:
    test = load(args.data_dir, "naphthalene", "test", args.test_per_molecule)
    pool = load(args.data_dir, "naphthalene", "train", 200)
    lines = ["| labels of naphthalene | fine-tuned from | force MAE meV/Å |", "|---|---|---|"]
    errors = {}
    for n in args.finetune_labels:
        for refine in (None, "ttt"):
            def measure():
                labels = pool.subset(range(n))
                start, _ = refine_model(model, list(test) + list(labels), refine, ttt)
                start = copy.deepcopy(start)
                start.align_energy_references(labels)  # the training molecules leave naphthalene's E0 829 eV off
                config = recipe(args.backend, "finetune", {"epochs": args.finetune_epochs, **args.finetune_fit})
                config = replace(config, batch_size=min(config.batch_size, n))
                tuned, _ = fit(start, labels, pool.subset(range(150, 200)), config, progress=False)
                return {"force_mae_meV_per_A": evaluate(tuned, test)["force_mae_meV_per_A"]}
            changed = "".join(f"_{k}={v}" for k, v in sorted(args.finetune_fit.items()))  # the recipe's own: no suffix
            r = results.row(prior, "fine_tuning", f"{n}_{refine or 'none'}_e0aligned{changed}", measure)
            errors[n, refine] = r["force_mae_meV_per_A"]
            lines.append(f"| {n} | {'model after TTT' if refine else 'model'} | {r['force_mae_meV_per_A']:.1f} |")
    return "\n".join(lines) + "\n\n" + labels_needed(errors, args.finetune_labels)


def labels_needed(errors: dict, counts: list[int]) -> str:
    """Per label count: the fewest labels fine-tuning from the plain model needs to be as
    accurate as fine-tuning from the model after TTT with that many."""
    parts = []
    for n in counts:
        target = errors[n, "ttt"]
        enough = [m for m in counts if errors[m, None] <= target]
        if not enough:
            needed = f"more than {max(counts)}"
        else:  # between the largest count measured short of it and the fewest that match
            fewer = [m for m in counts if m < min(enough)]
            needed = f"more than {max(fewer)}, at most {min(enough)}" if fewer else f"at most {min(enough)}"
        parts.append(f"{n} labels after TTT ({target:.1f} meV/Å): {needed} without")
    return "Labels of naphthalene needed without TTT to match fine-tuning after TTT: " + "; ".join(parts) + "."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/md17")
    parser.add_argument("--out", type=Path, default=Path("bench_results/ttt"))
    parser.add_argument("--backend", choices=list(MODELS), default="mace")
    parser.add_argument("--priors", nargs="+", default=["gfn2-xtb", "lj"],
                        help="one model per prior (gfn2-xtb, gfn1-xtb, gaff2, lj, lj-uff)")
    parser.add_argument("--train-per-molecule", type=int, default=400)
    parser.add_argument("--test-per-molecule", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--prior-weight", type=float, default=0.1)
    parser.add_argument("--ttt-steps", type=int, default=50)
    parser.add_argument("--ttt-lr", type=float, default=1e-4)
    parser.add_argument("--ttt-gate", type=float, default=TTTSettings.gate,
                        help="the gated TTT column's gate (the other TTT columns adapt always)")
    parser.add_argument("--grid-steps", type=int, nargs="*", default=[20, 100])
    parser.add_argument("--grid-lr", type=float, nargs="*", default=[1e-4, 1e-3])
    parser.add_argument("--md-molecules", nargs="+", default=list(UNSEEN), choices=list(UNSEEN))
    parser.add_argument("--md-replicas", type=int, default=20)
    parser.add_argument("--md-time-ps", type=float, default=1.0)
    parser.add_argument("--md-timestep-fs", type=float, default=0.5)
    parser.add_argument("--finetune-labels", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--finetune-fit", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override fine-tuning recipe keys, e.g. lr=0.001 (rows are named by them)")
    parser.add_argument("--parts", nargs="+", default=["refinement", "stability", "fine_tuning", "ttt_grid"],
                        choices=["refinement", "stability", "fine_tuning", "ttt_grid"],
                        help="refinement is measured for every prior, the other parts for the first of --priors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--table-only", action="store_true",
                        help="write the tables from --out's results file alone: trains and measures nothing")
    args = parser.parse_args(argv)
    args.finetune_fit = key_values(args.finetune_fit)
    if max(args.finetune_labels) > 150:
        parser.error("--finetune-labels: at most 150 (naphthalene's pool is 200 configurations, 50 of them validation)")
    torch.set_num_threads(args.threads)
    results, ttt, sections = Results(args.out / "results.jsonl", args.table_only), TTTSettings(args.ttt_steps, args.ttt_lr, gate=args.ttt_gate), []
    summaries = {}
    for prior in args.priors:
        model, seconds = (None, None) if args.table_only else train_model(args, prior)
        trained = results.row(prior, "training", "model", lambda: {"seconds": seconds})
        rows = refinement_rows(model, prior, args, results, ttt)
        summaries[prior] = prior_summary(rows, trained["seconds"])
        sections += [f"### Prior {prior}",
                     f"{args.backend.upper()} (default recipe, float32) trained jointly with a {prior} prior head "
                     f"(weight {args.prior_weight}) on {args.train_per_molecule} rMD17 configurations each of "
                     f"{', '.join(TRAIN)}, {args.epochs} epochs ({trained['seconds'] / 60:.0f} min); test: "
                     f"{args.test_per_molecule} configurations per molecule; TTT: {args.ttt_steps} Adam steps, lr "
                     f"{args.ttt_lr}, on each test set. Force MAE, meV/Å:",
                     refinement_table(rows, ttt.gate)]
        if prior != args.priors[0]:  # the other parts: with the first prior only
            continue
        if "stability" in args.parts:
            sections += [f"MD on {', '.join(args.md_molecules)}: {args.md_replicas} replicas, {args.md_time_ps} ps at "
                         f"{args.md_timestep_fs} fs, 500 K, default divergence criteria; TTT on the starting "
                         "structure:", stability(model, prior, args, results, ttt)]
        if "fine_tuning" in args.parts:
            changed = "".join(f", {k} = {v}" for k, v in args.finetune_fit.items())
            sections += [f"Fine-tuning on a few labelled naphthalene configurations ({args.finetune_epochs} epochs, "
                         f"the fine-tuning recipe{changed}, reference energies first aligned to the labels), from the model and from the model after TTT on the test and "
                         "fine-tuning structures:", fine_tuning(model, prior, args, results, ttt)]
        if "ttt_grid" in args.parts:
            sections += ["Change of force MAE with TTT, other settings (Adam), per test set:",
                         ttt_grid(model, prior, args, results)]
    if len(summaries) > 1:
        sections.insert(0, summary_table(summaries))
    command = "python bench/test_time_refinement.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report("\n\n".join(sections), "test-time-refinement", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
