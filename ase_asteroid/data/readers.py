"""Readers for sGDML/MD17 npz, rMD17 npz, extxyz and ASE databases.

Every reader converts to eV and Å on the way in, records the source units, labels each
configuration with a fidelity, and fails with a :class:`DataError` that names the file
and the problem (missing keys, mismatched shapes, non-finite values, unknown elements).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from .. import units
from .dataset import Configuration, DataError, Dataset
from .plausibility import warn_if_implausible

#: MD17-family npz files store kcal/mol and kcal/mol/Å.
MD17_UNITS = {"energy": "kcal/mol", "forces": "kcal/mol/Å", "positions": "Å"}
ASE_UNITS = {"energy": "eV", "forces": "eV/Å", "positions": "Å"}

_SGDML_KEYS = ("R", "z", "E", "F")
_RMD17_KEYS = ("coords", "nuclear_charges", "energies", "forces")
#: rMD17 labels: "new" is the recomputed PBE/def2-SVP; "old" the original MD17 PBE+vdW-TS.
RMD17_LABELS = {"new": ("energies", "forces", "pbe/def2-svp"),
                "old": ("old_energies", "old_forces", "pbe+vdw-ts")}


def read_dataset(path, *, fidelity: str | None = None, energy_unit: str | None = None,
                 force_unit: str | None = None, labels: str = "new", index=":") -> Dataset:
    """Read any supported file into a :class:`Dataset` in eV and Å.

    path: ``.npz`` (sGDML keys R, z, E, F or rMD17 keys coords, nuclear_charges,
    energies, forces), or anything ase.io reads (extxyz, ASE ``.db``, ...).
    fidelity: label for every configuration; default from the file (sGDML ``theory``,
    extxyz ``info["fidelity"]``), then ``"unknown"``.
    energy_unit/force_unit: units in the file; default kcal/mol(/Å) for npz, eV(/Å) otherwise.
    When a unit is assumed (not given), a UnitWarning says if the labels look like another
    unit (data/plausibility.py), e.g. an npz written in eV.
    labels: rMD17 only, ``"new"`` (PBE/def2-SVP) or ``"old"`` (original MD17 PBE+vdW-TS).
    index: ase.io index for non-npz files.
    ``demo:NAME`` reads a dataset shipped with the package (ase_asteroid.demo_data).
    """
    if str(path).startswith("demo:"):
        from ..demo_data import demo_path
        try:
            path = demo_path(str(path).removeprefix("demo:"))
        except FileNotFoundError as error:
            raise DataError(str(error)) from error
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    npz = path.suffix == ".npz"
    e_unit, f_unit = energy_unit or ("kcal/mol" if npz else "eV"), force_unit or ("kcal/mol/Å" if npz else "eV/Å")
    for unit, factor in ((e_unit, units.energy_factor), (f_unit, units.force_factor)):
        try:
            factor(unit)
        except ValueError as error:
            raise DataError(f"{path}: {error}") from None
    data = (read_npz(path, fidelity=fidelity, energy_unit=e_unit, force_unit=f_unit, labels=labels) if npz else
            read_ase(path, fidelity=fidelity, energy_unit=e_unit, force_unit=f_unit, index=index))
    if energy_unit is None or force_unit is None:
        warn_if_implausible(data, str(path), e_unit, f_unit)
    return data


def read_npz(path, *, fidelity=None, energy_unit="kcal/mol", force_unit="kcal/mol/Å",
             labels="new") -> Dataset:
    """sGDML/MD17 or rMD17 npz (the layout is detected from the keys)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: not a readable npz file ({error})") from error
    if all(k in arrays for k in _SGDML_KEYS):
        numbers, coords = arrays["z"], arrays["R"]
        energies, forces = arrays["E"], arrays["F"]
        fidelity = fidelity or _theory_label(arrays.get("theory")) or _name_label(path)
    elif all(k in arrays for k in _RMD17_KEYS):
        if labels not in RMD17_LABELS:
            raise DataError(f"{path}: labels must be one of {sorted(RMD17_LABELS)}, got {labels!r}")
        e_key, f_key, default_fidelity = RMD17_LABELS[labels]
        _require(path, arrays, (e_key, f_key))
        numbers, coords = arrays["nuclear_charges"], arrays["coords"]
        energies, forces = arrays[e_key], arrays[f_key]
        fidelity = fidelity or default_fidelity
    else:
        raise DataError(f"{path}: neither an sGDML/MD17 file (keys {', '.join(_SGDML_KEYS)}) nor "
                        f"an rMD17 file (keys {', '.join(_RMD17_KEYS)}); found keys {sorted(arrays)}")
    configs = _configs_from_arrays(path, numbers, coords, energies, forces,
                                   fidelity or "unknown", energy_unit, force_unit)
    return Dataset(configs, str(path), {"energy": energy_unit, "forces": force_unit, "positions": "Å"})


def _require(path, arrays, keys) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}; found {sorted(arrays)}")


def _theory_label(theory) -> str | None:
    """'CCSD(T)/cc-pVTZ' or 'Psi4: CCSD(T), cc-pVTZ' -> 'ccsd(t)'; empty or absent -> None."""
    if theory is None or not np.size(theory):
        return None
    text = np.asarray(theory).reshape(-1)[0]
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    method = re.split(r"[,/]", text.split(":", 1)[-1])[0]   # 'Psi4: CCSD(T), cc-pVTZ'
    return method.strip().lower() or None


def _name_label(path: Path) -> str | None:
    """sGDML file names say the level when the theory field is empty (aspirin_ccsd-train)."""
    name = path.name.lower()
    for hint, label in (("ccsd_t", "ccsd(t)"), ("ccsd", "ccsd")):
        if hint in name:
            return label
    return None


def _configs_from_arrays(path, numbers, coords, energies, forces, fidelity,
                         energy_unit, force_unit) -> list[Configuration]:
    numbers = np.asarray(numbers).astype(np.int64).reshape(-1)
    coords = np.asarray(coords, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    forces = np.asarray(forces, dtype=np.float64)
    n_atoms = len(numbers)
    n_frames = coords.shape[0] if coords.ndim == 3 else -1
    expected = {"positions": (coords.shape, (n_frames, n_atoms, 3)),
                "forces": (forces.shape, (n_frames, n_atoms, 3)),
                "energies": (energies.shape, (n_frames,))}
    for name, (got, want) in expected.items():
        if n_frames < 0 or got != want:
            raise DataError(f"{path}: {name} have shape {got}, expected {want} "
                            f"for {n_atoms} atoms per configuration")
    check_elements(path, numbers)
    for name, values in (("positions", coords), ("energies", energies), ("forces", forces)):
        check_finite(path, name, values)
    energies_eV = units.to_eV(energies, energy_unit)
    forces_eV = units.to_eV_per_A(forces, force_unit)
    return [Configuration(numbers, coords[i], float(energies_eV[i]), forces_eV[i], fidelity)
            for i in range(n_frames)]


def check_elements(path, numbers) -> None:
    """DataError if any atomic number is outside 1..118."""
    bad = sorted({int(z) for z in np.asarray(numbers).reshape(-1) if not 1 <= z <= 118})
    if bad:
        raise DataError(f"{path}: unknown element(s) with atomic number {bad}")


def check_finite(path, name: str, values) -> None:
    """DataError naming the first configuration with a NaN or inf in `values`."""
    values = np.asarray(values, dtype=np.float64)
    if np.isfinite(values).all():
        return
    bad = np.argwhere(~np.isfinite(values))[0]
    raise DataError(f"{path}: non-finite {name} (first at index {tuple(int(i) for i in bad)})")


def read_ase(path, *, fidelity=None, energy_unit="eV", force_unit="eV/Å", index=":") -> Dataset:
    """Anything ase.io reads (extxyz, ASE db, ...). Labels from the attached calculator
    or from ``info["energy"]``/``arrays["forces"]``; fidelity and weight from ``info``."""
    import ase.io

    path = Path(path)
    try:
        frames = ase.io.read(path, index=index)
    except Exception as error:  # ase raises many types for unreadable files
        raise DataError(f"{path}: ase.io could not read it ({type(error).__name__}: {error})") from error
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise DataError(f"{path}: contains no configurations")
    configs = [_config_from_atoms(path, i, atoms, fidelity, energy_unit, force_unit)
               for i, atoms in enumerate(frames)]
    return Dataset(configs, str(path), {"energy": energy_unit, "forces": force_unit, "positions": "Å"})


def _config_from_atoms(path, i, atoms, fidelity, energy_unit, force_unit) -> Configuration:
    where = f"{path} (configuration {i})"
    energy, forces = _labels_of(atoms)
    check_elements(where, atoms.numbers)
    check_finite(where, "positions", atoms.positions)
    if energy is not None:
        check_finite(where, "energy", energy)
        energy = float(units.to_eV(energy, energy_unit))
    if forces is not None:
        if forces.shape != (len(atoms), 3):
            raise DataError(f"{where}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
        check_finite(where, "forces", forces)
        forces = units.to_eV_per_A(forces, force_unit)
    periodic = bool(atoms.pbc.any())
    return Configuration(
        numbers=atoms.numbers.astype(np.int64), positions=atoms.positions.astype(np.float64),
        energy=energy, forces=forces,
        fidelity=fidelity or str(atoms.info.get("fidelity", "unknown")),
        weight=float(atoms.info.get("weight", 1.0)),
        cell=np.array(atoms.cell.array) if periodic else None,
        pbc=tuple(bool(p) for p in atoms.pbc))


def _labels_of(atoms):
    """(energy, forces) from a single-point calculator or from info/arrays; None if absent."""
    energy = atoms.info.get("energy")
    forces = atoms.arrays.get("forces")
    calc = atoms.calc
    if calc is not None:
        results = getattr(calc, "results", {})
        energy = results.get("energy", energy)
        forces = results.get("forces", forces)
    return energy, (None if forces is None else np.asarray(forces, dtype=np.float64))
