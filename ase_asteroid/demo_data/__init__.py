"""The small datasets shipped inside the package (see ethanol/README.md for how they were made).

>>> from ase_asteroid.demo_data import demo_path, load_demo
>>> accurate = load_demo("ethanol_b3lyp")          # 300 B3LYP/6-31G* configurations, eV/Å
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..data import Dataset, read_dataset

MOLECULES = ("ethanol",)


def demo_path(name: str) -> Path:
    """Path of a shipped demo file, e.g. ``demo_path("ethanol_gfn2-xtb")`` (".npz" optional)."""
    molecule = name.split("_")[0]
    filename = name if name.endswith(".npz") else f"{name}.npz"
    path = Path(str(resources.files(__name__) / molecule / filename))
    if molecule not in MOLECULES or not path.exists():
        available = sorted(p.stem for m in MOLECULES
                           for p in Path(str(resources.files(__name__) / m)).glob("*.npz"))
        raise FileNotFoundError(f"no demo dataset {name!r}; available: {', '.join(available)}")
    return path


def load_demo(name: str) -> Dataset:
    """A shipped demo dataset, read like any MD17-style npz (kcal/mol on disk, eV/Å here)."""
    return read_dataset(demo_path(name))
