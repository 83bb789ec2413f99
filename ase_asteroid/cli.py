"""``asteroid``: the command line of ase_asteroid (thin: every command calls a function)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from . import __version__
from .refinement.options import add_refine_arguments, refine_settings


def data_info(path: str, as_json: bool = False, fidelity: str | None = None,
              labels: str = "new", energy_unit: str | None = None, force_unit: str | None = None) -> str:
    """The summary of one data file, as text or JSON."""
    from .data.readers import read_dataset
    from .data.summary import format_summary, summarize

    summary = summarize(read_dataset(path, fidelity=fidelity, labels=labels, energy_unit=energy_unit,
                                     force_unit=force_unit))
    return json.dumps(summary, indent=2) if as_json else format_summary(summary)


def _add_unit_arguments(parser) -> None:
    parser.add_argument("--energy-unit", help="energy unit of the file (eV, kcal/mol, Hartree, ...; default: "
                                              "kcal/mol for npz, eV otherwise)")
    parser.add_argument("--force-unit", help="force unit of the file (eV/Å, kcal/mol/Å, Hartree/Bohr, ...)")


def _add_sample_parser(commands) -> None:
    sample = commands.add_parser("sample", help="sample configurations (GAFF2 MD, normal modes, MD with a labeler)")
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--smiles", help="the molecule as SMILES")
    source.add_argument("--xyz", help="the molecule as a structure file (first frame)")
    sample.add_argument("--method", required=True, choices=["gaff2-md", "normal-modes", "md"])
    sample.add_argument("--calculator", default="gfn2-xtb",
                        help="labeler for normal-modes (minimum, Hessian) and md (default gfn2-xtb)")
    sample.add_argument("--temperature-K", type=float, required=True)
    sample.add_argument("--n", type=int, required=True, help="number of configurations")
    sample.add_argument("--every", type=int, default=20, help="MD steps between saved frames (default 20)")
    sample.add_argument("--timestep-fs", type=float, default=0.5)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--charge", type=int, default=0)
    sample.add_argument("--out", required=True, help="output extxyz")
    sample.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _add_label_parser(commands) -> None:
    label = commands.add_parser("label", help="label configurations (gfn2-xtb, gfn1-xtb, gaff2, lj, pyscf:METHOD/BASIS)")
    label.add_argument("file", help="structures to label (extxyz or anything ase.io reads)")
    label.add_argument("--method", required=True, help="gfn2-xtb, gfn1-xtb, gaff2, lj or pyscf:METHOD/BASIS")
    label.add_argument("--out", required=True, help="output extxyz (written as results arrive)")
    label.add_argument("--subset", type=int, help="label only this many, drawn with --seed")
    label.add_argument("--seed", type=int, default=0)
    label.add_argument("--charge", type=int, default=0)
    where = label.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    where.add_argument("--scheduler", help="address of a Dask distributed scheduler")
    mode = label.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="continue into an existing output, skipping what is done")
    mode.add_argument("--overwrite", action="store_true", help="start the output again")


def data_sample(args) -> str:
    from .labels.files import sample_to_file

    frames = sample_to_file(args.out, args.method, args.n, args.temperature_K, smiles=args.smiles,
                            xyz=args.xyz, calculator=args.calculator, every=args.every,
                            timestep_fs=args.timestep_fs, seed=args.seed, charge=args.charge,
                            overwrite=args.overwrite)
    return f"wrote {len(frames)} configurations ({args.method}, {args.temperature_K} K) to {args.out}"


def data_label(args) -> str:
    from .labels.files import label_file

    mode = "append" if args.append else "overwrite" if args.overwrite else "new"
    report = label_file(args.file, args.method, args.out, subset=args.subset, seed=args.seed,
                        workers=args.workers, scheduler=args.scheduler, mode=mode, charge=args.charge)
    return report.summary()


def _add_quickstart_parser(commands) -> None:
    quick = commands.add_parser("quickstart", help="standard vs ASTEROID vs no-weights training at equal cost on the demo data")
    quick.add_argument("--out", default="quickstart", help="folder for checkpoints and the parity plot")
    quick.add_argument("--epochs", type=int, default=100, help="epochs on the accurate data (each stage)")
    quick.add_argument("--pretrain-epochs", type=int, default=8, help="epochs of bias-aware pre-training")
    quick.add_argument("--gamma-eV-per-A", type=float, default=0.05, help="bias temperature γ of w = exp(-B/γ)")
    quick.add_argument("--cost-ratio", type=float, default=1000.0,
                       help="cost of one accurate label in cheap labels (limits the cheap data to 50x this)")
    quick.add_argument("--seed", type=int, default=0)


def quickstart(args) -> str:
    from .training.quickstart import format_table, run_quickstart

    rows = run_quickstart(args.out, args.epochs, args.pretrain_epochs, args.gamma_eV_per_A, args.cost_ratio, args.seed)
    return f"{format_table(rows)}\n\ntest: 100 held-out B3LYP/6-31G* ethanol configurations; written to {args.out}/"


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="energy and force errors of a checkpoint on a dataset")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--data", required=True, help="labelled data (npz, extxyz, db, ..., or demo:NAME)")
    evaluate.add_argument("--fidelity", help="the model's reference energies to predict with (default: its first)")
    evaluate.add_argument("--labels", choices=["new", "old"], default="new", help="rMD17 label set")
    evaluate.add_argument("--json", action="store_true")
    _add_unit_arguments(evaluate)
    add_refine_arguments(evaluate)


def evaluate_command(args) -> str:
    from .data.readers import read_dataset
    from .evaluation import evaluate, format_evaluation
    from .predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, args.fidelity, refine_settings(args))
    data = read_dataset(args.data, labels=args.labels, energy_unit=args.energy_unit, force_unit=args.force_unit)
    return format_evaluation(evaluate(predictor, data), args.json)


def _add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a force field from a YAML config (see examples/*.yaml)")
    train.add_argument("--config", required=True, help="YAML file")
    train.add_argument("--out", help="output folder (overrides the config's 'out')")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted run in the same output folder: finished stages are loaded "
                           "from their checkpoints, the interrupted one from its last finished epoch")
    mode.add_argument("--overwrite", action="store_true",
                      help="discard the results of an earlier run in the output folder (it is refused otherwise)")


def train_command(args) -> str:
    from dataclasses import replace

    from .data.readers import read_dataset
    from .evaluation import evaluate, format_evaluation
    from .predictor import Predictor
    from .training.config import load_config
    from .training.pipeline import run_training

    config = load_config(args.config)
    result = run_training(replace(config, out=args.out) if args.out else config, resume=args.resume,
                          overwrite=args.overwrite)
    lines = [f"{stage}: {path}" for stage, path in result["checkpoints"].items()]
    if config.test:
        test = evaluate(Predictor.from_checkpoint(result["final"]), read_dataset(config.test))
        lines += ["test:", format_evaluation(test)]
    return "\n".join(lines)


def _add_select_parser(commands) -> None:
    from .acquisition import STRATEGIES

    select = commands.add_parser("select", help="pick the configurations of a pool to label accurately next")
    select.add_argument("pool", help="candidate configurations (extxyz, npz, db, ...; cheap labels for --strategy bias)")
    select.add_argument("--n", type=int, required=True, help="how many to pick")
    select.add_argument("--strategy", required=True, choices=STRATEGIES)
    select.add_argument("--out", required=True, help="output extxyz of the picks (their pool indices go to OUT.json)")
    select.add_argument("--labelled", action="append", default=[],
                        help="configurations already labelled accurately (excluded; FPS starts from them); repeatable")
    select.add_argument("--model", action="append", default=[],
                        help="checkpoint: one for fps-model and bias (stage 1), two or more for committee")
    select.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    select.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_unit_arguments(select)


def select_command(args) -> str:
    from .acquisition import select, write_selection
    from .checkpoint import load_checkpoint
    from .data import Dataset
    from .data.readers import read_dataset

    read = lambda path: read_dataset(path, energy_unit=args.energy_unit, force_unit=args.force_unit)
    pool = read(args.pool)
    labelled = sum((read(path) for path in args.labelled), Dataset([])) if args.labelled else None
    models = [load_checkpoint(path) for path in args.model]
    selection = select(pool, args.n, args.strategy, labelled=labelled, models=models, seed=args.seed, progress=True)
    out, index_file = write_selection(pool, selection, args.out, args.pool, args.overwrite)
    return (f"{args.strategy}: picked {len(selection.indices)} of {len(pool)} pool configurations "
            f"({len(selection.excluded)} already labelled) -> {out} (pool indices: {index_file}); "
            f"label them with: asteroid data label {out} --method METHOD --out LABELLED.extxyz")


def _add_plan_parser(commands) -> None:
    plan = commands.add_parser("plan", help="split a CPU-hour budget between accurate and cheap labels")
    plan.add_argument("--budget-cpu-hours", type=float, required=True, help="CPU-hours for labels")
    plan.add_argument("--cost", action="append", required=True,
                      help="CPU-seconds per label: JSON {method: seconds} or a file written by asteroid data label; repeatable")
    plan.add_argument("--curve", action="append", required=True,
                      help="pilot rows, JSON list or JSONL of {accurate, cheap, method, force_mae...} "
                           "(e.g. bench_results/md17_ccsd.jsonl); repeatable")
    plan.add_argument("--accurate-method", required=True, help="the accurate labeller, e.g. 'pyscf:ccsd(t)/6-31g'")
    plan.add_argument("--cheap-method", help="cheap labeller of rows that do not name one ('cheap_method')")
    plan.add_argument("--molecule", help="use only rows (and per-molecule costs) of this molecule")
    plan.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                      help="use only rows with this value of KEY, e.g. backend=mace or labels=new; repeatable")
    plan.add_argument("--max-cheap", type=int, help="at most this many cheap labels (e.g. the pool size)")
    plan.add_argument("--json", action="store_true")


def plan_command(args) -> str:
    from dataclasses import asdict

    from .planning import ERROR_KEYS, error_key, fit_curves, format_plans, plan_budget, read_costs, read_rows

    where = dict(item.partition("=")[::2] for item in args.where)
    if any(not key or not value for key, value in where.items()):
        raise ValueError(f"--where takes KEY=VALUE, got {args.where}")
    rows = read_rows(args.curve, args.molecule, where)
    curves, notes = fit_curves(rows, args.cheap_method)
    if not curves:
        raise ValueError("no learning curve could be fitted:\n  " + "\n  ".join(notes))
    plans, more = plan_budget(curves, read_costs(args.cost, args.molecule), args.budget_cpu_hours,
                              args.accurate_method, args.max_cheap)
    if not plans:
        raise ValueError("no plan fits the budget:\n  " + "\n  ".join(notes + more))
    if args.json:
        return json.dumps({"plans": [asdict(p) for p in plans], "curves": [asdict(c) for c in curves],
                           "notes": notes + more}, indent=1)
    return format_plans(plans, curves, ERROR_KEYS[error_key(rows)], args.budget_cpu_hours, notes + more)


def _add_campaign_parser(commands) -> None:
    campaign = commands.add_parser("campaign", help="the whole workflow for a new molecule, from a YAML config "
                                   "(see examples/campaign_methanol.yaml); a rerun continues it")
    campaign.add_argument("--config", required=True, help="YAML file")
    campaign.add_argument("--out", help="campaign folder (overrides the config's 'out')")
    where = campaign.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, help="local worker processes for labelling and MD (default 1)")
    where.add_argument("--scheduler", help="address of a Dask distributed scheduler for labelling and MD")


def campaign_command(args) -> str:
    from dataclasses import replace

    from .campaign import load_campaign, run_campaign

    config = load_campaign(args.config)
    config = replace(config, out=args.out) if args.out else config
    report = run_campaign(config, workers=args.workers, scheduler=args.scheduler,
                          say=lambda line: print(line, flush=True))
    return f"report: {report}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asteroid", description=(
        "Accurate machine-learning force fields from many cheap and a few accurate labels."))
    parser.add_argument("--version", action="version", version=f"ase_asteroid {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    data = commands.add_parser("data", help="inspect, sample and label datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    info = data_commands.add_parser("info", help="counts, elements, fidelities, units, statistics")
    info.add_argument("file", help="npz (sGDML/MD17, rMD17), extxyz, ASE db, ...")
    info.add_argument("--fidelity", help="fidelity label to assign (default: from the file)")
    info.add_argument("--labels", choices=["new", "old"], default="new",
                      help="rMD17: recomputed PBE/def2-SVP (new) or original MD17 PBE+vdW-TS (old)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_unit_arguments(info)
    _add_sample_parser(data_commands)
    _add_label_parser(data_commands)
    _add_quickstart_parser(commands)
    _add_evaluate_parser(commands)
    _add_train_parser(commands)
    _add_select_parser(commands)
    _add_plan_parser(commands)
    _add_campaign_parser(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, like errors (not Python's file:line and source line)."""
    print(f"asteroid: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "data" and args.data_command is None):
        parser.print_help()
        return 0
    run = {"quickstart": lambda: quickstart(args), "evaluate": lambda: evaluate_command(args),
           "train": lambda: train_command(args), "select": lambda: select_command(args),
           "plan": lambda: plan_command(args), "campaign": lambda: campaign_command(args)}.get(args.command) or {
        "info": lambda: data_info(args.file, args.json, args.fidelity, args.labels, args.energy_unit,
                                  args.force_unit),
        "sample": lambda: data_sample(args), "label": lambda: data_label(args)}[args.data_command]
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            print(run())
    except (ValueError, FileExistsError) as error:  # DataError and LabelError are ValueErrors
        print(f"asteroid: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        command = getattr(args, "data_command", None) or args.command
        print(f"asteroid: interrupted; {_AFTER_INTERRUPT[command]}", file=sys.stderr)
        return INTERRUPTED
    return 0


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130

#: What an interrupted command kept, and how to continue it.
_AFTER_INTERRUPT = {
    "train": "finished stages and the last finished epoch are kept in the output folder; "
             "run the same command with --resume to continue",
    "label": "the labels written so far are kept in --out; run the same command with --append to continue",
    "sample": "no configurations were written; run the command again",
    "evaluate": "nothing was written",
    "quickstart": "the checkpoints of finished methods are kept in --out; running it again starts over",
    "info": "nothing was written",
    "select": "the picks are written only at the end; run the command again (with --overwrite if --out exists)",
    "plan": "nothing was written",
    "campaign": "finished steps, every label written and finished training stages are kept in the campaign "
                "folder; run the same command again to continue",
}
