"""GFN1-xTB and GFN2-xTB through tblite (Grimme's semi-empirical tight binding)."""

from __future__ import annotations

from .base import Labeler, LabelError, check_elements

_METHODS = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB"}


class XTBLabeler(Labeler):
    """tblite's ASE calculator; elements H-Rn (Z 1-86)."""

    def __init__(self, method: str = "gfn2-xtb", charge: int = 0) -> None:
        if method not in _METHODS:
            raise LabelError(f"unknown xTB method {method!r}; choose from {sorted(_METHODS)}")
        self.method = self.fidelity = method
        self.level_of_theory = _METHODS[method]
        self.charge = charge

    def prepare(self, atoms) -> None:
        check_elements(atoms, set(range(1, 87)), self.method)

    def make_calculator(self):
        try:
            from tblite.ase import TBLite
        except ImportError as error:
            raise LabelError("xTB labels need tblite: pip install 'ase_asteroid[data]'") from error
        return TBLite(method=self.level_of_theory, charge=self.charge, verbosity=0)

    def label(self, atoms):
        """(energy eV, forces eV/Å). tblite's calculator starts each SCF from the previous
        structure's wavefunction; resetting it first makes every SCF start from the same
        guess, so labels do not depend on the order, the number of workers or a resume."""
        self.calculator.reset()
        return super().label(atoms)
