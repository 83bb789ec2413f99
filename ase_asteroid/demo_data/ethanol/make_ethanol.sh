#!/usr/bin/env bash
# Regenerate the embedded ethanol demo dataset (see README.md here). Needs the data extra:
#   pip install -e ".[data]"
# Run from this folder. The DFT step dominates (about 6 CPU-s per label here).
set -euo pipefail
workers=${WORKERS:-2}
raw=${RAW:-raw}
mkdir -p "$raw"

# configurations: GAFF2 Langevin MD at 500 K (0.5 fs steps, a frame every 20 steps = 10 fs)
asteroid data sample --smiles "CCO" --method gaff2-md --temperature-K 500 --n 4000 --every 20 --seed 0 --out "$raw/configs.extxyz" --overwrite
asteroid data sample --smiles "CCO" --method gaff2-md --temperature-K 500 --n 100 --every 20 --seed 1 --out "$raw/test_configs.extxyz" --overwrite

for part in configs test_configs; do
  asteroid data label "$raw/$part.extxyz" --method gaff2 --out "$raw/${part}_gaff2.extxyz" --overwrite
  asteroid data label "$raw/$part.extxyz" --method gfn2-xtb --out "$raw/${part}_gfn2-xtb.extxyz" --overwrite
done
# accurate labels: 300 of the training trajectory, and the whole held-out test trajectory
asteroid data label "$raw/configs.extxyz" --method "pyscf:b3lyp/6-31g*" --subset 300 --seed 0 --workers "$workers" --out "$raw/configs_b3lyp.extxyz" --append
asteroid data label "$raw/test_configs.extxyz" --method "pyscf:b3lyp/6-31g*" --workers "$workers" --out "$raw/test_configs_b3lyp.extxyz" --append

python pack.py "$raw"
