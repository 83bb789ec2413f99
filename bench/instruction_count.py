"""Instructions executed per call of the inference paths, two versions of the code compared.

    git worktree add ../before COMMIT
    python bench/instruction_count.py --trees ../before . --calls 3 --write docs/benchmarks.md

On a shared machine wall and CPU times of the same code scatter by ±25 % between runs, too
much to tell a 5 % change; the number of instructions a call executes does not depend on
the load. Each tree (a checkout of ase_asteroid, e.g. a `git worktree` at an older commit)
runs in its own process under valgrind's callgrind, instrumented only while the measured
calls run (a tiny C helper issues callgrind's client requests; it needs gcc and valgrind's
headers): per path, one call to warm up, the counters zeroed, then `--calls` calls.

Paths, with untrained models in float32 (the work does not depend on the weights):
AsteroidCalculator energy + forces of ethanol (one structure per call), and the batched MD
force evaluation of 20 aspirin replicas (simulations.batched.model_forces, one call per MD
step of all replicas), each for EGNN and MACE (default sizes). Instructions are not time —
memory stalls and vector width differ per instruction — so this says whether a version does
more work, not exactly how much slower it runs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from docs_section import report

HELPER_C = """
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void cg_stop(const char *label) { CALLGRIND_DUMP_STATS_AT(label); CALLGRIND_STOP_INSTRUMENTATION; }
"""
PATHS = ("egnn calculator", "egnn batched", "mace calculator", "mace batched")


def build_helper(folder: Path) -> Path:
    library = folder / "cg_helper.so"
    (folder / "cg_helper.c").write_text(HELPER_C)
    try:
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(library), str(folder / "cg_helper.c")],
                       check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"cannot build the callgrind helper (needs gcc and valgrind's headers): {error}")
    return library


def path_calls(path: str):
    """A function that makes one call of `path` (fresh positions each time)."""
    import numpy as np
    import torch
    from ase.build import molecule
    from md_throughput import aspirin

    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
    from simulations.batched import model_forces

    backend, kind = path.split()
    config = (MACEConfig if backend == "mace" else EGNNConfig)(species=(1, 6, 8))
    model = build_model(config, seed=0, dtype=torch.float32).eval()
    rng = np.random.default_rng(0)
    if kind == "calculator":
        atoms = molecule("CH3CH2OH")
        atoms.calc, start = AsteroidCalculator(model), atoms.positions.copy()

        def call():
            atoms.positions = start + rng.normal(scale=0.01, size=start.shape)
            atoms.get_potential_energy(), atoms.get_forces()
        return call
    start = aspirin()
    forces = model_forces(model, start.numbers)
    return lambda: forces(start.positions + rng.normal(scale=0.01, size=(20, *start.positions.shape)))


def child(library: Path, calls: int, paths: list[str]) -> None:
    """In the valgrind process: each path warmed up, then its calls counted under its label."""
    import torch
    torch.set_num_threads(1)
    helper = ctypes.CDLL(str(library))
    for path in paths:
        call = path_calls(path)
        call()
        helper.cg_start()
        for _ in range(calls):
            call()
        helper.cg_stop(path.replace(" ", "_").encode())


def measure(tree: Path, calls: int, paths: list[str], library: Path, work: Path) -> dict[str, float]:
    """{path: instructions per call} of the code in `tree`."""
    out = work / f"callgrind.{abs(hash(str(tree)))}"
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p",
               sys.executable, str(Path(__file__).resolve()), "--child", str(library), "--calls", str(calls),
               "--paths", *paths]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{tree}: the measured process failed:\n{result.stderr[-3000:]}")
    counts = {}
    for dump in work.glob(f"{out.name}.*"):
        text = dump.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if label and total:
            counts[label.group(1).replace("_", " ")] = int(total.group(1)) / calls
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                        help="two checkouts of the repository to compare")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.child:
        child(args.child, args.calls, args.paths)
        return 0
    if not args.trees:
        parser.error("--trees BEFORE AFTER is required")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        library = build_helper(work)
        before, after = (measure(t.resolve(), args.calls, args.paths, library, work) for t in args.trees)
    revisions = [_revision(t) for t in args.trees]
    lines = [f"Instructions per call (valgrind callgrind, {args.calls} calls after one warm-up, float32, one thread); "
             f"before = {revisions[0]}, after = {revisions[1]}.", "",
             "| path | before (M instructions) | after | after / before |", "|---|---|---|---|"]
    for path in args.paths:
        lines.append(f"| {path} | {before[path] / 1e6:.1f} | {after[path] / 1e6:.1f} | {after[path] / before[path]:.3f} |")
    command = "python bench/instruction_count.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    report("\n".join(lines), "instruction-count", command, args.write)
    print(json.dumps({"before": before, "after": after}), file=sys.stderr)
    return 0


def _revision(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(tree)


if __name__ == "__main__":
    raise SystemExit(main())
