"""``asteroid quickstart``: standard training, ASTEROID, and pre-training + fine-tuning without
bias weights (the ablation), at equal data cost on the demo data, each with the default recipes.

Accurate: the demo's 300 B3LYP/6-31G* ethanol configurations, split with
``default_rng(0).permutation(300)``: standard trains on [:250], ASTEROID on [:200], both
validate on [250:300]. Cheap: the 4000 GFN2-xTB configurations (100 of them for validation
of pre-training). Test: the 100 B3LYP configurations of the held-out trajectory. Equal cost:
with a B3LYP label worth `cost_ratio` GFN2-xTB labels (measured ~1000-1250 here), the
50 accurate labels ASTEROID gives up buy 50 x cost_ratio cheap ones, more than the 4000
it uses.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import units
from ..data import split_indices
from ..demo_data import load_demo
from .config import TrainConfig, config_from_values
from .loop import errors
from .pipeline import Splits, run_stages


def _row(name: str, model, test, n_accurate: int, n_cheap: int, seconds: float) -> dict:
    e = errors(model, test)
    return {"model": name, "accurate": n_accurate, "cheap": n_cheap,
            "force_mae_meV_per_A": 1000 * e["force_mae_eV_per_A"],
            "force_mae_kcal_per_mol_A": float(units.from_eV_per_A(e["force_mae_eV_per_A"], "kcal/mol/Å")),
            "energy_mae_meV": 1000 * e["energy_mae_eV"], "seconds": seconds}


#: The compared methods: (method, uses the cheap data).
METHODS = (("standard", False), ("asteroid", True), ("pretrain_finetune", True))


def quickstart_configs(out: Path, epochs: int, pretrain_epochs: int, gamma_eV_per_A: float,
                       seed: int) -> list[TrainConfig]:
    """The TrainConfig of each of METHODS, built from the plain values a training YAML would
    hold (config_from_values), so quickstart is checked exactly as `asteroid train` is."""
    values = {"accurate": {"path": "demo:ethanol_b3lyp", "train": 250}, "model": {"name": "egnn"},
              "gamma_eV_per_A": gamma_eV_per_A, "fit": {"epochs": epochs, "seed": seed},
              "pretrain_fit": {"epochs": pretrain_epochs, "seed": seed}, "seed": seed}
    return [config_from_values({**values, "method": method, "out": str(out / method),
                                "cheap": {"path": "demo:ethanol_gfn2-xtb"} if uses_cheap else None},
                               where="quickstart") for method, uses_cheap in METHODS]


def run_quickstart(out_dir="quickstart", epochs: int = 100, pretrain_epochs: int = 8, gamma_eV_per_A: float = 0.05,
                   cost_ratio: float = 1000.0, seed: int = 0, progress: bool = True) -> list[dict]:
    """Train both models (checkpoints in `out_dir`/standard and `out_dir`/asteroid, one per stage)
    and write a figure (parity plots and learning curves); return the table rows."""
    out = Path(out_dir)
    configs = quickstart_configs(out, epochs, pretrain_epochs, gamma_eV_per_A, seed)  # checked before any data
    out.mkdir(parents=True, exist_ok=True)
    accurate, cheap, test = load_demo("ethanol_b3lyp"), load_demo("ethanol_gfn2-xtb"), load_demo("ethanol_test_b3lyp")
    train_idx, val_idx = split_indices(len(accurate), [250, 50], seed)
    train_std, train_ast, val = accurate.subset(train_idx), accurate.subset(train_idx[:200]), accurate.subset(val_idx)
    cheap_train, cheap_val = cheap.subset(range(100, len(cheap))), cheap.subset(range(100))
    if 50 * cost_ratio < len(cheap_train):
        cheap_train = cheap_train.subset(range(int(50 * cost_ratio)))
    runs = [("standard", Splits(train_std, val), 250, 0),          # in the order of METHODS
            (f"asteroid (gamma {gamma_eV_per_A} eV/Å)", Splits(train_ast, val, cheap_train, cheap_val),
             200, len(cheap_train)),
            ("pre-train + fine-tune, no bias weights", Splits(train_ast, val, cheap_train, cheap_val),
             200, len(cheap_train))]
    rows, models = [], []
    for config, (name, splits, n_accurate, n_cheap) in zip(configs, runs):
        start = time.perf_counter()
        model, _ = run_stages(config, splits, progress)
        rows.append(_row(name, model, test, n_accurate, n_cheap, time.perf_counter() - start))
        models.append(model)
    _plot(models[0], models[1], test, out, out / "parity.png")
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| model | accurate | cheap | force MAE meV/Å | kcal/mol/Å | energy MAE meV | time s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['accurate']} | {r['cheap']} | {r['force_mae_meV_per_A']:.1f} | "
              f"{r['force_mae_kcal_per_mol_A']:.3f} | {r['energy_mae_meV']:.1f} | {r['seconds']:.0f} |" for r in rows]
    return "\n".join(lines)


def _plot(baseline, tuned, test, out: Path, path: Path) -> None:
    """Parity plots of both models on the test set, and the learning curves of every stage."""
    from ..figures import parity_axes, pyplot, save_figure

    batch = baseline.batch_of(test)
    reference = batch.forces.numpy().ravel()
    fig, axes = pyplot().subplots(1, 3, figsize=(12, 4))
    for ax, (name, model) in zip(axes, (("standard", baseline), ("ASTEROID", tuned))):
        predicted = model(batch)["forces"].detach().numpy().ravel()
        parity_axes(ax, reference, predicted, name, "B3LYP force component (eV/Å)")
    curves = axes[2]
    for run, stages in (("standard", ["standard"]), ("asteroid", ["bias_identification", "pretrained", "fine_tuned"])):
        for stage in stages:
            log = out / run / f"{stage}_epochs.json"
            if log.exists():
                history = json.loads(log.read_text())
                label = f"{run}: {stage}" + (" (cheap val)" if stage == "pretrained" else "")
                curves.plot([h["epoch"] for h in history], [1000 * h["force_mae_eV_per_A"] for h in history],
                            label=label)
    curves.set_yscale("log")
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation force MAE (meV/Å)")
    curves.legend(fontsize=7)
    save_figure(fig, path)
