"""The ASTEROID paper's experiment on real data: MD17@CCSD accurate labels + rMD17 DFT cheap labels.

    python bench/md17_ccsd.py --data-dir ../shared/data/md17 --molecules ethanol --backends egnn \
        --results bench_results/md17_ccsd.jsonl --write docs/benchmarks.md

Protocol (../shared/DESIGN.md): per molecule, perm = default_rng(0).permutation(1000) of the
CCSD/CCSD(T) train file; standard trains on perm[:250], the cheap-data methods on
perm[:200]; validation perm[250:300]; test = aspirin's CCSD test file, and for ethanol and
malonaldehyde (train file only) the held-out perm[500:] (500 configurations). Cheap data:
the union of the molecule's ten rMD17 files, with their new labels (PBE/def2-SVP) or their
old ones (``--labels old``: the original MD17's PBE+vdW-TS), duplicates removed and every
configuration removed whose interatomic distances match a CCSD configuration within
1e-3 Å (the CCSD(T) ethanol file is in another frame, so coordinates cannot be compared);
then default_rng(0).permutation picks N cheap training configurations ([:N], nested
across N) and 100 for cheap validation ([-100:]).

Runs (each a row of the results file, which is appended as runs finish; a rerun skips the
rows it has): standard (250, and ``--standard-sizes`` more for the data-efficiency curve:
perm[:250] then perm[300:500], the configurations outside validation and test), asteroid
(200 + N, or the first M of that order with ``--accurate-sizes``; γ chosen by validation after fine-tuning if several are given), pretrain_finetune (no bias weights, γ = ∞) whose
pre-trained stage is also the cheap_only row, score_matching (the rMD17 geometries
of the largest N with labels removed, 500 K, the temperature of the MD17 trajectories), and
mace_torch_finetune: the peer a user would pick instead, mace-torch's own trainer on the same
files — pre-training on the N cheap configurations for as many visits as ours, then its naive
fine-tune (``--foundation_model``, no multi-head replay) on the 200 for the same epochs with
its stage two from 3/4 of them, in the dtype of our rows (mace backend only).
``--corrupt FRACTION SIZE`` gives a controlled case where the cheap labels' error varies
between configurations, of a kind set by ``--corrupt-kind``: ``noise`` (the default),
Gaussian noise of SIZE eV/Å on every force component of a random FRACTION of the cheap
configurations (label set e.g. ``new+0.25x1``): an error without a direction, which a model
fitted to many configurations averages out; ``scale``, the forces of the FRACTION with the
highest cheap energies multiplied by 1 + SIZE (label set e.g. ``new+0.25scale0.5``): a
systematic error in one region of configuration space — distorted geometries, where a cheap
method is most often wrong — that a model learns.
``--correct-bonds X H`` asks whether one bond's label error matters: it removes the cheap
labels' mean offset along the bond X-H (label set e.g. ``old+bond9-13``), measured at the
rMD17 geometries that are among the accurate training labels (bench/label_bias.py's
``--bonds`` table), from energies and forces alike (E + c·r_XH), so the labels stay
conservative; the offsets are recorded in each row (aspirin's acid O-H, whose MD failures
docs/benchmarks.md's stability section traces).
Every run is repeated for each of ``--seeds`` (model initialisation and batch order; the
data splits stay) and each cheap label set of ``--labels``; the table gives the mean over
seeds with the seeds' range.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from docs_section import report
from label_bias import shared_bond_offsets, shared_pairs
from mace_peer import model_errors, run_train, write_extxyz
from overrides import key_values

from ase_asteroid.checkpoint import load_checkpoint
from ase_asteroid.data import Dataset, read_dataset
from ase_asteroid.data.tools import duplicate_indices, leaking_indices
from ase_asteroid.evaluation import evaluate
from ase_asteroid.training.config import DataSpec, TrainConfig
from ase_asteroid.training.pipeline import Splits, run_stages

ACCURATE = {"ethanol": "ethanol_ccsd_t-train.npz", "malonaldehyde": "malonaldehyde_ccsd_t-train.npz",
            "aspirin": "aspirin_ccsd-train.npz"}
OFFICIAL_TEST = {"aspirin": "aspirin_ccsd-test.npz"}
# Bukharin et al. 2023, Table 3: GemNet, ASTEROID with 200 CCSD(T) + DFT, force MAE kcal/mol/Å.
PAPER_ASTEROID = {"aspirin": 0.908, "malonaldehyde": 0.338, "ethanol": 0.176}
# mace-torch's own trainer on ethanol, same protocol: bench/trainer_parity.py's results (its newest run per setting).
PARITY_RESULTS = Path(__file__).resolve().parents[1] / "bench_results/trainer_parity.jsonl"
PEER_SETTINGS = {"standard": "standard, 250 CCSD(T)",
                 "finetune": "naive --foundation_model fine-tune: pre-train 2000 rMD17 (new labels) + fine-tune 200"}
MODELS = {"egnn": ({"name": "egnn"}, "float32"), "mace": ({"name": "mace", "channels": 32, "max_L": 1}, "float32")}
SM_TEMPERATURE_K = 500.0
OTHER = {"new": "old", "old": "new"}  # multi_head3's third head: the other label set of the rMD17 files


def third_head_labels(labels: str) -> str:
    """The label set of a multi_head3 run's third head: the other rMD17 set than `labels` (a
    label set such as "old+bond9-13" names its base set first)."""
    return OTHER[labels.split("+")[0]]


def accurate_splits(data_dir: Path, molecule: str) -> tuple[Dataset, Dataset, Dataset, Dataset]:
    """training pool (a run on n accurate labels takes its first n: perm[:250], then
    perm[300:500], or perm[300:] where the test set is a file of its own), val, test, and
    every CCSD configuration (for leakage)."""
    data = read_dataset(data_dir / ACCURATE[molecule])
    perm = np.random.default_rng(0).permutation(len(data))
    if molecule in OFFICIAL_TEST:
        test = read_dataset(data_dir / OFFICIAL_TEST[molecule])
        everything, stop = Dataset(list(data) + list(test)), len(perm)
    else:
        test, everything, stop = data.subset(perm[500:]), data, 500
    pool = data.subset(np.concatenate([perm[:250], perm[300:stop]]))
    return pool, data.subset(perm[250:300]), test, everything


def accurate_train(pool: Dataset, n: int) -> Dataset:
    if n > len(pool):
        raise ValueError(f"{n} accurate training labels asked for; the protocol leaves {len(pool)} outside validation and test")
    return pool.subset(range(n))


def cheap_pool(data_dir: Path, molecule: str, ccsd: Dataset | None, cache: Path, labels: str = "new") -> Dataset:
    """The deduplicated, leakage-filtered rMD17 configurations of `molecule` (the kept
    indices of the files' concatenation are cached in `cache`), with the files' new
    (PBE/def2-SVP) or old (PBE+vdW-TS) labels."""
    files = sorted(data_dir.glob(f"rmd17_{molecule}_*.npz"))
    pool = Dataset([c for f in files for c in read_dataset(f, labels=labels)])
    if cache.exists():
        return pool.subset(json.loads(cache.read_text())["kept"])
    duplicates = set(duplicate_indices(pool))
    unique = [i for i in range(len(pool)) if i not in duplicates]
    leaks = set(leaking_indices(pool.subset(unique), ccsd))
    kept = [i for j, i in enumerate(unique) if j not in leaks]
    summary = {"files": [f.name for f in files], "configurations": len(pool), "unique": len(unique),
               "leaks_removed": len(leaks), "kept": kept}
    print(f"{molecule}: " + ", ".join(f"{k} {v}" for k, v in summary.items() if k != "kept" and k != "files"),
          file=sys.stderr)
    cache.write_text(json.dumps(summary))
    return pool.subset(kept)


def cheap_permutation(count: int) -> np.ndarray:
    """The order in which a run draws from the cheap pool: [:N] to train on (nested across N),
    [-100:] to validate on."""
    return np.random.default_rng(0).permutation(count)


CORRUPT_KINDS = {"noise": "x", "scale": "scale"}  # --corrupt-kind -> its mark in the label set's name


def corrupted(pool: Dataset, fraction: float, size: float, kind: str = "noise") -> tuple[Dataset, np.ndarray]:
    """`pool` with known bad cheap labels, and the indices of the bad ones. noise: Gaussian
    noise of `size` eV/Å added to every force component of a random `fraction` of the
    configurations (default_rng(1)); scale: the forces of the `fraction` with the highest
    energies multiplied by 1 + `size`."""
    count = round(fraction * len(pool))
    if kind == "noise":
        rng = np.random.default_rng(1)
        bad = rng.choice(len(pool), count, replace=False)
        change = {i: lambda c: c.forces + rng.normal(0.0, size, c.forces.shape) for i in sorted(bad.tolist())}
    elif kind == "scale":
        bad = np.argsort([c.energy for c in pool], kind="stable")[len(pool) - count:]
        change = {i: lambda c: c.forces * (1.0 + size) for i in bad.tolist()}
    else:
        raise ValueError(f"unknown corruption kind {kind!r}; expected one of {sorted(CORRUPT_KINDS)}")
    return Dataset([c.with_(forces=change[i](c)) if i in change else c for i, c in enumerate(pool)],
                   pool.source, dict(pool.source_units)), np.sort(bad)


def label_set(labels: str, corrupt: list[float] | None, kind: str = "noise",
              bonds: list[tuple[int, int]] | None = None) -> str:
    """A cheap label set's name in the results: "new", "old", e.g. "new+0.25x1" (25 % with
    noise of 1 eV/Å) and "new+0.25scale0.5" (the highest-energy 25 % with forces × 1.5), or
    e.g. "old+bond9-13" (the offset along the bond 9-13 removed, --correct-bonds)."""
    if corrupt:
        return f"{labels}+{corrupt[0]:g}{CORRUPT_KINDS[kind]}{corrupt[1]:g}"
    return labels + "".join(f"+bond{x}-{h}" for x, h in bonds or [])


def measured_bond_offsets(data_dir: Path, molecule: str, labels: str, accurate: Dataset,
                          bonds: list[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """The cheap labels' force offset on each bond's H along the bond (eV/Å, bench/label_bias.py's
    shared_bond_offsets), the median over the rMD17 geometries that are also among `accurate` (a run's
    accurate training labels, so that no validation or test label is used), and their count."""
    cheap, partners, rotations, _ = shared_pairs(data_dir, molecule, labels, ccsd=accurate)
    if not len(partners):
        raise ValueError(f"no {molecule} rMD17 geometry is among the {len(accurate)} accurate training "
                         "configurations: the bond offsets cannot be measured")
    return np.median(shared_bond_offsets(cheap, partners, rotations, bonds), axis=0), len(partners)


def bond_corrected(pool: Dataset, bonds: list[tuple[int, int]], offsets_eV_per_A: np.ndarray) -> Dataset:
    """`pool` with a constant offset c removed from each bond X-H, consistently in energy and
    forces: E' = E + c·r_XH, so F'_H = F_H − c·u and F'_X = F_X + c·u (u the unit vector from X
    to H); the forces stay the exact negative gradient of the energy and sum to the same total."""
    numbers = pool[0].numbers
    for x, h in bonds:
        if not (0 <= x < len(numbers) and 0 <= h < len(numbers)) or numbers[h] != 1:
            raise ValueError(f"bond {x}-{h}: expected atom indices below {len(numbers)} with a hydrogen second")

    def corrected(c):
        energy, forces = c.energy, c.forces.copy()
        for (x, h), offset in zip(bonds, offsets_eV_per_A):
            vector = c.positions[h] - c.positions[x]
            length = np.linalg.norm(vector)
            energy += offset * length
            forces[h] -= offset * vector / length
            forces[x] += offset * vector / length
        return c.with_(energy=energy, forces=forces)

    return Dataset([corrected(c) for c in pool], pool.source, dict(pool.source_units))


def stage_fits(spec: dict) -> tuple[dict, dict]:
    """The recipe overrides of the run's accurate-data stage and of its pre-training (none
    without cheap data): --fit in both, --accurate-fit in the accurate-data stage only."""
    fit = {**spec.get("fit", {}), **spec.get("accurate_fit", {}), "epochs": spec["epochs"], "seed": spec["seed"]}
    pretrain = ({**spec.get("fit", {}), "epochs": spec["pretrain_epochs"], "seed": spec["seed"]}
                if spec["cheap"] else {})
    return fit, pretrain


def recipe_changes(row: dict) -> str:
    """A run's recipe overrides as text, "" for the default recipe: --fit (every stage), then
    --accurate-fit (e.g. "accurate-lr=0.001"). Part of the run's key and folder name, so a run
    with other settings neither stands in for the default one nor is averaged with it."""
    return ",".join([f"{k}={v}" for k, v in sorted(row.get("fit", {}).items())] +
                    [f"accurate-{k}={v}" for k, v in sorted(row.get("accurate_fit", {}).items())])


def run_name(spec: dict) -> str:
    """The run's folder under RESULTS_FOLDER/runs/."""
    plain = [str(v) for k, v in spec.items() if k not in ("fit", "accurate_fit")]
    changes = recipe_changes(spec)
    return "_".join(plain + ([changes] if changes else []))


def run_one(spec: dict, data: dict, args) -> list[dict]:
    """Train one run; returns its rows (two for pretrain_finetune: with and without fine-tuning)."""
    model, dtype = MODELS[spec["backend"]]
    n = spec["cheap"]
    cheap_perm = cheap_permutation(len(data["pool"]))
    cheap, cheap_val = data["pool"].subset(cheap_perm[:n]), data["pool"].subset(cheap_perm[-100:])
    seed = spec["seed"]
    fit, pretrain = stage_fits(spec)
    out = args.results.parent / "runs" / run_name(spec)
    if spec["method"] == "mace_torch_finetune":
        return [peer_finetune(spec, {"cheap": cheap, "cheap_val": cheap_val,
                                     "train": accurate_train(data["train"], spec["accurate"]),
                                     "val": data["val"]}, data["test"], out, dtype)]
    method, more = spec["method"], ()
    if method.startswith("multi_head"):  # one joint stage, as many configuration visits as the others' stages
        fit = {**fit, "epochs": joint_epochs(spec)}
        if method == "multi_head3":  # a third fidelity: the other rMD17 label set, on other geometries
            other = cheap_pool(args.data_dir, spec["molecule"], None, data["cache"], labels=third_head_labels(spec["labels"]))
            more = (other.subset(cheap_perm[n:2 * n]),)
        method = "multi_head"
    config = TrainConfig(method=method, accurate=DataSpec(ACCURATE[spec["molecule"]]), model=model,
                         dtype=dtype, cheap=DataSpec("rMD17") if n else None, gamma_eV_per_A=list(args.gammas),
                         gamma_iqr_fractions=list(args.gamma_iqr_fractions),
                         temperature_K=SM_TEMPERATURE_K, fit=fit, pretrain_fit=pretrain, out=str(out), seed=seed,
                         accurate_repeats=4 if method == "multi_head" else 1)
    train = accurate_train(data["train"], spec["accurate"])
    more_accurate = f"_{spec['accurate']}acc" if spec["accurate"] != 200 else ""  # stage 1 trains on the accurate labels
    shared_bias = (args.results.parent / "runs" /
                   f"{spec['molecule']}_{spec['backend']}_seed{seed}_{spec['epochs']}ep{more_accurate}_bias_identification.ckpt")
    if spec["method"] == "asteroid" and shared_bias.exists():  # stage 1 does not depend on N: train it once
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_bias, out / "bias_identification.ckpt")
    start = time.perf_counter()
    torch.manual_seed(seed)
    final, paths = run_stages(config, Splits(train, data["val"], cheap if n else None, cheap_val if n else None, more),
                              progress=args.progress, resume=True)
    seconds = time.perf_counter() - start
    base = {**spec, **data.get("correction", {}), "seconds": round(seconds, 1),
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if spec["method"] == "asteroid":
        base["gamma_search"] = json.loads((out / "gamma_search.json").read_text())
    rows = [{**base, **_errors(final, data["test"])}]
    if spec["method"] == "asteroid" and not shared_bias.exists():  # stage 1 is standard training on the 200
        shutil.copy(paths["bias_identification"], shared_bias)
        rows.append({**base, "method": "standard", "cheap": 0, "pretrain_epochs": 0, "gamma_search": {},
                     **_errors(load_checkpoint(shared_bias), data["test"])})
    if spec["method"] == "pretrain_finetune":
        rows.append({**base, "method": "cheap_only", **_errors(load_checkpoint(paths["pretrained"]), data["test"])})
    return rows


def peer_finetune(spec: dict, parts: dict, test: Dataset, out: Path, dtype: str) -> dict:
    """mace-torch's naive fine-tune on the same configurations as ours (see the module's docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        write_extxyz(out / f"{name}.extxyz", part)
    start = time.perf_counter()
    run_train("pre", out / "cheap.extxyz", out / "cheap_val.extxyz", spec["pretrain_epochs"], dtype, out,
              seed=spec["seed"])
    run_train("ft", out / "train.extxyz", out / "val.extxyz", spec["epochs"], dtype, out, swa=True,
              foundation=str(out / "pre.model"), seed=spec["seed"])
    seconds = time.perf_counter() - start
    errors = model_errors(out / "ft_stagetwo.model", test, dtype)
    return {**spec, "seconds": round(seconds, 1),
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            **{k: errors[k] for k in ("force_mae_kcal_per_mol_A", "force_mae_meV_per_A", "energy_mae_meV")},
            "configurations": len(test)}


def _errors(model, test: Dataset) -> dict:
    e = evaluate(model, test)
    return {k: e[k] for k in ("force_mae_kcal_per_mol_A", "force_mae_meV_per_A", "energy_mae_meV", "configurations")}


def planned(args) -> list[dict]:
    runs = []
    for molecule, backend, seed in itertools.product(args.molecules, args.backends, args.seeds):
        common = {"molecule": molecule, "backend": backend, "seed": seed, "epochs": args.epochs,
                  **({"fit": args.fit} if args.fit else {}), **({"accurate_fit": args.accurate_fit} if args.accurate_fit else {})}
        label_sets = [label_set(x, args.corrupt, args.corrupt_kind, args.correct_bonds) for x in args.labels]
        for method, labels in itertools.product(args.methods, label_sets):
            sizes = [max(args.cheap_sizes)] if method == "score_matching" else args.cheap_sizes
            if method == "mace_torch_finetune" and backend != "mace":
                continue  # the peer trains MACE only
            specs = [{**common, "method": method, "cheap": n, "accurate": accurate, "labels": labels,
                      "pretrain_epochs": pretrain_epochs(args, n)} for accurate in args.accurate_sizes for n in sizes]
            runs += [{**s, "joint_epochs": matched_joint_epochs(s)} if method.startswith("multi_head") else s
                     for s in specs]
        runs += [{**common, "method": "standard", "cheap": 0, "accurate": n, "labels": "-", "pretrain_epochs": 0}  # the baselines last
                 for n in args.standard_sizes]
    return runs


def key(row: dict) -> tuple:
    """What makes a run (the seed last): rows written before seeds and label sets were recorded
    are seed 0 and "new"; the epochs of its accurate stage and of its pre-training (none without
    cheap data) are part of it, and so are a multi-head run's joint epochs, so that a shorter run
    neither stands in for a longer one nor is averaged with it."""
    labels = "-" if row["method"] == "standard" else row.get("labels", "new")
    return (row["molecule"], row["backend"], row["method"], row["cheap"],
            row.get("accurate", 250 if row["method"] == "standard" else 200), labels,
            row.get("epochs"), row.get("pretrain_epochs") if row["cheap"] else 0, recipe_changes(row),
            joint_epochs(row) if row["method"].startswith("multi_head") else 0, row.get("seed", 0))


def curve(row: dict) -> tuple:
    """The learning curve a row belongs to: rows are compared only within one (molecule, model, epochs)."""
    return row["molecule"], row["backend"], row["epochs"]


def matched_joint_epochs(spec: dict) -> int:
    """Epochs of a multi-head run's one joint stage (each cheap head's configurations once and the
    accurate ones 4× per epoch; multi_head3's third head brings N more) that give it as many
    configuration visits as the two-stage runs' pre-training and accurate stage together."""
    accurate, heads = spec["accurate"], 2 if spec["method"] == "multi_head3" else 1
    visits = spec["pretrain_epochs"] * spec["cheap"] + spec["epochs"] * accurate
    return max(1, round(visits / (heads * spec["cheap"] + 4 * accurate)))


def joint_epochs(spec: dict) -> int:
    """The joint stage's epochs a multi-head run was planned with (recorded as "joint_epochs");
    rows from before they were recorded counted the cheap configurations of one head only, which
    gave multi_head3 runs 1.8× the visits of the others (14 epochs of 4000 + 4000 + 4 × 200)."""
    if "joint_epochs" in spec:
        return spec["joint_epochs"]
    return matched_joint_epochs({**spec, "method": "multi_head"})


def visits_ratio(row: dict) -> float:
    """A row's configuration visits over those of the two-stage runs on its curve (1 but for
    multi-head rows planned with other joint epochs)."""
    return joint_epochs(row) / matched_joint_epochs(row) if row["method"].startswith("multi_head") else 1.0


def trained_as_long_as_the_others(row: dict) -> bool:
    """Whether a row had the configuration visits of the two-stage runs on its curve (within 10 %)."""
    return abs(visits_ratio(row) - 1) < 0.1


def joint_visits_text(row: dict) -> str:
    """The table's epochs cell of a multi-head row."""
    stages = f"{row['pretrain_epochs']} + {row['epochs']}"
    matched = "visits of" if trained_as_long_as_the_others(row) else f"{visits_ratio(row):.1f}× the visits of"
    return f"{joint_epochs(row)} joint ({matched} {stages})"


def pretrain_epochs(args, n_cheap: int) -> int:
    """Pre-training epochs on N cheap configurations: --pretrain-visits / N (none without cheap data)."""
    return max(1, round(args.pretrain_visits / n_cheap)) if n_cheap else 0


def mean_over_seeds(rows: list[dict]) -> list[dict]:
    """One row per run without its seed: the mean, the seeds' min and max, and how many seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(key(r)[:-1], []).append(r)
    merged = []
    for group in groups.values():
        mae = [r["force_mae_kcal_per_mol_A"] for r in group]
        merged.append({**group[0], "labels": key(group[0])[5], "seeds": len(group),
                       "force_mae_kcal_per_mol_A": float(np.mean(mae)), "force_mae_range": (min(mae), max(mae)),
                       "force_mae_meV_per_A": float(np.mean([r["force_mae_meV_per_A"] for r in group])),
                       "energy_mae_meV": float(np.mean([r["energy_mae_meV"] for r in group])),
                       "seconds": float(np.mean([r["seconds"] for r in group]))})
    return merged


def _grid(args) -> str:
    if args.gamma_iqr_fractions:
        return f"{list(args.gamma_iqr_fractions)} × the interquartile range of B"
    return f"{list(args.gammas)} eV/Å"


def table(rows: list[dict], args) -> str:
    lines = [f"Force MAE on the test set, kcal/mol/Å (meV/Å); energy MAE meV. Epochs: of the accurate stage, after "
             f"those of pre-training on the N cheap configurations where there is one (e.g. 10 + 140), the models' default "
             f"recipes (docs/training.md; a run's overrides in brackets after its method), float32, γ grid {_grid(args)} (chosen by validation after "
             f"fine-tuning). Models: {', '.join(f'{k} {v[0]}' for k, v in MODELS.items())}. Wall time on this "
             "2-core machine, one thread per run.", "",
             "Cheap labels: new = rMD17 PBE/def2-SVP, old = the original MD17 PBE+vdW-TS; +bondX-H: with their mean "
             "offset along that bond removed (--correct-bonds), +0.25x1 and the like: corrupted (--corrupt). With "
             "several seeds (model initialisation and batch order), the force MAE is their mean [min–max] and "
             "the time their mean.", "",
             "| molecule | model | method | accurate | cheap | labels | epochs | seeds | force MAE kcal/mol/Å (meV/Å) | "
             "vs standard | energy MAE meV | γ | time min |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = mean_over_seeds(rows)
    for r in sorted(rows, key=lambda r: (r["molecule"], r["backend"], r["epochs"], r["cheap"], r["labels"],
                                         r["method"], -r["accurate"])):
        standard = next((s for s in rows if (curve(s), s["method"], s["accurate"]) == (curve(r), "standard", 250)),
                        None)
        spread = (f" [{r['force_mae_range'][0]:.3f}–{r['force_mae_range'][1]:.3f}]" if r["seeds"] > 1 else "")
        ratio = f"{r['force_mae_kcal_per_mol_A'] / standard['force_mae_kcal_per_mol_A'] - 1:+.0%}" if standard else "-"
        gamma = r.get("gamma_search", {}).get("chosen_gamma_eV_per_A", "-")
        # a "standard, 200" row is stage 1 of the first asteroid run; its time is counted there
        minutes = "(in asteroid)" if r["method"] == "standard" and r["accurate"] == 200 else f"{r['seconds'] / 60:.1f}"
        epochs = f"{r['pretrain_epochs']} + {r['epochs']}" if r["cheap"] else f"{r['epochs']}"
        if r["method"].startswith("multi_head"):
            epochs = joint_visits_text(r)
        cheap = f"{r['cheap']} + {r['cheap']} {third_head_labels(r['labels'])}" if r["method"] == "multi_head3" else r["cheap"]
        method = f"{r['method']} ({recipe_changes(r)})" if recipe_changes(r) else r["method"]
        lines.append(f"| {r['molecule']} | {r['backend']} | {method} | {r['accurate']} | {cheap} | "
                     f"{r['labels']} | {epochs} | {r['seeds']} | {r['force_mae_kcal_per_mol_A']:.3f}{spread} "
                     f"({r['force_mae_meV_per_A']:.1f}) | {ratio} | "
                     f"{r['energy_mae_meV']:.1f} | {gamma} | {minutes} |")
    lines += [""] + sample_efficiency(rows)
    lines += ["", "Paper (Bukharin et al. 2023, Table 3, GemNet, ASTEROID with 200 CCSD(T) + DFT), kcal/mol/Å: " +
              ", ".join(f"{k} {v}" for k, v in PAPER_ASTEROID.items()) + ".",
              peer_anchors()]
    return "\n".join(lines)


def sample_efficiency(rows: list[dict]) -> list[str]:
    """Per molecule, model and accurate-stage epochs: how many accurate labels standard training
    needs to reach the best of our multi-fidelity rows at 200 accurate labels (log-log
    interpolation between the standard rows; a bound where they do not reach it), and that
    count over 200. Only rows trained as long as the others compete (a multi-head run given
    more joint epochs would credit the cheap labels with the extra training)."""
    ours = ("asteroid", "pretrain_finetune", "multi_head", "multi_head3", "score_matching")
    lines = []
    for group in sorted({curve(r) for r in rows}):
        molecule, backend, _ = group
        standard = sorted((r["accurate"], r["force_mae_kcal_per_mol_A"]) for r in rows
                          if (curve(r), r["method"]) == (group, "standard"))
        best = min((r for r in rows if (curve(r), r["accurate"]) == (group, 200) and r["method"] in ours
                    and trained_as_long_as_the_others(r)), key=lambda r: r["force_mae_kcal_per_mol_A"], default=None)
        if best is None or len(standard) < 2:
            continue
        target = best["force_mae_kcal_per_mol_A"]
        reached = next((i for i, (_, mae) in enumerate(standard) if mae <= target), None)
        if reached is None:
            needed = f"more than {standard[-1][0]} (its error there: {standard[-1][1]:.3f})"
            factor = f"> {standard[-1][0] / 200:.2f}"
        elif reached == 0:
            needed, factor = f"at most {standard[0][0]}", f"≤ {standard[0][0] / 200:.2f}"
        else:
            (n0, e0), (n1, e1) = standard[reached - 1], standard[reached]
            n = n0 * (n1 / n0) ** (np.log(target / e0) / np.log(e1 / e0))
            needed, factor = f"{n:.0f} (interpolated between {n0} and {n1})", f"{n / 200:.2f}"
        lines.append(f"Sample efficiency, {molecule} {backend}: standard training needs {needed} accurate labels to "
                     f"reach {best['method']} with 200 + {best['cheap']} ({best['labels']}) at {target:.3f} "
                     f"kcal/mol/Å: factor {factor}.")
    return lines


def learning_curve_figure(rows: list[dict], path: Path) -> bool:
    """Log-log force MAE against accurate labels per molecule and model: the standard runs as a
    black line, every other method (with cheap labels) as points at its accurate counts, joined
    where one method with one cheap set was run at several; False (no figure) where no molecule
    has two standard counts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = mean_over_seeds(rows)
    groups = sorted({curve(r) for r in rows})
    groups = [g for g in groups if len({r["accurate"] for r in rows if curve(r) == g and r["method"] == "standard"}) >= 2]
    if not groups:
        return False
    others = [r for r in rows if r["method"] not in ("standard", "cheap_only")]
    colors = {m: f"C{i}" for i, m in enumerate(sorted({r["method"] for r in others}))}  # the same in every panel
    markers = dict(zip(sorted({r["labels"] for r in others}), "*DsP^vX"))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
    for ax, shown in zip(axes[0], groups):
        mine = [r for r in rows if curve(r) == shown and r["method"] != "cheap_only"]
        standard = sorted((r["accurate"], r["force_mae_kcal_per_mol_A"]) for r in mine if r["method"] == "standard")
        ax.plot(*zip(*standard), "o-", color="k", label="standard (accurate labels only)")
        series: dict[tuple, list] = {}
        for r in mine:
            if r["method"] != "standard":
                series.setdefault((r["method"], r["labels"], r["cheap"]), []).append(
                    (r["accurate"], r["force_mae_kcal_per_mol_A"]))
        most = max(cheap for _, _, cheap in series) if series else 0
        for (method, labels, cheap), points in sorted(series.items()):  # fewer cheap labels: hollow markers
            ax.plot(*zip(*sorted(points)), markers[labels] + "-", markersize=9, color=colors[method],
                    fillstyle="full" if cheap == most else "none", label=f"{method} + {cheap} cheap ({labels})")
        ax.set(xscale="log", yscale="log", xlabel="accurate training labels", ylabel="test force MAE, kcal/mol/Å",
               title=f"{shown[0]}, {shown[1]}, {shown[2]} epochs")
        ax.set_xticks(sorted({r["accurate"] for r in mine}))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2f") if axis is ax.yaxis
                                     else matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def peer_anchors(path: Path = PARITY_RESULTS) -> str:
    """mace-torch's results on ethanol from bench/trainer_parity.py's results file: its newest run per setting."""
    newest = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        row = json.loads(line)
        if row["trainer"] == "mace_run_train":
            newest[row["setting"]] = row
    if not newest:
        return f"(no mace-torch anchor: {path.name} has no mace_run_train row; run bench/trainer_parity.py)"
    return ("mace-torch's trainer (mace_run_train, its default recipe and float64; bench/trainer_parity.py) on "
            "ethanol, same splits, kcal/mol/Å: " + "; ".join(
                f"{PEER_SETTINGS[k]}, {r['epochs']} epochs: {r['force_mae_kcal_per_mol_A']:.3f}"
                for k, r in newest.items()) + ".")


def arguments(argv=None) -> argparse.Namespace:
    """The command line of this benchmark, parsed (fit keys read as YAML)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/md17")
    parser.add_argument("--molecules", nargs="+", default=list(ACCURATE), choices=list(ACCURATE))
    parser.add_argument("--backends", nargs="+", default=["egnn", "mace"], choices=list(MODELS))
    parser.add_argument("--methods", nargs="*", default=["asteroid", "pretrain_finetune", "score_matching"],
                        choices=["asteroid", "pretrain_finetune", "score_matching", "multi_head", "multi_head3",
                                 "mace_torch_finetune"],
                        help="multi_head: CCSD + DFT heads; multi_head3: + a head for the other rMD17 label set "
                             "(other geometries); mace_torch_finetune: mace-torch's naive fine-tune (mace only)")
    parser.add_argument("--cheap-sizes", nargs="+", type=int, default=[1000, 2000, 4000])
    parser.add_argument("--accurate-sizes", nargs="+", type=int, default=[200],
                        help="accurate labels of the runs with cheap data (200: the equal-cost runs; more for the "
                             "data-efficiency curve, the first N of the standard runs' order)")
    parser.add_argument("--gammas", nargs="+", type=float, default=[0.05], help="γ grid, eV/Å")
    parser.add_argument("--gamma-iqr-fractions", nargs="+", type=float, default=[],
                        help="instead of --gammas: γ grid as fractions of the interquartile range of B")
    parser.add_argument("--standard-sizes", nargs="*", type=int, default=[250],
                        help="accurate labels of the standard runs (250: the equal-cost baseline; more for the "
                             "data-efficiency curve, at most 450 where the test set is perm[500:]; none: no "
                             "standard runs)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs of each accurate-data stage")
    parser.add_argument("--pretrain-visits", type=int, default=40000,
                        help="configurations seen in pre-training (epochs = this / N)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="model initialisation and batch order (not the data splits); each seed is a run")
    parser.add_argument("--labels", nargs="+", choices=["new", "old"], default=["new"],
                        help="cheap labels: new = rMD17 PBE/def2-SVP, old = the original MD17 PBE+vdW-TS")
    parser.add_argument("--corrupt", nargs=2, type=float, metavar=("FRACTION", "SIZE"),
                        help="a controlled case: corrupt the force labels of this fraction of the cheap "
                             "configurations (training and validation) by SIZE (see --corrupt-kind)")
    parser.add_argument("--corrupt-kind", choices=list(CORRUPT_KINDS), default="noise",
                        help="noise: Gaussian noise of SIZE eV/Å on a random FRACTION; scale: forces × (1 + SIZE) "
                             "on the FRACTION with the highest cheap energies")
    parser.add_argument("--correct-bonds", nargs="+", type=int, metavar="X H",
                        help="remove the cheap labels' offset along these X-H bonds (pairs of atom indices), "
                             "measured at the rMD17 geometries among the accurate training labels, from energy and "
                             "forces alike (label set e.g. old+bond9-13): does that one bond's label error matter?")
    parser.add_argument("--fit", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override recipe keys in every stage, e.g. rho=0.1 (values read as YAML)")
    parser.add_argument("--accurate-fit", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override recipe keys in the accurate-data stages only (fine-tuning, training from "
                             "scratch, joint), e.g. lr=0.001; pre-training keeps its recipe. Part of the run's key "
                             "and folder name, shown after its method in the table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=Path("bench_results/md17_ccsd.jsonl"))
    parser.add_argument("--section", default="md17-ccsd",
                        help="the docs section --write replaces (one per results file)")
    parser.add_argument("--write", type=Path, help="update this markdown file's MD17@CCSD section")
    parser.add_argument("--table-only", action="store_true", help="only render the table of the results file")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    args.fit, args.accurate_fit = key_values(args.fit), key_values(args.accurate_fit)
    if args.correct_bonds:
        if len(args.correct_bonds) % 2:
            parser.error(f"--correct-bonds takes pairs of atom indices (X H), got {len(args.correct_bonds)} numbers")
        if args.corrupt:
            parser.error("--correct-bonds and --corrupt are two different label sets: give one of them")
        args.correct_bonds = [tuple(args.correct_bonds[i:i + 2]) for i in range(0, len(args.correct_bonds), 2)]
    return args


def main(argv=None) -> int:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    finished = {key(r) for r in done}
    todo = [] if args.table_only else [s for s in planned(args) if key(s) not in finished]
    data = {}
    for spec in todo:
        if args.results.exists() and key(spec) in {key(json.loads(x)) for x in args.results.read_text().splitlines()}:
            continue  # finished by another process on the same results file since this one started
        labels = "new" if spec["labels"] == "-" else spec["labels"]
        if (spec["molecule"], labels) not in data:
            train, val, test, ccsd = accurate_splits(args.data_dir, spec["molecule"])
            cache = args.results.parent / f"cheap_{spec['molecule']}.json"
            pool = cheap_pool(args.data_dir, spec["molecule"], ccsd, cache, labels=labels.split("+")[0])
            if args.corrupt:
                pool, _ = corrupted(pool, *args.corrupt, args.corrupt_kind)
            correction = {}
            if args.correct_bonds:
                offsets, shared = measured_bond_offsets(args.data_dir, spec["molecule"], labels.split("+")[0],
                                                        accurate_train(train, min(args.accurate_sizes)), args.correct_bonds)
                pool = bond_corrected(pool, args.correct_bonds, offsets)
                correction = {"bond_correction": {"bonds": args.correct_bonds, "offsets_eV_per_A": offsets.tolist(),
                                                  "shared_training_geometries": shared}}
                print(f"bond offsets removed from the cheap labels: {correction['bond_correction']}", file=sys.stderr)
            data = {(spec["molecule"], labels): dict(train=train, val=val, test=test,
                                                     pool=pool, cache=cache, correction=correction)}
        print(f"run {spec}", file=sys.stderr, flush=True)
        for row in run_one(spec, data[(spec["molecule"], labels)], args):
            with open(args.results, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            done.append(row)
            print(f"  {row['method']}: {row['force_mae_kcal_per_mol_A']:.3f} kcal/mol/Å "
                  f"({row['seconds'] / 60:.1f} min)", file=sys.stderr, flush=True)
    command = "python bench/md17_ccsd.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(done, args)
    if args.write:
        figure = args.write.parent / "figures" / f"{args.section}_learning_curve.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        if learning_curve_figure(done, figure):
            text += f"\n\n![force MAE against accurate labels]({figure.relative_to(args.write.parent)})"
    report(text, args.section, command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
