"""Train a force field on the embedded ethanol demo data and save it.

    python examples/train_on_demo.py --fidelity gfn2-xtb --n-train 1000 --epochs 30 --out ethanol_xtb.ckpt
    asteroid-md stability ethanol_xtb.ckpt --calculator gfn2-xtb --molecule ethanol.xyz

This uses the plain fit() loop with the backend's default recipe for training from scratch (no ASTEROID stages: those are `asteroid train`'s job). The
validation set is 100 configurations of the same trajectory; the test set is the held-out
trajectory (100 configurations) at the same fidelity.
"""

from __future__ import annotations

import argparse

import torch

from ase_asteroid import save_checkpoint, units
from ase_asteroid.data import fit_energy_references, force_rms, split
from ase_asteroid.demo_data import load_demo
from ase_asteroid.graph import average_num_neighbors
from ase_asteroid.models import EGNNConfig, MACEConfig, build_model
from ase_asteroid.training import errors, fit
from ase_asteroid.training.recipes import recipe


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["egnn", "mace"], default="egnn")
    parser.add_argument("--fidelity", choices=["gfn2-xtb", "gaff2", "b3lyp"], default="gfn2-xtb")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="ethanol.ckpt")
    args = parser.parse_args(argv)

    data = load_demo(f"ethanol_{args.fidelity}")
    n_val = min(100, len(data) // 5)
    train, val = split(data, [min(args.n_train, len(data) - n_val), n_val], seed=0)
    config = (MACEConfig if args.backend == "mace" else EGNNConfig)(
        species=train.species, avg_num_neighbors=average_num_neighbors(train, 5.0))
    model = build_model(config, seed=0, dtype=torch.float32)
    model.set_normalization(fit_energy_references(train), scale=force_rms(train))
    model, record = fit(model, train, val, recipe(args.backend, "scratch", {"epochs": args.epochs}))
    save_checkpoint(model, args.out, data_hashes={"train": train.content_hash(), "val": val.content_hash()})
    test = errors(model, load_demo(f"ethanol_test_{args.fidelity}"))
    force = test["force_mae_eV_per_A"]
    kcal = float(units.from_eV_per_A(force, "kcal/mol/Å"))
    print(f"{args.backend} on {len(train)} {args.fidelity} configurations, {args.epochs} epochs: test force MAE "
          f"{1000 * force:.1f} meV/Å ({kcal:.3f} kcal/mol/Å), energy MAE {1000 * test['energy_mae_eV']:.1f} meV"
          f"; saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
