"""GAFF2 (the general Amber force field) through OpenMM, parametrised with AmberTools.

A molecule (SMILES, or a geometry whose bonds RDKit perceives) goes through
antechamber (GAFF2 atom types, AM1-BCC charges from sqm), parmchk2 (missing
parameters) and tleap (an Amber prmtop); OpenMM then evaluates it in vacuum with no
cutoff on its Reference platform, which for one small molecule is ~100x faster than its
CPU platform. Atom order is kept throughout, so labels line up with the input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .. import units
from .base import Labeler, LabelError

_LEAP = """source leaprc.gaff2
MOL = loadmol2 mol.mol2
loadamberparams mol.frcmod
saveamberparm MOL mol.prmtop mol.inpcrd
quit
"""


def rdkit_molecule(smiles: str | None = None, atoms: Atoms | None = None, charge: int = 0, seed: int = 0):
    """An RDKit molecule with hydrogens and 3D coordinates, from SMILES or from a geometry."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdDetermineBonds

    if smiles is not None:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise LabelError(f"RDKit cannot parse the SMILES {smiles!r}")
        mol = Chem.AddHs(mol)
        if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
            raise LabelError(f"RDKit could not embed {smiles!r} in 3D")
        AllChem.MMFFOptimizeMolecule(mol)
        return mol
    xyz = f"{len(atoms)}\n\n" + "\n".join(f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z)
                                          in zip(atoms.get_chemical_symbols(), atoms.positions))
    mol = Chem.MolFromXYZBlock(xyz)
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=charge)
    except ValueError as error:
        raise LabelError(f"RDKit could not perceive the bonds of {atoms.get_chemical_formula()}: {error}") from error
    return mol


def atoms_from_rdkit(mol) -> Atoms:
    return Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                 positions=mol.GetConformer().GetPositions())


def _run(command: list[str], folder: Path, what: str) -> None:
    """Run an AmberTools program; they are found on PATH or beside this Python (a venv's bin/)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if shutil.which(command[0], path=path) is None:
        raise LabelError(f"{command[0]} not found: GAFF2 needs AmberTools (pip install 'ase_asteroid[data]')")
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "PATH": path})
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LabelError(f"{what} failed: " + " | ".join(tail))


def parametrize(mol, charge: int = 0) -> str:
    """The Amber prmtop text of an RDKit molecule with GAFF2 types and AM1-BCC charges."""
    from rdkit import Chem

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        Chem.MolToMolFile(mol, str(folder / "mol.sdf"))
        _run(["antechamber", "-i", "mol.sdf", "-fi", "sdf", "-o", "mol.mol2", "-fo", "mol2",
              "-c", "bcc", "-at", "gaff2", "-nc", str(charge), "-rn", "MOL", "-pf", "y"],
             folder, "antechamber (GAFF2 types, AM1-BCC charges)")
        _run(["parmchk2", "-i", "mol.mol2", "-f", "mol2", "-o", "mol.frcmod", "-s", "gaff2"], folder, "parmchk2")
        (folder / "leap.in").write_text(_LEAP)
        _run(["tleap", "-f", "leap.in"], folder, "tleap")
        if not (folder / "mol.prmtop").exists():
            raise LabelError("tleap wrote no prmtop: " + (folder / "leap.log").read_text()[-500:])
        return (folder / "mol.prmtop").read_text()


def openmm_system(prmtop_text: str):
    """(topology, system) of a prmtop: vacuum, no cutoff, no constraints."""
    from openmm import app

    with tempfile.NamedTemporaryFile("w", suffix=".prmtop", delete=False) as handle:
        handle.write(prmtop_text)
    prmtop = app.AmberPrmtopFile(handle.name)
    Path(handle.name).unlink()
    return prmtop.topology, prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=None)


def reference_context(system, integrator=None):
    import openmm

    integrator = integrator or openmm.VerletIntegrator(0.001)
    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))


def context_energy_forces(context, positions_A: np.ndarray) -> tuple[float, np.ndarray]:
    """Set positions (Å) and return (energy eV, forces eV/Å)."""
    from openmm import unit

    context.setPositions(positions_A * 0.1)  # nm
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return float(units.to_eV(energy, "kJ/mol")), units.to_eV_per_A(np.asarray(forces), "kJ/mol/nm")


class GAFF2Calculator(Calculator):
    """ASE calculator for a GAFF2 prmtop (OpenMM Reference platform)."""

    implemented_properties = ("energy", "forces")

    def __init__(self, prmtop_text: str, **kwargs):
        super().__init__(**kwargs)
        self.context = reference_context(openmm_system(prmtop_text)[1])

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces = context_energy_forces(self.context, self.atoms.positions)
        self.results = {"energy": energy, "forces": forces}


class GAFF2Labeler(Labeler):
    method = fidelity = "gaff2"
    level_of_theory = "GAFF2 with AM1-BCC charges (AmberTools, OpenMM)"

    def __init__(self, charge: int = 0) -> None:
        self.charge = charge
        self.prmtop_text: str | None = None
        self.numbers: tuple[int, ...] | None = None

    def prepare(self, atoms: Atoms) -> None:
        """Parametrise the molecule from this geometry (bonds perceived by RDKit)."""
        self.prmtop_text = parametrize(rdkit_molecule(atoms=atoms, charge=self.charge), self.charge)
        self.numbers = tuple(int(z) for z in atoms.numbers)

    def label(self, atoms: Atoms):
        if self.numbers is not None and tuple(int(z) for z in atoms.numbers) != self.numbers:
            raise LabelError("GAFF2 was parametrised for another molecule (atoms differ)")
        return super().label(atoms)

    def make_calculator(self):
        if self.prmtop_text is None:
            raise LabelError("GAFF2 labeler used before prepare(atoms) parametrised the molecule")
        return GAFF2Calculator(self.prmtop_text)
