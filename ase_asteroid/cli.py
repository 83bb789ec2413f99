"""``asteroid``: the command line of ase_asteroid (thin: every command calls a function)."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__

#: Subcommands that later releases add; they answer "not yet available".
PLANNED = {
    "train": "train a force field from a YAML config",
    "evaluate": "energy and force errors of a checkpoint on a dataset",
    "quickstart": "train standard and ASTEROID models on the embedded demo data",
}
PLANNED_DATA = {"sample": "sample configurations (OpenMM/GAFF2, normal modes)",
                "label": "label configurations (GFN2-xTB, PySCF, LJ)"}


def data_info(path: str, as_json: bool = False, fidelity: str | None = None,
              labels: str = "new") -> str:
    """The summary of one data file, as text or JSON."""
    from .data.readers import read_dataset
    from .data.summary import format_summary, summarize

    summary = summarize(read_dataset(path, fidelity=fidelity, labels=labels))
    return json.dumps(summary, indent=2) if as_json else format_summary(summary)


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
    for name, text in PLANNED_DATA.items():
        data_commands.add_parser(name, help=f"{text} (not yet available)")
    for name, text in PLANNED.items():
        commands.add_parser(name, help=f"{text} (not yet available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "data" and args.data_command is None):
        parser.print_help()
        return 0
    name = args.data_command if args.command == "data" else args.command
    if name in PLANNED or name in PLANNED_DATA:
        print(f"asteroid: '{name}' is not yet available in ase_asteroid {__version__}", file=sys.stderr)
        return 2
    from .data.dataset import DataError

    try:
        print(data_info(args.file, args.json, args.fidelity, args.labels))
    except DataError as error:
        print(f"asteroid: error: {error}", file=sys.stderr)
        return 1
    return 0
