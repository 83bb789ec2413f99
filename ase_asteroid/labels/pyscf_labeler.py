"""Ab initio labels through PySCF: ``pyscf:METHOD/BASIS``.

METHOD is ``hf``, ``mp2``, ``ccsd``, ``ccsd(t)`` or any DFT functional PySCF's libxc
knows (``b3lyp``, ``pbe``, ``pbe0``, ...). Closed-shell (restricted) references; the
energy is converted from Hartree and the analytic nuclear gradient from Hartree/Bohr.
CCSD(T) gradients scale as N^7: fine for molecules of ~10 atoms, not for aspirin.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from .base import Labeler, LabelError

_POST_HF = ("mp2", "ccsd", "ccsd(t)")


def parse_method(spec: str) -> tuple[str, str]:
    """'pyscf:B3LYP/6-31G*' -> ('b3lyp', '6-31g*'); LabelError if malformed or unknown."""
    body = spec.split(":", 1)[1] if spec.startswith("pyscf:") else spec
    method, sep, basis = body.partition("/")
    method, basis = method.strip().lower(), basis.strip().lower()
    if not sep or not method or not basis:
        raise LabelError(f"PySCF method {spec!r} must look like 'pyscf:METHOD/BASIS', e.g. pyscf:b3lyp/6-31g*")
    if method != "hf" and method not in _POST_HF:
        from pyscf.dft import libxc
        try:
            libxc.parse_xc(method)
        except (KeyError, ValueError) as error:
            raise LabelError(f"PySCF knows no method or functional {method!r} ({spec!r})") from error
    return method, basis


def _gradient_hartree_per_bohr(mol, method: str) -> tuple[float, np.ndarray]:
    """(energy in Hartree, gradient [n, 3] in Hartree/Bohr); LabelError if SCF fails."""
    from pyscf import cc, dft, mp, scf

    if method == "hf" or method in _POST_HF:
        mf = scf.RHF(mol)
    else:
        mf = dft.RKS(mol)
        mf.xc = method
    energy = mf.kernel()
    if not mf.converged:
        raise LabelError("SCF did not converge")
    if method == "mp2":
        post = mp.MP2(mf).run()
        return post.e_tot, post.nuc_grad_method().kernel()
    if method in ("ccsd", "ccsd(t)"):
        post = cc.CCSD(mf).run()
        if not post.converged:
            raise LabelError("CCSD did not converge")
        if method == "ccsd":
            return post.e_tot, post.nuc_grad_method().kernel()
        from pyscf.grad import ccsd_t as ccsd_t_grad
        return post.e_tot + post.ccsd_t(), ccsd_t_grad.Gradients(post).kernel()
    return energy, mf.nuc_grad_method().kernel()


class PySCFCalculator(Calculator):
    """ASE calculator: energy (eV) and forces (eV/Å) from PySCF."""

    implemented_properties = ("energy", "forces")

    def __init__(self, method: str = "b3lyp", basis: str = "6-31g*", charge: int = 0, spin: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.method, self.basis, self.charge, self.spin = method, basis, charge, spin

    def molecule(self, atoms):
        from pyscf import gto

        try:
            return gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist())),
                         basis=self.basis, unit="Angstrom", charge=self.charge, spin=self.spin, verbose=0)
        except Exception as error:  # PySCF raises many types (BasisNotFoundError, KeyError, ...)
            raise LabelError(f"PySCF cannot build {atoms.get_chemical_formula()} in basis "
                             f"{self.basis!r}: {error}") from error

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, gradient = _gradient_hartree_per_bohr(self.molecule(self.atoms), self.method)
        self.results = {"energy": float(units.to_eV(energy, "Hartree")),
                        "forces": -units.to_eV_per_A(gradient, "Hartree/Bohr")}


class PySCFLabeler(Labeler):
    def __init__(self, spec: str, charge: int = 0) -> None:
        self.xc_or_method, self.basis = parse_method(spec)
        self.method = f"pyscf:{self.xc_or_method}/{self.basis}"
        self.fidelity = f"{self.xc_or_method}/{self.basis}"
        self.level_of_theory = f"{self.xc_or_method.upper()}/{self.basis} (PySCF)"
        self.charge = charge

    def prepare(self, atoms) -> None:
        self.make_calculator().molecule(atoms)  # fails early for elements the basis lacks

    def make_calculator(self):
        return PySCFCalculator(self.xc_or_method, self.basis, charge=self.charge)
