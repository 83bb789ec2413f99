"""File-level entry points behind ``asteroid data sample`` and ``asteroid data label``."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from ..data import read_dataset
from .base import LabelError
from .runner import LabelReport, write_frames, label_configurations

SAMPLERS = ("gaff2-md", "normal-modes", "md")


def read_structures(path) -> list[Atoms]:
    """All structures of a file ``read_dataset`` reads (extxyz, npz, db, ...), as ase.Atoms."""
    return [config.to_atoms() for config in read_dataset(path)]


def sample_to_file(out, method: str, n: int, temperature_K: float, *, smiles: str | None = None,
                   xyz: str | None = None, calculator: str = "gfn2-xtb", every: int = 20,
                   timestep_fs: float = 0.5, seed: int = 0, charge: int = 0, overwrite: bool = False,
                   progress: bool = True) -> list[Atoms]:
    """Sample `n` configurations of a molecule (SMILES or the first frame of `xyz`) into `out`."""
    from . import get_labeler, samplers
    from .gaff2 import atoms_from_rdkit, rdkit_molecule

    out = Path(out)
    if method not in SAMPLERS:
        raise LabelError(f"unknown sampling method {method!r}; choose from {', '.join(SAMPLERS)}")
    if (smiles is None) == (xyz is None):
        raise LabelError("give exactly one of --smiles and --xyz")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite to replace it")
    atoms = read_structures(xyz)[0] if xyz else None
    if method == "gaff2-md":
        mol = rdkit_molecule(smiles=smiles, atoms=atoms, charge=charge, seed=seed)
        frames = samplers.sample_gaff2_md(mol, n, temperature_K, every, timestep_fs, seed=seed,
                                          charge=charge, progress=progress)
    else:
        atoms = atoms if atoms is not None else atoms_from_rdkit(rdkit_molecule(smiles=smiles, seed=seed))
        labeler = get_labeler(calculator, charge)
        if method == "normal-modes":
            frames = samplers.sample_normal_modes(atoms, labeler, n, temperature_K, seed, progress=progress)
        else:
            frames = samplers.sample_labeler_md(atoms, labeler, n, temperature_K, every, timestep_fs,
                                                seed=seed, progress=progress)
    for index, frame in enumerate(frames):
        frame.info.update(sampler=method, temperature_K=temperature_K, seed=seed, frame=index)
    write_frames(out, frames)
    return frames


def label_file(path, method: str, out, *, subset: int | None = None, seed: int = 0, workers: int = 1,
               scheduler: str | None = None, mode: str = "new", charge: int = 0,
               progress: bool = True) -> LabelReport:
    """Label the structures of `path` with `method` into the extxyz file `out`."""
    from . import get_labeler

    labeler = get_labeler(method, charge)
    return label_configurations(read_structures(path), labeler, out, subset=subset, seed=seed,
                                workers=workers, scheduler=scheduler, mode=mode, progress=progress)
