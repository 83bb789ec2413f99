"""Per-fidelity reference energies and force scale, fitted from data.

Energies of different levels of theory for the same molecule differ by a nearly
constant offset (MD17: CCSD(T) vs PBE by 10-1000 kcal/mol), so every fidelity gets
its own per-element reference energies E0[Z], fitted by least squares:

    E(config) ≈ Σ_Z n_Z(config) · E0[Z]

where n_Z counts atoms of element Z. With a single molecule the count matrix has
rank one; numpy's minimum-norm solution is then used, which still reproduces the
mean energy exactly (only the split of it among elements is arbitrary).
"""

from __future__ import annotations

import numpy as np

from .dataset import DataError, Dataset


def element_counts(dataset: Dataset, species: tuple[int, ...]) -> np.ndarray:
    """[n_configs, n_species] counts of each element."""
    column = {z: i for i, z in enumerate(species)}
    counts = np.zeros((len(dataset), len(species)))
    for row, config in enumerate(dataset):
        for z in config.numbers:
            counts[row, column[int(z)]] += 1
    return counts


def fit_energy_references(dataset: Dataset, species: tuple[int, ...] | None = None
                          ) -> dict[str, dict[int, float]]:
    """{fidelity: {Z: E0 in eV}} by least squares on element counts, one fit per fidelity."""
    species = species or dataset.species
    references = {}
    for fidelity in dataset.fidelities:
        part = dataset.with_fidelity(fidelity)
        labelled = part.subset(i for i, c in enumerate(part) if c.energy is not None)
        if len(labelled) == 0:
            continue
        counts = element_counts(labelled, species)
        energies = np.array([c.energy for c in labelled])
        solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
        references[fidelity] = {int(z): float(e) for z, e in zip(species, solution)}
    if not references:
        raise DataError(f"{dataset.source or 'dataset'}: no configuration has an energy to fit references to")
    return references


def force_rms(dataset: Dataset) -> float:
    """Root mean square of all force components (eV/Å); the natural energy scale of a model."""
    forces = [c.forces.reshape(-1) for c in dataset if c.forces is not None]
    if not forces:
        raise DataError(f"{dataset.source or 'dataset'}: no forces to compute a scale from")
    return float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
