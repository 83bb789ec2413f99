"""Single-configuration energy+forces latency of AsteroidCalculator vs mace-torch's MACECalculator.

    python bench/calculator_latency.py --calls 200 --write docs/benchmarks.md

Ethanol (9 atoms), the default MACE and EGNN architectures (float32 and float64). For
MACE, mace-torch's own MACECalculator runs the very same network (``model.mace``, same
weights, same dtype) in the same run; its energies are checked to equal ours. Every
variant runs in a fresh subprocess, so its peak RSS is its own. Positions are rattled
before each call, so nothing is cached. Reports the median and 10-90% range of the wall
time per call, and our/peer ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from docs_section import report

VARIANTS = [f"{who}-{dtype}" for dtype in ("float32", "float64")
            for who in ("asteroid_mace", "macecalculator", "asteroid_egnn")]


def _calculator(variant: str):
    import torch
    from ase_asteroid import AsteroidCalculator
    from ase_asteroid.models import EGNNConfig, MACEConfig, build_model

    who, dtype_name = variant.split("-")
    dtype = getattr(torch, dtype_name)
    config = EGNNConfig(species=(1, 6, 8)) if who == "asteroid_egnn" else MACEConfig(species=(1, 6, 8))
    model = build_model(config, seed=0, dtype=dtype)
    if who == "macecalculator":
        from mace.calculators import MACECalculator

        return MACECalculator(models=model.mace, device="cpu", default_dtype=dtype_name)
    return AsteroidCalculator(model)


def measure(variant: str, calls: int) -> dict:
    """Median/p10/p90 seconds per energy+forces call, energy of the unrattled molecule, peak RSS."""
    import numpy as np
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.calc = _calculator(variant)
    reference_energy = atoms.get_potential_energy()
    rng = np.random.default_rng(0)
    start_positions = atoms.positions.copy()
    times = []
    for i in range(calls + 5):
        atoms.positions = start_positions + rng.normal(scale=0.01, size=start_positions.shape)
        start = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - start)
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return {"variant": variant, "median_s": median, "p10_s": p10, "p90_s": p90,
            "energy_eV": reference_energy,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_all(calls: int) -> dict[str, dict]:
    results = {}
    for variant in VARIANTS:
        output = subprocess.run([sys.executable, __file__, "--one", variant, "--calls", str(calls)],
                                check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])
        print(f"{variant:28s} {results[variant]['median_s'] * 1e3:8.2f} ms", file=sys.stderr)
    return results


def table(results: dict[str, dict], calls: int) -> str:
    import torch

    lines = [f"Ethanol (9 atoms), one energy+forces call, {calls} calls after 5 warm-up, "
             f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads.", "",
             "| calculator | dtype | median ms/call | p10-p90 ms | ratio to MACECalculator | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for variant, r in results.items():
        who, dtype = variant.split("-")
        peer = results[f"macecalculator-{dtype}"]["median_s"]
        lines.append(f"| {who} | {dtype} | {r['median_s'] * 1e3:.2f} | {r['p10_s'] * 1e3:.2f}-"
                     f"{r['p90_s'] * 1e3:.2f} | {r['median_s'] / peer:.2f} | {r['peak_rss_MB']:.0f} |")
    for dtype in ("float32", "float64"):
        ours, theirs = results[f"asteroid_mace-{dtype}"], results[f"macecalculator-{dtype}"]
        lines.append(f"\nSame network check ({dtype}): AsteroidCalculator {ours['energy_eV']:.10f} eV, "
                     f"MACECalculator {theirs['energy_eV']:.10f} eV.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, help="update this markdown file's latency section")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.calls)))
        return 0
    results = run_all(args.calls)
    report(table(results, args.calls), "calculator-latency",
           f"python bench/calculator_latency.py --calls {args.calls} --write {args.write}", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
