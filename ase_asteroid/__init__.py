"""ase_asteroid: accurate machine-learning force fields from many cheap and a few accurate
labels (ASTEROID), served as ASE calculators.

>>> from ase_asteroid import AsteroidCalculator
>>> atoms.calc = AsteroidCalculator("model.ckpt")
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the torch-heavy parts on first use, so ``asteroid data info`` starts fast."""
    if name == "AsteroidCalculator":
        from .calculator import AsteroidCalculator

        return AsteroidCalculator
    if name in ("load_checkpoint", "save_checkpoint"):
        from . import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'ase_asteroid' has no attribute {name!r}")


__all__ = ["AsteroidCalculator", "__version__", "load_checkpoint", "save_checkpoint"]
