"""Molecular dynamics with ase_asteroid force fields: stability sweeps, batched replicas."""
