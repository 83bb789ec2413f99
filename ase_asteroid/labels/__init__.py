"""Labelers (levels of theory) and samplers (where configurations come from).

``get_labeler("gfn2-xtb" | "gfn1-xtb" | "gaff2" | "lj" | "pyscf:METHOD/BASIS")``.
"""

from __future__ import annotations

from .base import Labeler, LabelError

METHODS = ("gfn2-xtb", "gfn1-xtb", "gaff2", "lj", "pyscf:METHOD/BASIS")


def get_labeler(method: str, charge: int = 0) -> Labeler:
    """The labeler for a method name; LabelError naming the known ones otherwise."""
    name = method.strip().lower()
    if name in ("gfn2-xtb", "gfn1-xtb"):
        from .xtb import XTBLabeler
        return XTBLabeler(name, charge)
    if name == "gaff2":
        from .gaff2 import GAFF2Labeler
        return GAFF2Labeler(charge)
    if name == "lj":
        from .lj import LJLabeler
        return LJLabeler()
    if name.startswith("pyscf:"):
        from .pyscf_labeler import PySCFLabeler
        return PySCFLabeler(name, charge)
    raise LabelError(f"unknown labelling method {method!r}; known: {', '.join(METHODS)}")


__all__ = ["METHODS", "LabelError", "Labeler", "get_labeler"]
