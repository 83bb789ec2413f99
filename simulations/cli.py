"""``asteroid-md``: molecular dynamics with ase_asteroid force fields (thin: calls functions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ase_asteroid.cli import INTERRUPTED
from ase_asteroid.refinement.options import add_refine_arguments, refine_settings, ttt_settings

from .langevin import PAPER_FRICTION_PER_FS


def read_molecule(path: str, frame: int = 0):
    """One structure from an xyz/extxyz/traj or a dataset file (npz: its `frame`-th configuration)."""
    from ase_asteroid.data import read_dataset

    if not Path(path).exists():
        raise ValueError(f"{path}: no such file")
    data = read_dataset(path)
    if not -len(data) <= frame < len(data):
        raise ValueError(f"{path} has {len(data)} configurations; frame {frame} does not exist")
    config = data[frame]
    from ase import Atoms
    return Atoms(numbers=config.numbers, positions=config.positions)


def _common(parser) -> None:
    parser.add_argument("--molecule", required=True, help="xyz/extxyz file or dataset file (npz, extxyz, db)")
    parser.add_argument("--frame", type=int, default=0, help="which configuration of --molecule (default 0)")
    parser.add_argument("--temperature-K", type=float, default=500.0)
    parser.add_argument("--friction-per-fs", type=float, default=PAPER_FRICTION_PER_FS,
                        help=f"Langevin friction (1/fs); default {PAPER_FRICTION_PER_FS:.4g}, the paper's 0.002 ASE units")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bond-deviation-A", type=float, default=0.5, help="Fu et al. bond criterion (Å)")
    parser.add_argument("--max-distance-increase-A", type=float, default=2.0,
                        help="largest interatomic distance may grow by this much (Å)")
    parser.add_argument("--max-temperature-factor", type=float, default=5.0)
    add_refine_arguments(parser)
    parser.add_argument("--ttt-every", type=int, default=0,
                        help="refine again every this many steps, on the current structures (0: once, at the start)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asteroid-md", description=(
        "Molecular dynamics with ase_asteroid force fields: stability sweeps across step sizes."))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    stability = commands.add_parser("stability", help="Langevin MD across step sizes and replicas")
    stability.add_argument("models", nargs="*", help="checkpoints (model.ckpt), named by their file stem, or NAME=PATH")
    stability.add_argument("--calculator", action="append", default=[],
                           help="a reference method run beside the models (gfn2-xtb, gfn1-xtb, lj, gaff2); repeatable")
    _common(stability)
    stability.add_argument("--step-sizes-fs", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 3.0])
    stability.add_argument("--replicas", type=int, default=20)
    stability.add_argument("--time-ps", type=float, default=1.0)
    stability.add_argument("--save-trajectories", type=int, default=0, metavar="K",
                           help="write trajectories of the first K replicas")
    stability.add_argument("--head", help="the fidelity (readout head) of a multi-head checkpoint to simulate "
                           "with (default: its first, the most accurate)")
    stability.add_argument("--out", default="stability_results", help="output folder")
    again = stability.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue a sweep in --out, skipping finished runs")
    again.add_argument("--overwrite", action="store_true",
                       help="start again: remove an earlier sweep's files from --out (only those)")
    where = stability.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1)
    where.add_argument("--scheduler", help="address of a Dask distributed scheduler")
    scan = commands.add_parser("bond-scan", help="energy along one stretched bond, models beside a reference "
                               "(why a bond breaks in MD)")
    scan.add_argument("models", nargs="*", help="checkpoints, named by their file stem, or NAME=PATH")
    scan.add_argument("--calculator", action="append", default=[],
                      help="a reference method (gfn2-xtb, gfn1-xtb, lj, gaff2); repeatable")
    scan.add_argument("--molecule", required=True, help="xyz/extxyz file or dataset file (npz, extxyz, db)")
    scan.add_argument("--frame", type=int, default=0, help="which configuration of --molecule (default 0)")
    scan.add_argument("--bond", type=int, nargs=2, required=True, metavar=("I", "J"),
                      help="the bond's atoms (0-based, as a stability sweep names them); J is moved")
    scan.add_argument("--stretch-A", type=float, nargs=3, default=[-0.3, 0.8, 0.1], metavar=("FROM", "TO", "STEP"),
                      help="stretches of the bond (Å; default -0.3 0.8 0.1)")
    scan.add_argument("--head", help="the fidelity (readout head) of multi-head checkpoints (default: their first)")
    scan.add_argument("--out", help="folder for bond_scan.md and bond_scan.png (default: print only)")
    run = commands.add_parser("run", help="one Langevin MD run, written to a trajectory")
    run.add_argument("model", help="checkpoint, or a reference method (gfn2-xtb, lj, ...)")
    _common(run)
    run.add_argument("--timestep-fs", type=float, default=0.5)
    run.add_argument("--steps", type=int, default=1000)
    run.add_argument("--traj", help="trajectory file to write (ASE .traj)")
    run.add_argument("--traj-every", type=int, default=10)
    run.add_argument("--head", help="the fidelity (readout head) of a multi-head checkpoint (default: its first)")
    return parser


def _criteria(args):
    from .divergence import DivergenceCriteria
    return DivergenceCriteria(args.bond_deviation_A, args.max_distance_increase_A, args.max_temperature_factor)


def model_sources(models: list[str], calculators: list[str]) -> dict[str, str]:
    """{name: checkpoint or method} for the sweep: a model is named by its file's stem, or
    by NAME in NAME=PATH; ValueError if two would share a name (one would be lost)."""
    named = [tuple(m.split("=", 1)) if "=" in m and not Path(m).exists() else (Path(m).stem, m) for m in models]
    named += [(c, c) for c in calculators]
    names = [name for name, _ in named]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"two models would both be named {', '.join(map(repr, repeated))} in the sweep; "
                         "name them with NAME=PATH, e.g. standard=runs/a/model.ckpt asteroid=runs/b/model.ckpt")
    return dict(named)


def stability(args) -> str:
    from .stability import SweepConfig, run_sweep, write_outputs

    sources = model_sources(args.models, args.calculator)
    if not sources:
        raise ValueError("give at least one checkpoint or --calculator")
    config = SweepConfig(tuple(args.step_sizes_fs), args.replicas, args.time_ps, args.temperature_K,
                         args.friction_per_fs, args.seed, _criteria(args), save_trajectories=args.save_trajectories,
                         refine=args.refine or "", ttt=ttt_settings(args), head=args.head, ttt_every=args.ttt_every)
    molecule = read_molecule(args.molecule, args.frame)
    rows = run_sweep(sources, molecule, config, args.out, workers=args.workers, scheduler=args.scheduler,
                     resume=args.resume, overwrite=args.overwrite)
    table = write_outputs(rows, molecule, args.out)
    return f"{table}\n\nstable runs / runs per step size; written to {args.out}/ (runs.csv, runs.json, summary.md, stability.png)"


def bond_scan(args) -> str:
    from .bond_scan import bond_scan as scan
    from .bond_scan import format_scan, plot_scan
    from .stability import SweepConfig, predictor

    sources = model_sources(args.models, args.calculator)
    if not sources:
        raise ValueError("give at least one checkpoint or --calculator")
    start, stop, step = args.stretch_A
    if step <= 0 or stop < start:
        raise ValueError(f"--stretch-A {start:g} {stop:g} {step:g}: FROM must not exceed TO and STEP must be positive")
    stretches = np.round(np.arange(start, stop + step / 2, step), 10)
    molecule = read_molecule(args.molecule, args.frame)
    config = SweepConfig(head=args.head)  # loaded and checked as a stability sweep loads its models
    curves = scan({name: predictor(source, molecule, config) for name, source in sources.items()},
                  molecule, *args.bond, stretches)
    text = format_scan(curves, stretches, molecule, *args.bond)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bond_scan.md").write_text(text + "\n")
        plot_scan(curves, stretches, molecule, *args.bond, out / "bond_scan.png")
        text += f"\n\nwritten to {out}/ (bond_scan.md, bond_scan.png)"
    return text


def run(args) -> str:
    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.predictor import predictor_for

    from .langevin import LangevinParameters
    from .run import run_md

    molecule = read_molecule(args.molecule, args.frame)
    chosen = predictor_for(args.model, args.head, refine_settings(args, every=args.ttt_every))
    chosen.check_molecule(molecule)
    calculator = AsteroidCalculator(chosen)
    params = LangevinParameters(args.timestep_fs, args.temperature_K, args.friction_per_fs)
    result = run_md(molecule, calculator, params, args.steps, args.seed, args.traj, args.traj_every, _criteria(args))
    state = "stable" if result.stable else f"diverged ({result.reason})"
    return f"{result.steps_completed} steps, {result.time_ps:.3f} ps: {state}" + (f"; trajectory {args.traj}" if args.traj else "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        print({"stability": stability, "bond-scan": bond_scan, "run": run}[args.command](args))
    except (ValueError, FileExistsError) as error:
        print(f"asteroid-md: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = ("finished runs are kept in --out; run the same command with --resume to continue"
                if args.command == "stability" else "nothing was written")
        print(f"asteroid-md: interrupted; {kept}", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
