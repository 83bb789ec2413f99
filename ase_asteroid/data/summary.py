"""``asteroid data info``: what a dataset holds, in numbers."""

from __future__ import annotations

import numpy as np

from .. import units
from .dataset import Dataset, element_symbol


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def summarize(dataset: Dataset) -> dict:
    """Counts, elements, fidelities, source units and energy/force statistics (eV, eV/Å)."""
    per_fidelity = {}
    for fidelity in dataset.fidelities:
        part = dataset.with_fidelity(fidelity)
        energies = np.array([c.energy for c in part if c.energy is not None])
        forces = [c.forces.reshape(-1) for c in part if c.forces is not None]
        entry = {"configurations": len(part), "with_energy": len(energies), "with_forces": len(forces)}
        if len(energies):
            entry["energy_eV"] = _stats(energies)
        if forces:
            components = np.concatenate(forces)
            entry["force_component_eV_per_A"] = _stats(components)
            entry["force_rms_eV_per_A"] = float(np.sqrt(np.mean(components ** 2)))
        per_fidelity[fidelity] = entry
    sizes = np.array([c.n_atoms for c in dataset])
    return {
        "source": dataset.source,
        "source_units": dataset.source_units,
        "configurations": len(dataset),
        "atoms_per_configuration": {"min": int(sizes.min()), "max": int(sizes.max())},
        "elements": [element_symbol(z) for z in dataset.species],
        "formulas": sorted({c.formula for c in dataset}),
        "periodic": sum(1 for c in dataset if any(c.pbc)),
        "fidelities": per_fidelity,
    }


def format_summary(summary: dict) -> str:
    """A human-readable table of :func:`summarize`'s result; energies also in kcal/mol."""
    units_text = ", ".join(f"{k} {v}" for k, v in summary["source_units"].items())
    lines = [f"{summary['source']}",
             f"  configurations: {summary['configurations']}  "
             f"(atoms each: {summary['atoms_per_configuration']['min']}"
             f"-{summary['atoms_per_configuration']['max']}, periodic: {summary['periodic']})",
             f"  elements: {' '.join(summary['elements'])}   formulas: {', '.join(summary['formulas'][:5])}",
             f"  units in file: {units_text or 'n/a'} (converted to eV, Å)"]
    for fidelity, entry in summary["fidelities"].items():
        lines.append(f"  fidelity {fidelity!r}: {entry['configurations']} configurations, "
                     f"{entry['with_energy']} with energy, {entry['with_forces']} with forces")
        if "energy_eV" in entry:
            e = entry["energy_eV"]
            kcal = units.from_eV(e["mean"], "kcal/mol")
            lines.append(f"    energy  mean {e['mean']:.4f} eV ({kcal:.2f} kcal/mol), std {e['std']:.4f} eV, "
                         f"range [{e['min']:.4f}, {e['max']:.4f}] eV")
        if "force_component_eV_per_A" in entry:
            f = entry["force_component_eV_per_A"]
            rms = entry["force_rms_eV_per_A"]
            lines.append(f"    forces  rms {rms:.4f} eV/Å ({units.from_eV_per_A(rms, 'kcal/mol/Å'):.3f} "
                         f"kcal/mol/Å), range [{f['min']:.3f}, {f['max']:.3f}] eV/Å")
    return "\n".join(lines)
