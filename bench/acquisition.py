"""Acquisition benchmark on real labels (issue 18, part 2): which strategy reaches random
selection's error with the fewest accurate labels, on MD17@CCSD(T).

    OMP_NUM_THREADS=1 python bench/acquisition.py --results bench_results/acquisition.jsonl \
        --write docs/acquisition.md

Protocol (../shared/DESIGN.md's MD17 protocol, ethanol and malonaldehyde CCSD(T); these
files have 1000 configurations and no official test set): perm =
default_rng(0).permutation(1000); pool = perm[:500], test = perm[500:] (500 configurations).
The last 50 of the pool, perm[450:500], are a fixed validation set for model selection (the
training loop's best epoch and learning-rate schedule): they are never acquired and never
trained on, so 450 configurations can be acquired. Each run starts from ``--rounds[0]`` (50)
labels drawn at random from those 450 (``acquisition.select(..., "random", seed=SEED)``; the
same 50 for every strategy with seed 0) and acquires in rounds up to the last of
``--rounds`` (default 50 100 150 200 250). Each round trains MACE ({"name": "mace",
"channels": 32, "max_L": 1}, float32) from scratch on the labels so far with the default
recipe (``TrainConfig(method="standard")``, ``run_stages``; only the epochs can be set, with
``--epochs``; default the recipe's 100), seed = the run's seed, and measures the force MAE
on the 500 test configurations. The picks for the next round come from
``ase_asteroid.acquisition.select`` on the 450 acquirable configurations, the labelled ones
excluded:

- ``random``: seeds ``--seeds`` (default 0 1 2; the start set differs per seed too);
- ``fps-geometry``: farthest-point sampling on sorted inverse distances, from the labelled set;
- ``fps-model``: farthest-point sampling on the current round's model's mean node features;
- ``bias``: the largest B(x) = mean |F_model − F_xTB| of the current round's model (ASTEROID's
  stage 1 on the labels so far) against GFN2-xTB labels of the 450 (the package's labeller,
  cached in ``RESULTS_FOLDER/xtb_MOLECULE_450.extxyz`` and reused by every later run);
- ``committee``: the largest force disagreement of ``--committee`` (default 3) models: the
  current round's model and ``--committee − 1`` more trained the same way on the same labels
  with seeds SEED + 100·k (their training time is counted in the round's time; the row's
  error is that of the first model, as for the other strategies).

Deterministic strategies run with seed 0 and share round 0 (the same 50 labels, the same
model: trained once, in ``RESULTS_FOLDER/runs/``) with random seed 0. One row per
(molecule, strategy, seed, labels) is appended to ``--results`` as soon as it is done, with
the labelled CCSD file indices, so an interrupted run keeps its rows and a rerun continues
each strategy from its last finished round (its model is loaded from ``runs/``, not
retrained). The report: force MAE (kcal/mol/Å and meV/Å; mean [min–max] over seeds)
against the number of accurate labels, wall time per row (training, incl. committee members,
plus selection), the labels each strategy needs to reach random selection's mean error at
the largest count (log-log interpolation between rounds; "not reached" if it is not), and
a log-log learning-curve figure (``--figure``).

Cost: training dominates; every round runs the recipe's full 100 epochs (plateau schedule,
no early stopping). Measured in the benchmark's runs (docs/acquisition.md, one thread per
run, two runs on this 2-core machine): about 0.035 s per training label per epoch at 250
labels; a strategy's five rounds (50 + 100 + 150 + 200 + 250 = 750 labels) take 31-50 min,
a committee of 3 about 2.5 times that (its extra members train on the same labels, except
in the last round, which picks nothing). Per molecule: random 3 × 750, fps-geometry,
fps-model and bias 700 each (round 0 shared), committee 700 + 2 × 500 = 5700 label-epochs per
epoch, ≈ 5.5 CPU-hours at the defaults. The
two molecules can run as two processes (``--molecules ethanol`` and ``--molecules
malonaldehyde``, the same ``--results`` file: rows are single appended lines); do not split
one molecule's strategies across processes before round 0 has finished (they share round
0's model folder). Selection, the test evaluations and the GFN2-xTB labels of 450
configurations take minutes. ``--epochs N`` scales the cost by N/100 (and changes the
recipe, so say so with the numbers).
``--pool``, ``--val`` and ``--test-size`` shrink the protocol for smoke tests only.
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

from ase_asteroid.acquisition import committee_scores, select
from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.evaluation import evaluate
from ase_asteroid.training.config import DataSpec, TrainConfig
from ase_asteroid.training.pipeline import Splits, run_stages
from ase_asteroid.training.stages import force_bias

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17"
ACCURATE = {"ethanol": "ethanol_ccsd_t-train.npz", "malonaldehyde": "malonaldehyde_ccsd_t-train.npz"}
MODELS = {"mace": {"name": "mace", "channels": 32, "max_L": 1}, "egnn": {"name": "egnn"}}
STRATEGIES = ("random", "fps-geometry", "fps-model", "bias", "committee")
CHEAP_METHOD = "gfn2-xtb"


def protocol_data(data_dir: Path, molecule: str, pool: int = 500, val: int = 50, test_size: int = 500) -> dict:
    """The CCSD(T) file split by the protocol: `acquirable` (perm[:pool - val]), `val`
    (perm[pool - val:pool]), `test` (perm[500:500 + test_size]); `acquirable_index` maps
    positions in `acquirable` to file indices."""
    data = read_dataset(data_dir / ACCURATE[molecule])
    perm = np.random.default_rng(0).permutation(len(data))
    if not 0 < val < pool <= 500:
        raise ValueError(f"need 0 < val < pool <= 500, got pool {pool}, val {val}")
    return {"name": ACCURATE[molecule], "file": data, "acquirable_index": perm[:pool - val], "acquirable": data.subset(perm[:pool - val]),
            "val": data.subset(perm[pool - val:pool]), "test": data.subset(perm[500:500 + test_size])}


def cheap_pool(data: dict, molecule: str, folder: Path, progress: bool = False) -> Dataset:
    """GFN2-xTB labels of the acquirable configurations, in their order, computed once into
    ``folder/xtb_MOLECULE_N.extxyz`` (N of them; the label runner continues an interrupted file)."""
    from ase_asteroid.labels import get_labeler
    from ase_asteroid.labels.runner import label_configurations

    out = folder / f"xtb_{molecule}_{len(data['acquirable'])}.extxyz"
    frames = [c.to_atoms() for c in data["acquirable"]]
    result = label_configurations(frames, get_labeler(CHEAP_METHOD), out, mode="append", progress=progress)
    if result.failed:
        raise RuntimeError(f"{CHEAP_METHOD} failed on {len(result.failed)} configurations: {result.summary()}")
    cheap = read_dataset(out)
    if len(cheap) != len(frames):
        raise RuntimeError(f"{out}: {len(cheap)} labelled configurations, expected {len(frames)}")
    return cheap


def train(labelled: list[int], data: dict, out: Path, seed: int, args):
    """MACE (or ``--model``) from scratch on the CCSD(T) labels of the file indices `labelled`
    with the default recipe; loaded instead if `out` holds the finished model."""
    fit = {"epochs": args.epochs} if args.epochs else {}
    config = TrainConfig(method="standard", accurate=DataSpec(data["name"]), model=MODELS[args.model],
                         dtype="float32", fit=fit, out=str(out), seed=seed)
    torch.manual_seed(seed)
    model, _ = run_stages(config, Splits(data["file"].subset(labelled), data["val"]), progress=args.progress,
                          resume=True)
    return model, config.fit_config("scratch").epochs


def run_folder(args, molecule: str, strategy: str, seed: int, n: int, first: bool) -> Path:
    """Round 0 is the same for every strategy of a seed: one folder for it."""
    name = f"start_seed{seed}" if first else f"{strategy}_seed{seed}"
    return args.results.parent / "runs" / f"{molecule}_{args.model}_{name}_n{n}"


def round_models(args, chain: dict, labelled: list[int], n: int, first: bool) -> tuple[list, int]:
    """The round's model(s): one, or the committee (the first model and k = 1.. more with seed + 100 k).
    The last round's committee is its first model alone: the others would only pick a next round."""
    folder = run_folder(args, chain["molecule"], chain["strategy"], chain["seed"], n, first)
    count = args.committee if chain["strategy"] == "committee" and n != args.rounds[-1] else 1
    models = []
    for k in range(count):
        model, epochs = train(labelled, chain["data"], folder / f"member{k}" if k else folder,
                              chain["seed"] + 100 * k, args)
        models.append(model)
    return models, epochs


def picks(chain: dict, labelled: list[int], n_new: int, models: list, round_: int, args) -> list[int]:
    """File indices of the `n_new` configurations `chain`'s strategy acquires next."""
    data, strategy = chain["data"], chain["strategy"]
    position = {int(f): p for p, f in enumerate(data["acquirable_index"])}
    pool = chain["cheap"] if strategy == "bias" else data["acquirable"]
    used = {"fps-model": models[:1], "bias": models[:1], "committee": models}.get(strategy, [])
    selection = select(pool, n_new, strategy, labelled=pool.subset([position[i] for i in labelled]),
                       models=used, seed=chain["seed"] + 1000 * round_, progress=args.progress)
    return [int(data["acquirable_index"][p]) for p in selection.indices]


def start_set(data: dict, n: int, seed: int) -> list[int]:
    """The first `n` labels: drawn at random from the acquirable configurations."""
    return [int(data["acquirable_index"][p]) for p in select(data["acquirable"], n, "random", seed=seed).indices]


def run_chain(chain: dict, finished: dict, args, write) -> None:
    """One strategy and seed on one molecule, round by round; finished rounds are skipped
    (their models loaded from runs/ only when the next round needs them)."""
    labelled, models = [], None
    for r, n in enumerate(args.rounds):
        row = finished.get((chain["molecule"], chain["strategy"], chain["seed"], n))
        if row is not None:
            labelled, models = row["labelled"], None
            continue
        if r > 0 and models is None and chain["strategy"] not in ("random", "fps-geometry"):
            # the previous round finished in an earlier invocation: load its model(s), not timed
            models, _ = round_models(args, chain, labelled, args.rounds[r - 1], r - 1 == 0)
        start = time.perf_counter()
        if r == 0:
            labelled = start_set(chain["data"], n, chain["seed"])
        else:
            labelled = labelled + picks(chain, labelled, n - len(labelled), models or [], r, args)
        models, epochs = round_models(args, chain, labelled, n, r == 0)
        write(result_row(chain, labelled, models[0], epochs, time.perf_counter() - start, args))


def result_row(chain: dict, labelled: list[int], model, epochs: int, seconds: float, args) -> dict:
    errors = evaluate(model, chain["data"]["test"])
    return {"molecule": chain["molecule"], "strategy": chain["strategy"], "seed": chain["seed"],
            "accurate": len(labelled), "backend": args.model, "epochs": epochs,
            "committee": args.committee if chain["strategy"] == "committee" else 1,
            "seconds": round(seconds, 1), **{k: errors[k] for k in (
                "force_mae_kcal_per_mol_A", "force_mae_meV_per_A", "energy_mae_meV", "configurations")},
            "labelled": labelled}


def curves(rows: list[dict]) -> dict:
    """{(molecule, strategy): [(labels, mean MAE kcal/mol/Å, min, max, mean meV/Å, seeds, mean seconds)]}."""
    groups: dict[tuple, dict[int, list[dict]]] = {}
    for r in rows:
        groups.setdefault((r["molecule"], r["strategy"]), {}).setdefault(r["accurate"], []).append(r)
    result = {}
    for key_, by_n in groups.items():
        result[key_] = []
        for n in sorted(by_n):
            kcal = [r["force_mae_kcal_per_mol_A"] for r in by_n[n]]
            result[key_].append((n, float(np.mean(kcal)), min(kcal), max(kcal),
                                 float(np.mean([r["force_mae_meV_per_A"] for r in by_n[n]])), len(kcal),
                                 float(np.mean([r["seconds"] for r in by_n[n]]))))
    return result


def labels_to_reach(curve: list[tuple], target: float) -> float | None:
    """Labels at which the learning curve [(n, error, ...)] first reaches `target`:
    log-log interpolation between the rounds around it; the first count if the first round
    already does; None if no round does."""
    for i, (n, error, *_) in enumerate(curve):
        if error <= target:
            if i == 0:
                return float(n)
            n0, e0 = curve[i - 1][:2]
            t = (np.log(target) - np.log(e0)) / (np.log(error) - np.log(e0))
            return float(np.exp(np.log(n0) + t * (np.log(n) - np.log(n0))))
    return None


def table(rows: list[dict], args) -> str:
    lines = [f"Force MAE on the {args.test_size} test configurations (perm[500:]) against the number of accurate "
             f"CCSD(T) labels; {args.model} {MODELS[args.model]}, float32, the default recipe from scratch each "
             f"round ({rows[0]['epochs'] if rows else '-'} epochs), validation perm[{args.pool - args.val}:{args.pool}],"
             f" committee of {args.committee} models. With several seeds: mean "
             "[min–max] over them. Time: training (committee: all its models, but one in the last round, which "
             "picks nothing) plus selection, one thread; "
             "round 0 is trained once per seed and shared, so the other strategies' first row times only its "
             "loading.", "",
             "| molecule | strategy | labels | seeds | force MAE kcal/mol/Å | meV/Å | time min |",
             "|---|---|---|---|---|---|---|"]
    for (molecule, strategy), curve in sorted(curves(rows).items()):
        for n, mean, low, high, mev, seeds, seconds in curve:
            spread = f" [{low:.3f}–{high:.3f}]" if seeds > 1 else ""
            lines.append(f"| {molecule} | {strategy} | {n} | {seeds} | {mean:.3f}{spread} | {mev:.1f} | "
                         f"{seconds / 60:.1f} |")
    return "\n".join(lines + ["", *reach_table(rows)])


def reach_table(rows: list[dict]) -> list[str]:
    """Labels each strategy needs to reach random selection's mean error at its largest count."""
    found = curves(rows)
    lines = ["Labels needed to reach random selection's mean force MAE at its largest label count "
             "(log-log interpolation between rounds):", "",
             "| molecule | target (random at N) kcal/mol/Å | strategy | labels needed | fewer than random |",
             "|---|---|---|---|---|"]
    for molecule in sorted({m for m, _ in found}):
        baseline = found.get((molecule, "random"))
        if not baseline:
            lines.append(f"| {molecule} | (no random rows) | | | |")
            continue
        n_max, target = baseline[-1][:2]
        for (m, strategy), curve in sorted(found.items()):
            if m != molecule:
                continue
            needed = labels_to_reach(curve, target)
            last = curve[-1][0]
            if needed is not None:
                text = f"{needed:.0f}"
            elif last < n_max:  # an interrupted chain has not failed: it has not been run that far
                text = f"not reached (run to {last} of {n_max})"
            else:
                text = "not reached"
            ratio = "-" if needed is None else f"{n_max / needed:.2f}×"
            lines.append(f"| {molecule} | {target:.3f} (N = {n_max}) | {strategy} | {text} | {ratio} |")
    return lines + ["", "Issue 18's target: a strategy reaches random selection's 250-label error with ≤ 170 labels "
                        "(≥ 1.5× fewer) on ethanol."]


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equally long samples (ties broken by order)."""
    ranks = [np.argsort(np.argsort(np.asarray(x))) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def score_diagnostic(rows: list[dict], data: dict, cheap: Dataset, args) -> list[str]:
    """What the scores rank: for each model (committee) of the bias and committee strategies
    (seed 0) that picked a next round, over the acquirable configurations it had not been
    trained on, the strategy's score (bias: B(x) = mean |F_model − F_cheap|; committee: the
    models' force disagreement) beside the model's own error mean |F_model − F_CCSD(T)| and
    the cheap labels' error mean |F_cheap − F_CCSD(T)| (all eV/Å): their medians and
    Spearman's ρ between the score and each."""
    accurate = data["acquirable"]
    cheap_error = np.array([np.abs(c.forces - a.forces).mean() for c, a in zip(cheap, accurate)])
    lines = ["What the scores rank (seed 0): over the acquirable configurations the round's model was not trained "
             "on, the strategy's score (bias: B(x) = mean |F_model − F_xTB|; committee: the RMS force disagreement "
             "of its models), the model's own error mean |F_model − F_CCSD(T)| and GFN2-xTB's error "
             "mean |F_xTB − F_CCSD(T)|, eV/Å: medians and Spearman's ρ of the score with each.", "",
             "| molecule | strategy | model trained on | unlabelled | score | model error | xTB error | "
             "ρ(score, model error) | ρ(score, xTB error) |", "|---|---|---|---|---|---|---|---|---|"]
    position = {int(f): p for p, f in enumerate(data["acquirable_index"])}
    for strategy in ("bias", "committee"):
        chain = {"molecule": rows[0]["molecule"], "strategy": strategy, "seed": 0, "data": data}
        chain_rows = sorted((r for r in rows if r["strategy"] == strategy and r["seed"] == 0), key=lambda r: r["accurate"])
        for row in chain_rows[:-1]:  # the last round's model picked nothing
            models, _ = round_models(args, chain, row["labelled"], row["accurate"], row["accurate"] == args.rounds[0])
            rest = sorted(set(range(len(accurate))) - {position[i] for i in row["labelled"]})
            model_error = force_bias(models[0], accurate.subset(rest))
            score = (force_bias(models[0], cheap.subset(rest)) if strategy == "bias"
                     else committee_scores(models, accurate.subset(rest)))
            lines.append(f"| {chain['molecule']} | {strategy} | {row['accurate']} | {len(rest)} | {np.median(score):.3f} | "
                         f"{np.median(model_error):.3f} | {np.median(cheap_error[rest]):.3f} | "
                         f"{spearman(score, model_error):.2f} | {spearman(score, cheap_error[rest]):.2f} |")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    """Log-log learning curves, one panel per molecule, a strategy the same colour in each;
    random's min–max band shaded."""
    from ase_asteroid.figures import pyplot, save_figure

    plt, found = pyplot(), curves(rows)
    molecules = sorted({m for m, _ in found})
    fig, axes = plt.subplots(1, len(molecules), figsize=(5 * len(molecules), 3.8), squeeze=False)
    for ax, molecule in zip(axes[0], molecules):
        for (m, strategy), curve in sorted(found.items()):
            if m != molecule:
                continue
            n, mean, low, high = (np.array(column) for column in list(zip(*curve))[:4])
            color = f"C{STRATEGIES.index(strategy)}"  # one colour per strategy in every panel
            ax.plot(n, mean, "o-", color=color, label=strategy)
            if strategy == "random":
                ax.fill_between(n, low, high, color=color, alpha=0.2)
        ax.set(xscale="log", yscale="log", xlabel="accurate labels", ylabel="test force MAE, kcal/mol/Å",
               title=molecule)
        counts = sorted({c[0] for (m, _), curve in found.items() if m == molecule for c in curve})
        ax.set_xticks(counts, [str(c) for c in counts], minor=False)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--molecules", nargs="+", default=list(ACCURATE), choices=list(ACCURATE))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--rounds", nargs="+", type=int, default=[50, 100, 150, 200, 250],
                        help="accurate labels after each round (the first: the random start set)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="random selection's seeds")
    parser.add_argument("--strategy-seeds", nargs="+", type=int, default=[0],
                        help="the other strategies' seeds (each seed's 50 random start labels are random's)")
    parser.add_argument("--committee", type=int, default=3, help="models in the committee (>= 2)")
    parser.add_argument("--epochs", type=int, help="epochs of each round's training (default: the recipe's)")
    parser.add_argument("--model", choices=list(MODELS), default="mace", help="egnn: for smoke tests")
    parser.add_argument("--pool", type=int, default=500, help="pool = perm[:POOL] (smoke tests only)")
    parser.add_argument("--val", type=int, default=50, help="validation = the pool's last VAL (smoke tests only)")
    parser.add_argument("--test-size", type=int, default=500, help="test = perm[500:500 + N] (smoke tests only)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=Path("bench_results/acquisition.jsonl"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/acquisition.png"))
    parser.add_argument("--write", type=Path, help="update this markdown file's acquisition section")
    parser.add_argument("--table-only", action="store_true", help="only render the table of the results file")
    parser.add_argument("--score-diagnostic", action="store_true",
                        help="also write what the bias and committee scores rank: their correlation with the "
                             "round models' own errors and with the cheap labels' errors (loads the models from "
                             "runs/; section acquisition-scores, apart from the table's)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds != sorted(set(args.rounds)) or args.rounds[0] < 1:
        parser.error("--rounds must be increasing positive label counts")
    if args.committee < 2:
        parser.error("--committee must be at least 2")
    return args


def chains(args) -> list[tuple[str, str, int]]:
    """(molecule, strategy, seed) of every run: random with each of --seeds, the others with
    each of --strategy-seeds."""
    return [(m, s, seed) for m in args.molecules for s in args.strategies
            for seed in (args.seeds if s == "random" else args.strategy_seeds)]


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    finished = {(r["molecule"], r["strategy"], r["seed"], r["accurate"]): r for r in done}

    def write(row: dict) -> None:
        with open(args.results, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        done.append(row)
        print(f"  {row['molecule']} {row['strategy']} seed {row['seed']} {row['accurate']} labels: "
              f"{row['force_mae_kcal_per_mol_A']:.3f} kcal/mol/Å ({row['seconds'] / 60:.1f} min)",
              file=sys.stderr, flush=True)

    data: dict = {}
    for molecule, strategy, seed in [] if args.table_only else chains(args):
        if all((molecule, strategy, seed, n) in finished for n in args.rounds):
            continue
        if molecule not in data:
            data = {molecule: protocol_data(args.data_dir, molecule, args.pool, args.val, args.test_size)}
        chain = {"molecule": molecule, "strategy": strategy, "seed": seed, "data": data[molecule]}
        if strategy == "bias":
            chain["cheap"] = cheap_pool(data[molecule], molecule, args.results.parent, args.progress)
        print(f"run {molecule} {strategy} seed {seed}", file=sys.stderr, flush=True)
        run_chain(chain, finished, args, write)
    rows = [r for r in done if r["molecule"] in args.molecules and r["strategy"] in args.strategies]
    if rows:
        plot(rows, args.figure)
    command = "python bench/acquisition.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(rows, args) + (f"\n\n![learning curves]({Path('figures') / args.figure.name})" if rows else "")
    report(text, "acquisition", command, args.write)
    diagnostics = []
    for molecule in args.molecules if args.score_diagnostic else []:
        scored = [r for r in rows if r["molecule"] == molecule and r["strategy"] in ("bias", "committee")]
        if scored:
            split = protocol_data(args.data_dir, molecule, args.pool, args.val, args.test_size)
            cheap = cheap_pool(split, molecule, args.results.parent)
            diagnostics.append("\n".join(score_diagnostic(scored, split, cheap, args)))
    if diagnostics:  # a section of its own: it needs the round models in runs/, the table above does not
        report("\n\n".join(diagnostics), "acquisition-scores", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
