"""``asteroid-md``: molecular dynamics with ase_asteroid force fields."""

from __future__ import annotations

import argparse
import sys

PLANNED = {
    "stability": "Langevin MD across step sizes and replicas, with divergence detection",
    "run": "one Langevin MD run, written to a trajectory",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asteroid-md", description=(
        "Molecular dynamics with ase_asteroid force fields."))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in PLANNED.items():
        commands.add_parser(name, help=f"{text} (not yet available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    print(f"asteroid-md: '{args.command}' is not yet available", file=sys.stderr)
    return 2
