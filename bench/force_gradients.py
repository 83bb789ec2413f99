"""Force training without double backpropagation: time per step, peak memory, the ε curve,
and a training run with each method.

    python bench/force_gradients.py --write docs/benchmarks.md --checkpoint TRAINED.ckpt

Ethanol, MD17 CCSD(T) (first configurations of the shared train file). One training step =
forward, loss, parameter gradients (no optimiser step). Each (backend, batch size, method)
runs in a fresh process: the median time of 5 steps after 2 warm-up steps, and what those
steps add to the resident memory at its peak (Linux VmHWM, reset after the warm-up, minus
VmRSS then). Models: the default EGNN and MACE (32 channels, L = 1), float64.
The ε curve (their Fig. 1): the proxy error Err[L̃] of Eq. 13 against ε, for an untrained
model and a trained one (`--checkpoint`), in float64 and float32; figure in docs/figures/.
Training: EGNN on 250 configurations (validation: the next 50), same seed and settings,
once per method.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from docs_section import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17" / "ethanol_ccsd_t-train.npz"
METHODS = ("double_backprop", "central_difference", "forward_mode")
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "force_grad_epsilon.png"


def _model(backend: str, data, dtype):
    from ase_asteroid.models import EGNNConfig, MACEConfig
    from ase_asteroid.training.stages import new_model
    config = (MACEConfig if backend == "mace" else EGNNConfig)(species=data.species)
    return new_model(config, data, dtype=dtype).train()


def _status_MB(field: str) -> float:
    """VmRSS or VmHWM (peak resident memory since the last reset) of this process, MB."""
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


def one_step_measurement(backend: str, batch_size: int, method: str) -> dict:
    import torch

    from ase_asteroid.data import read_dataset
    from ase_asteroid.graph import batch_configurations
    from ase_asteroid.training.force_gradients import default_epsilon, loss_and_backward

    data = read_dataset(DATA).subset(range(batch_size))
    model = _model(backend, data, torch.float64)
    batch = batch_configurations(list(data), model.cutoff).to(dtype=torch.float64)
    times = []
    for i in range(7):
        model.zero_grad()
        if i == 2:  # after two warm-up steps: what one more step adds to the resident memory at its peak
            before = _status_MB("VmRSS")
            _reset_peak()
        start = time.perf_counter()
        loss_and_backward(model, batch, 0.01, "mse", method, default_epsilon(torch.float64))
        if i >= 2:
            times.append(time.perf_counter() - start)
    return {"seconds": float(np.median(times)), "extra_MB": _status_MB("VmHWM") - before}


def measure_steps(backends, batch_sizes) -> list[dict]:
    rows = []
    for backend in backends:
        for batch_size in batch_sizes:
            for method in METHODS:
                result = subprocess.run([sys.executable, __file__, "--one", backend, str(batch_size), method],
                                        capture_output=True, text=True)
                if result.returncode:
                    reason = result.stderr.strip().splitlines()[-1]
                    rows.append({"backend": backend, "batch": batch_size, "method": method, "error": reason})
                else:
                    rows.append({"backend": backend, "batch": batch_size, "method": method,
                                 **json.loads(result.stdout.strip().splitlines()[-1])})
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def steps_table(rows: list[dict]) -> str:
    lines = ["| model | batch | method | ms per step | × double backprop | extra peak MB | × double backprop |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = next(x for x in rows if (x["backend"], x["batch"], x["method"]) == (r["backend"], r["batch"],
                                                                                  "double_backprop"))
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['batch']} | {r['method']} | not supported: "
                         f"{r['error'][:90]} | | | |")
            continue
        lines.append(f"| {r['backend']} | {r['batch']} | {r['method']} | {1e3 * r['seconds']:.0f} | "
                     f"{r['seconds'] / ref['seconds']:.2f} | {r['extra_MB']:.0f} | "
                     f"{r['extra_MB'] / ref['extra_MB']:.2f} |")
    return "\n".join(lines)


def epsilon_curve(checkpoint: Path | None) -> str:
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ase_asteroid.checkpoint import load_checkpoint
    from ase_asteroid.data import read_dataset
    from ase_asteroid.graph import batch_configurations
    from ase_asteroid.training.force_gradients import proxy_error

    data = read_dataset(DATA).subset(range(500, 520))
    epsilons = np.logspace(-9, 0, 19)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    lines = []
    models = {"untrained EGNN": lambda: _model("egnn", data, torch.float64).eval()}
    if checkpoint:
        models[f"trained EGNN ({checkpoint.parent.name})"] = lambda: load_checkpoint(checkpoint)
    for name, make in models.items():
        for dtype in (torch.float64, torch.float32):
            model = make().to(dtype=dtype)
            batch = batch_configurations(list(data), model.cutoff)
            errors = [proxy_error(model, batch, float(e)) for e in epsilons]
            label = f"{name}, {str(dtype).removeprefix('torch.')}"
            ax.loglog(epsilons, errors, "o-" if dtype == torch.float64 else "s--", markersize=3, label=label)
            best = int(np.nanargmin(errors))
            lines.append(f"| {label} | {epsilons[best]:.0e} | {errors[best]:.1e} | "
                         f"{errors[list(epsilons).index(min(epsilons, key=lambda e: abs(e - 1e-5)))]:.1e} | "
                         f"{errors[list(epsilons).index(min(epsilons, key=lambda e: abs(e - 1e-3)))]:.1e} |")
    ax.set_xlabel("ε (Å)")
    ax.set_ylabel("proxy error |L̃ − L| / |L|")
    ax.legend(fontsize=7)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    plt.close(fig)
    return "\n".join(["| model, dtype | best ε (Å) | error there | error at 1e-5 | error at 1e-3 |",
                      "|---|---|---|---|---|", *lines])


def training_runs(epochs: int) -> str:
    import torch

    from ase_asteroid.data import read_dataset
    from ase_asteroid.training import fit
    from ase_asteroid.training.recipes import recipe
    from ase_asteroid.training.loop import errors

    data = read_dataset(DATA)
    train, val = data.subset(range(250)), data.subset(range(250, 300))
    lines = ["| method (EGNN, float64) | best validation force MAE meV/Å | time s |", "|---|---|---|"]
    for method in METHODS:
        torch.manual_seed(0)
        model = _model("egnn", train, torch.float64)
        start = time.perf_counter()
        model, record = fit(model, train, val, recipe("egnn", "scratch", {"epochs": epochs, "force_grad": method}), progress=False)
        lines.append(f"| {method} | {1e3 * errors(model, val)['force_mae_eV_per_A']:.2f} | "
                     f"{time.perf_counter() - start:.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["egnn", "mace"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 5, 10, 20])
    parser.add_argument("--checkpoint", type=Path, help="a trained EGNN checkpoint for the ε curve")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of each training run")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_step_measurement(args.one[0], int(args.one[1]), args.one[2])))
        return 0
    import torch
    text = "\n\n".join([
        f"CPU, torch {torch.__version__}, OMP_NUM_THREADS as set by the caller; ε = 1e-5 Å (float64).",
        steps_table(measure_steps(args.backends, args.batch_sizes)),
        f"ε curve (20 test configurations; figure `docs/figures/{FIGURE.name}`):",
        epsilon_curve(args.checkpoint),
        f"Training, {args.epochs} epochs, the EGNN's default recipe, same seed:",
        training_runs(args.epochs)])
    command = "python bench/force_gradients.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(text, "force-gradients", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
