"""The one way the benchmarks run the peer, mace-torch's own trainer: the `mace_run_train`
command line for the MACE size every trainer comparison uses (hidden irreps 32x0e + 32x1o,
max_ell 3, correlation 3, 2 interactions, r_max 5 Å; lr 0.01, AMSGrad, EMA 0.99, batch 10,
validation every epoch), with E0s fitted on the training configurations."""

from __future__ import annotations

import json
from pathlib import Path


def e0s_argument(train) -> str:
    """`--E0s` for a Dataset: per-element reference energies (eV) fitted on it, as {Z: E}."""
    from ase_asteroid.data import fit_energy_references
    references = next(iter(fit_energy_references(train).values()))
    return json.dumps({int(z): e for z, e in references.items()}).replace('"', "")


def train_command(name: str, train: Path, valid: Path, e0s: str, epochs: int, dtype: str,
                  work_dir: Path) -> list[str]:
    """mace_run_train for `epochs` epochs on extxyz files with REF_energy/REF_forces (eV, eV/Å)."""
    return ["mace_run_train", "--name", name, "--train_file", str(train), "--valid_file", str(valid),
            "--E0s", e0s, "--model", "MACE", "--hidden_irreps", "32x0e + 32x1o", "--r_max", "5.0",
            "--max_ell", "3", "--correlation", "3", "--num_interactions", "2", "--batch_size", "10",
            "--valid_batch_size", "50", "--max_num_epochs", str(epochs), "--device", "cpu",
            "--default_dtype", dtype, "--energy_key", "REF_energy", "--forces_key", "REF_forces",
            "--eval_interval", "1", "--seed", "0", "--work_dir", str(work_dir), "--lr", "0.01",
            "--amsgrad", "--ema", "--ema_decay", "0.99"]
