"""What each ingredient of a training recipe is worth: one training run per variant, on the
MD17@CCSD(T) ethanol protocol, standard training from scratch.

    python bench/recipe_study.py --name b5_cosine --backend mace --fit batch_size=5 schedule=cosine
    python bench/recipe_study.py --table-only --write docs/training.md

Data (../shared/DESIGN.md): perm = default_rng(0).permutation(1000) of the ethanol CCSD(T)
file; train perm[:250], validation perm[250:300], test perm[500:]. Each variant is the
backend's recipe from scratch (ase_asteroid/training/recipes.py) with the given keys
overridden (``--fit KEY=VALUE``, values read as YAML; ``--model KEY=VALUE`` for the model's
size). One thread per run; rows are appended to ``--results`` as runs finish, so variants can
run side by side in separate processes. The table gives the full FitConfig difference of
each row from the current recipe, so rows stay readable when the recipe changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from docs_section import report
from overrides import key_values

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "md17" / "ethanol_ccsd_t-train.npz"
MODELS = {"mace": {"name": "mace", "channels": 32, "max_L": 1}, "egnn": {"name": "egnn"}}


def run(args) -> dict:
    import torch

    from ase_asteroid.data import read_dataset
    from ase_asteroid.evaluation import evaluate
    from ase_asteroid.models import config_from_dict
    from ase_asteroid.training.loop import fit
    from ase_asteroid.training.recipes import recipe
    from ase_asteroid.training.stages import new_model

    torch.set_num_threads(1)
    data = read_dataset(args.data)
    perm = np.random.default_rng(0).permutation(len(data))
    train, val, test = data.subset(perm[:250]), data.subset(perm[250:300]), data.subset(perm[500:])
    model_keys = {**MODELS[args.backend], **key_values(args.model)}
    config = recipe(args.backend, "scratch", key_values(args.fit))
    model = new_model(config_from_dict({"species": train.species, **model_keys}), train, None, config.seed,
                      getattr(torch, args.dtype))
    start = time.perf_counter()
    model, record = fit(model, train, val, config, progress=args.progress)
    seconds = time.perf_counter() - start
    e = evaluate(model, test)
    return {"name": args.name, "backend": args.backend, "dtype": args.dtype, "model": model_keys,
            "fit": asdict(config), "seconds": round(seconds, 1),
            "force_mae_kcal_per_mol_A": e["force_mae_kcal_per_mol_A"], "force_mae_meV_per_A": e["force_mae_meV_per_A"],
            "energy_mae_meV": e["energy_mae_meV"],
            "val_force_mae_meV_per_A": [round(1000 * h["force_mae_eV_per_A"], 2) for h in record["history"]]}


def table(rows: list[dict]) -> str:
    from ase_asteroid.training.recipes import RECIPES

    lines = ["| backend | variant | differs from today's recipe | epochs | test force MAE kcal/mol/Å (meV/Å) | "
             "energy MAE meV | final val force MAE meV/Å | time min |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["backend"], r["force_mae_kcal_per_mol_A"])):
        current = asdict(RECIPES[f"{r['backend']}-scratch"])
        diff = {k: v for k, v in r["fit"].items() if current.get(k) != v and k != "epochs"}
        size = {k: v for k, v in r["model"].items() if MODELS[r["backend"]].get(k) != v}
        changes = ", ".join(f"{k}={v}" for k, v in {**size, **diff}.items()) or "(the recipe)"
        lines.append(f"| {r['backend']} {r['dtype']} | {r['name']} | {changes} | {r['fit']['epochs']} | "
                     f"{r['force_mae_kcal_per_mol_A']:.3f} ({r['force_mae_meV_per_A']:.1f}) | {r['energy_mae_meV']:.1f} | "
                     f"{r['val_force_mae_meV_per_A'][-1]:.1f} | {r['seconds'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", help="the variant's name in the table")
    parser.add_argument("--backend", choices=list(MODELS), default="mace")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--fit", nargs="*", default=[], metavar="KEY=VALUE", help="recipe keys to override")
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE", help="model keys (e.g. channels=128)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--results", type=Path, default=Path("bench_results/recipe_study.jsonl"))
    parser.add_argument("--write", type=Path, help="update this markdown file's recipe-study section")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.table_only:
        if not args.name:
            parser.error("--name is required unless --table-only")
        row = run(args)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as handle:
            handle.write(json.dumps(row) + "\n")
    rows = [json.loads(x) for x in args.results.read_text().splitlines()] if args.results.exists() else []
    command = "python bench/recipe_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report(table(rows), "recipe-study", command, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
