"""Data: configurations, readers, dataset tools, reference energies, summaries."""

from .dataset import Configuration, DataError, Dataset
from .readers import read_dataset
from .references import fit_energy_references, force_rms
from .tools import center, remove_duplicates, remove_leakage, split, split_indices

__all__ = ["Configuration", "DataError", "Dataset", "center", "fit_energy_references",
           "force_rms", "read_dataset", "remove_duplicates", "remove_leakage", "split",
           "split_indices"]
