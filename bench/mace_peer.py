"""The one way the benchmarks run the peer, mace-torch's own trainer: the `mace_run_train`
command line for the MACE size every trainer comparison uses (hidden irreps 32x0e + 32x1o,
max_ell 3, correlation 3, 2 interactions, r_max 5 Å; lr 0.01, AMSGrad, EMA 0.99, batch 10,
validation every epoch), with E0s fitted on the training configurations; and the one way
they evaluate its models."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def e0s_argument(train) -> str:
    """`--E0s` for a Dataset: per-element reference energies (eV) fitted on it, as {Z: E}."""
    from ase_asteroid.data import fit_energy_references
    references = next(iter(fit_energy_references(train).values()))
    return json.dumps({int(z): e for z, e in references.items()}).replace('"', "")


def train_command(name: str, train: Path, valid: Path, e0s: str, epochs: int, dtype: str,
                  work_dir: Path, seed: int = 0) -> list[str]:
    """mace_run_train for `epochs` epochs on extxyz files with REF_energy/REF_forces (eV, eV/Å); run
    through this interpreter, so that it works from a virtualenv that is not activated."""
    return [sys.executable, "-m", "mace.cli.run_train", "--name", name, "--train_file", str(train), "--valid_file", str(valid),
            "--E0s", e0s, "--model", "MACE", "--hidden_irreps", "32x0e + 32x1o", "--r_max", "5.0",
            "--max_ell", "3", "--correlation", "3", "--num_interactions", "2", "--batch_size", "10",
            "--valid_batch_size", "50", "--max_num_epochs", str(epochs), "--device", "cpu",
            "--default_dtype", dtype, "--energy_key", "REF_energy", "--forces_key", "REF_forces",
            "--eval_interval", "1", "--seed", str(seed), "--work_dir", str(work_dir), "--lr", "0.01",
            "--amsgrad", "--ema", "--ema_decay", "0.99"]


def write_extxyz(path: Path, dataset) -> None:
    """`dataset` as extxyz with REF_energy (eV) and REF_forces (eV/Å), what `train_command` reads."""
    from ase_asteroid.labels.runner import write_frames
    frames = []
    for c in dataset:
        atoms = c.to_atoms()
        atoms.info["REF_energy"], atoms.arrays["REF_forces"] = c.energy, c.forces
        frames.append(atoms)
    write_frames(path, frames)


def run_train(name: str, train: Path, valid: Path, epochs: int, dtype: str, work_dir: Path,
              swa: bool = False, foundation: str | None = None, seed: int = 0) -> list:
    """One mace_run_train call (log in work_dir/NAME.log); returns its validation curve as
    [(seconds since its start, validation force MAE eV/Å)]. `swa`: its stage two from 3/4 of
    the epochs; `foundation`: a naive fine-tune of that model (no multi-head replay)."""
    from ase_asteroid.data import read_dataset
    train, valid, work_dir = train.resolve(), valid.resolve(), work_dir.resolve()  # it runs in work_dir
    foundation = str(Path(foundation).resolve()) if foundation else None
    command = train_command(name, train, valid, e0s_argument(read_dataset(train)), epochs, dtype, work_dir, seed)
    if swa:
        command += ["--swa", "--start_swa", str(epochs * 3 // 4)]
    if foundation:
        command += ["--foundation_model", foundation, "--multiheads_finetuning", "False"]
    log = work_dir / "results" / f"{name}_run-0_train.txt"
    log.unlink(missing_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    curve, seen, start = [], 0, time.perf_counter()
    with open(work_dir / f"{name}.log", "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=work_dir)
        try:
            while process.poll() is None or seen < _eval_lines(log, 0)[1]:
                lines, seen = _eval_lines(log, seen)
                curve += [(time.perf_counter() - start, line["mae_f"]) for line in lines]
                time.sleep(1)
        finally:  # interrupted (Ctrl-C): no orphaned trainer left writing into work_dir
            if process.poll() is None:
                process.kill()
                process.wait()
    if process.returncode:
        raise RuntimeError(f"mace-torch's trainer failed; see {work_dir / f'{name}.log'}")
    return curve


def _eval_lines(log: Path, seen: int) -> tuple[list, int]:
    if not log.exists():
        return [], 0
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    evals = [x for x in lines if x.get("mode") == "eval" and x.get("mae_f") is not None]
    return evals[seen:], len(evals)


def model_errors(model_path: Path, test, dtype: str) -> dict:
    """Force and energy MAE of a model written by mace_run_train on a Dataset, through
    mace-torch's own calculator: meV/Å, meV, kcal/mol/Å and kcal/mol."""
    import numpy as np
    import torch

    from ase_asteroid.models.mace_import import import_mace

    import_mace()  # mace before e3nn, without leaving torch.load unsafe for the rest of the run
    from mace.calculators import MACECalculator

    # mace_run_train writes a pickled model: this run's own file, so it is loaded with the unpickler on purpose
    peer = torch.load(model_path, map_location="cpu", weights_only=False)
    calc = MACECalculator(models=peer, device="cpu", default_dtype=dtype)
    force_errors, energy_errors = [], []
    for c in test:
        atoms = c.to_atoms()
        atoms.calc = calc
        force_errors.append(np.abs(atoms.get_forces() - c.forces).ravel())
        energy_errors.append(abs(atoms.get_potential_energy() - c.energy))
    return error_summary(float(np.mean(np.concatenate(force_errors))), float(np.mean(energy_errors)))


def error_summary(force_mae_eV_per_A: float, energy_mae_eV: float) -> dict:
    from ase_asteroid import units
    return {"force_mae_meV_per_A": 1000 * force_mae_eV_per_A, "energy_mae_meV": 1000 * energy_mae_eV,
            "force_mae_kcal_per_mol_A": float(units.from_eV_per_A(force_mae_eV_per_A, "kcal/mol/Å")),
            "energy_mae_kcal_per_mol": float(energy_mae_eV / units.energy_factor("kcal/mol"))}
