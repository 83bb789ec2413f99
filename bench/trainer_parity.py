"""Trainer parity: mace-torch's own trainer (mace_run_train) against ours with its default
recipes, same MACE, same data, side by side with one thread each, in one run.

    python bench/trainer_parity.py --settings standard finetune --write docs/benchmarks.md
    python bench/trainer_parity.py --settings standard --ours-epochs 140 --write docs/benchmarks.md

Data (the MD17@CCSD protocol of ../shared/DESIGN.md, ethanol CCSD(T)): perm =
default_rng(0).permutation(1000); train perm[:250] (standard) or perm[:200] (finetune),
validation perm[250:300], test perm[500:]. Cheap data (finetune): the rMD17 ethanol pool
of bench/md17_ccsd.py (ten files, duplicates and CCSD(T) geometries removed), its first
2000 configurations by default_rng(0) for pre-training and its last 100 for validation.
Both trainers read the same extxyz files (eV, eV/Å) written into the work folder.

Settings: ``standard`` — training from scratch on 250; ``finetune`` — pre-training on the
2000 cheap configurations, then fine-tuning on 200 (mace-torch: ``--foundation_model``
with ``--multiheads_finetuning False``, the naive fine-tune; ours: method
pretrain_finetune). mace-torch runs with lr 0.01, AMSGrad, EMA 0.99, batch 10, and stage
two (energy weight 1000, lr 1e-3) from 3/4 of the epochs; its stage-two model
(``NAME_stagetwo.model``) is the one evaluated. Ours runs with nothing but the epoch counts
set: every other setting is its default recipe (ase_asteroid/training/recipes.py).
Model: MACE, 32x0e + 32x1o, max_ell 3, correlation 3, 2 interactions, r_max 5 Å. Each
trainer runs in its own default dtype unless told otherwise: mace-torch float64
(``--peer-dtype``), ours float32 (``--ours-dtype``); with ``--ours-epochs`` our epoch budget
can be set apart from mace-torch's, e.g. to what fits in its wall time.

Rows are appended to ``--results`` as settings finish; a rerun skips settings whose rows
with the same epochs and dtypes are there already.
Times are wall times of training (set-up and test evaluation excluded) with both trainers
running at once, one thread each; the figure shows validation force MAE against wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from docs_section import report
from mace_peer import error_summary, model_errors, run_train, write_extxyz

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17"
ACCURATE = "ethanol_ccsd_t-train.npz"
MODEL = {"name": "mace", "channels": 32, "max_L": 1, "max_ell": 3, "correlation": 3, "num_interactions": 2,
         "cutoff": 5.0}
TRAINERS = ("mace_run_train", "ase_asteroid")


def prepare(work: Path, data_dir: Path, n_cheap: int) -> None:
    """Write the splits as extxyz files (energies in eV, forces in eV/Å) into `work`."""
    from ase_asteroid.data import read_dataset
    from md17_ccsd import cheap_pool

    work.mkdir(parents=True, exist_ok=True)
    data = read_dataset(data_dir / ACCURATE)
    perm = np.random.default_rng(0).permutation(len(data))
    parts = {"train250": data.subset(perm[:250]), "train200": data.subset(perm[:200]),
             "valid": data.subset(perm[250:300]), "test": data.subset(perm[500:])}
    pool = cheap_pool(data_dir, "ethanol", data, work / "cheap_ethanol.json")
    cheap_perm = np.random.default_rng(0).permutation(len(pool))
    parts.update(cheap_train=pool.subset(cheap_perm[:n_cheap]), cheap_valid=pool.subset(cheap_perm[-100:]))
    for name, part in parts.items():
        if not (work / f"{name}.extxyz").exists():
            write_extxyz(work / f"{name}.extxyz", part)


def _read(work: Path, name: str):
    from ase_asteroid.data import read_dataset
    return read_dataset(work / f"{name}.extxyz")


def _mace_run(work: Path, name: str, train: str, epochs: int, swa: bool, dtype: str,
              foundation: str | None = None) -> list:
    valid = work / f"{'cheap_valid' if train == 'cheap_train' else 'valid'}.extxyz"
    return run_train(name, work / f"{train}.extxyz", valid, epochs, dtype, work / "peer", swa, foundation)


def run_peer(setting: str, work: Path, epochs: int, pretrain_epochs: int, dtype: str) -> dict:
    start = time.perf_counter()
    curve, offset = [], 0.0
    if setting == "finetune":
        _mace_run(work, "peer_pre", "cheap_train", pretrain_epochs, False, dtype)
        offset = time.perf_counter() - start
        foundation = str(work / "peer" / "peer_pre.model")
        curve = [(offset + t, mae) for t, mae in _mace_run(work, "peer_ft", "train200", epochs, True, dtype, foundation)]
        model = work / "peer" / "peer_ft_stagetwo.model"
    else:
        curve = _mace_run(work, "peer", "train250", epochs, True, dtype)
        model = work / "peer" / "peer_stagetwo.model"
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "pretrain_seconds": offset, "curve": curve, **model_errors(model, _read(work, "test"), dtype)}


def run_ours(setting: str, work: Path, epochs: int, pretrain_epochs: int, dtype: str) -> dict:
    import torch

    from ase_asteroid.evaluation import evaluate
    from ase_asteroid.training.config import DataSpec, TrainConfig
    from ase_asteroid.training.pipeline import Splits, run_stages

    method = "pretrain_finetune" if setting == "finetune" else "standard"
    config = TrainConfig(method=method, accurate=DataSpec(str(work / "train250.extxyz")), model=MODEL,
                         dtype=dtype, cheap=DataSpec(str(work / "cheap_train.extxyz")) if method != "standard" else None,
                         fit={"epochs": epochs}, pretrain_fit={"epochs": pretrain_epochs} if pretrain_epochs else {}, out=str(work / f"ours_{setting}"))
    if setting == "finetune":
        splits = Splits(_read(work, "train200"), _read(work, "valid"), _read(work, "cheap_train"),
                        _read(work, "cheap_valid"))
    else:
        splits = Splits(_read(work, "train250"), _read(work, "valid"))
    torch.manual_seed(0)
    start = time.perf_counter()
    final, _ = run_stages(config, splits, progress=False)
    seconds = time.perf_counter() - start
    stages = ["pretrained", "fine_tuned"] if setting == "finetune" else ["standard"]
    curve, offset = [], 0.0
    for stage in stages:
        history = json.loads((work / f"ours_{setting}" / f"{stage}_epochs.json").read_text())
        if stage == "fine_tuned":
            curve = []  # like the peer's, the fine-tuning curve on the accurate validation set
        curve += [(offset + h["elapsed_s"], h["force_mae_eV_per_A"]) for h in history]
        offset += history[-1]["elapsed_s"]
    e = evaluate(final, _read(work, "test"))
    return {"seconds": seconds, "pretrain_seconds": offset - history[-1]["elapsed_s"] if setting == "finetune" else 0.0,
            "curve": curve, **error_summary(e["force_mae_meV_per_A"] / 1000, e["energy_mae_meV"] / 1000)}


def run_settings(setting: str, trainer: str, args) -> dict:
    """What a row of `trainer` on `setting` is run with: its epochs, pre-training epochs and dtype."""
    peer = trainer == "mace_run_train"
    return {"setting": setting, "trainer": trainer,
            "epochs": args.epochs if peer or args.ours_epochs is None else args.ours_epochs,
            "pretrain_epochs": 0 if setting != "finetune" else args.peer_pretrain_epochs if peer else args.pretrain_epochs,
            "dtype": args.peer_dtype if peer else args.ours_dtype}


def _matches(row: dict, wanted: dict) -> bool:
    return all(row.get(k, "float64" if k == "dtype" else None) == v for k, v in wanted.items())


def run_setting(setting: str, args) -> list[dict]:
    """Both trainers at once, one thread each, in child processes; their rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    children = {}
    for trainer in TRAINERS:
        wanted = run_settings(setting, trainer, args)
        result = args.work / f"{setting}_{trainer}.json"
        result.unlink(missing_ok=True)
        children[trainer] = (wanted, result, subprocess.Popen(
            [sys.executable, __file__, "--child", trainer, "--work", str(args.work), "--child-run", json.dumps(wanted)],
            env=env))
    rows = []
    for trainer, (wanted, result, process) in children.items():
        if process.wait():
            raise RuntimeError(f"{trainer} failed on {setting}")
        rows.append({**wanted, **json.loads(result.read_text())})
    return rows


def table(rows: list[dict], args) -> str:
    lines = ["Ethanol CCSD(T), MD17@CCSD protocol, MACE 32x0e+32x1o; both trainers of a setting at once, "
             "one thread each. mace-torch: its stage-two model. Ours: default recipes, only epochs set.",
             "", "| setting | trainer | dtype | epochs (pre-training) | test force MAE kcal/mol/Å (meV/Å) | "
             "ratio to mace-torch | test energy MAE kcal/mol | wall time min (pre-training) | ratio to mace-torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = next(p for p in rows if p["setting"] == r["setting"] and p["trainer"] == "mace_run_train")
        lines.append(f"| {r['setting']} | {r['trainer']} | {r.get('dtype', 'float64')} | {r['epochs']} ({r['pretrain_epochs']}) | "
                     f"{r['force_mae_kcal_per_mol_A']:.3f} "
                     f"({r['force_mae_meV_per_A']:.1f}) | {r['force_mae_kcal_per_mol_A'] / peer['force_mae_kcal_per_mol_A']:.2f} | "
                     f"{r['energy_mae_kcal_per_mol']:.3f} | {r['seconds'] / 60:.1f} ({r['pretrain_seconds'] / 60:.1f}) | "
                     f"{r['seconds'] / peer['seconds']:.2f} |")
    lines += ["", "Time to accuracy (validation force MAE against wall time, the figure):"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        peer, ours = (next(r for r in rows if r["setting"] == setting and r["trainer"] == t) for t in TRAINERS)
        end, final = peer["curve"][-1]
        reached = next((t for t, mae in ours["curve"] if mae <= final), None)
        by_then = min(mae for t, mae in ours["curve"] if t <= end) if ours["curve"][0][0] <= end else float("nan")
        lines.append(f"- {setting}: mace-torch ends at {1000 * final:.1f} meV/Å after {end / 60:.1f} min; ours is at "
                     f"{1000 * by_then:.1f} meV/Å by then and reaches {1000 * final:.1f} after "
                     + (f"{reached / 60:.1f} min." if reached is not None else "never."))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for r in (r for r in rows if r["setting"] == setting):
            t, mae = np.array(r["curve"]).T
            ax.plot(t / 60, 1000 * mae, label=r["trainer"])
        ax.set(yscale="log", xlabel="wall time, min", ylabel="validation force MAE, meV/Å", title=setting)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    from ase_asteroid.training.config import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["standard", "finetune"], choices=["standard", "finetune"])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--epochs", type=int, default=110, help="epochs of training on the accurate data")
    parser.add_argument("--ours-epochs", type=int, help="our epochs on the accurate data (default: --epochs)")
    parser.add_argument("--pretrain-epochs", type=int, default=10, help="our pre-training epochs")
    parser.add_argument("--peer-pretrain-epochs", type=int, default=20, help="mace-torch's pre-training epochs")
    parser.add_argument("--peer-dtype", default="float64", choices=["float32", "float64"],
                        help="mace-torch's dtype (its default: float64)")
    parser.add_argument("--ours-dtype", default=TrainConfig.dtype, choices=["float32", "float64"],
                        help=f"our dtype (our default: {TrainConfig.dtype})")
    parser.add_argument("--n-cheap", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=Path("bench_results/trainer_parity"))
    parser.add_argument("--results", type=Path, default=Path("bench_results/trainer_parity.jsonl"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/trainer_parity.png"))
    parser.add_argument("--write", type=Path, help="update this markdown file's trainer-parity section")
    parser.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
    parser.add_argument("--child-run", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if args.child:
        import torch
        torch.set_num_threads(1)
        run = run_peer if args.child == "mace_run_train" else run_ours
        wanted = args.child_run
        result = run(wanted["setting"], args.work, wanted["epochs"], wanted["pretrain_epochs"], wanted["dtype"])
        (args.work / f"{wanted['setting']}_{args.child}.json").write_text(json.dumps(result))
        return 0
    prepare(args.work, args.data_dir, args.n_cheap)
    rows = [json.loads(x) for x in args.results.read_text().splitlines()] if args.results.exists() else []
    for setting in args.settings:
        if all(any(_matches(r, run_settings(setting, t, args)) for r in rows) for t in TRAINERS):
            continue
        for row in run_setting(setting, args):
            rows.append(row)
            with open(args.results, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    latest = {(r["setting"], r["trainer"]): r for r in rows for s in args.settings for t in TRAINERS
              if _matches(r, run_settings(s, t, args))}  # a setting's newest run of each trainer
    rows = list(latest.values())
    plot(rows, args.figure)
    command = "python bench/trainer_parity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(table(rows, args) + f"\n\n![validation force MAE against wall time]({Path('figures') / args.figure.name})",
           "trainer-parity", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
