import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from ase_asteroid.graph import batch_configurations, collate, graph_from_configuration, radius_graph


def test_molecular_radius_graph_matches_brute_force(xtb_data):
    positions = xtb_data[0].positions
    edge_index, shifts = radius_graph(positions, 1.5)
    expected = {(i, j) for i in range(9) for j in range(9)
                if i != j and np.linalg.norm(positions[i] - positions[j]) < 1.5}
    assert set(map(tuple, edge_index.T.tolist())) == expected
    assert np.all(shifts == 0)


def test_periodic_graph_uses_images():
    atoms = bulk("Si", "diamond", a=5.43)
    edge_index, shifts = radius_graph(atoms.positions, 3.0, atoms.cell.array, atoms.pbc)
    i, j, d = neighbor_list("ijd", atoms, 3.0)
    assert edge_index.shape[1] == len(i) == 8  # 4 nearest neighbours per atom, 2 atoms
    vectors = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shifts
    assert np.allclose(np.sort(np.linalg.norm(vectors, axis=1)), np.sort(d))


def test_collate_offsets_atoms_edges_and_graphs(xtb_data):
    graphs = [graph_from_configuration(c, 4.0) for c in xtb_data[:3]]
    batch = collate(graphs)
    assert batch.num_graphs == 3 and batch.num_atoms == 27
    assert batch.ptr.tolist() == [0, 9, 18, 27]
    assert batch.batch.tolist() == [0] * 9 + [1] * 9 + [2] * 9
    edges = graphs[1].edge_index + 9
    assert torch.equal(batch.edge_index[:, graphs[0].edge_index.shape[1]:][:, :edges.shape[1]], edges)
    assert torch.allclose(batch.energy, torch.tensor([c.energy for c in xtb_data[:3]], dtype=torch.float64))
    assert collate([batch, graphs[0]]).ptr.tolist() == [0, 9, 18, 27, 36]


def test_fidelity_labels_become_indices(xtb_data, lj_data):
    batch = batch_configurations([xtb_data[0], lj_data[0]], 4.0, {"lj": 1, "gfn2-xtb": 0})
    assert batch.fidelity.tolist() == [0, 1]


def test_to_casts_only_floating_point(xtb_data):
    batch = batch_configurations(xtb_data[:2], 4.0).to(dtype=torch.float32)
    assert batch.positions.dtype == torch.float32 and batch.edge_index.dtype == torch.long
    assert batch.numbers.dtype == torch.long and batch.pbc.dtype == torch.bool


def test_unlabelled_configurations_have_nan_targets(xtb_data):
    graph = graph_from_configuration(xtb_data[0].with_(energy=None, forces=None), 4.0)
    assert torch.isnan(graph.energy).all() and torch.isnan(graph.forces).all()


@pytest.mark.parametrize("cutoff", [0.5, 10.0])
def test_cutoff_extremes(xtb_data, cutoff):
    edge_index, _ = radius_graph(xtb_data[0].positions, cutoff)
    assert edge_index.shape[1] == (0 if cutoff < 0.9 else 72)


def test_average_num_neighbors(xtb_data):
    from ase_asteroid.graph import average_num_neighbors
    assert average_num_neighbors(xtb_data[:3], 10.0) == 8.0          # everyone sees everyone
    expected = np.mean([radius_graph(c.positions, 1.6)[0].shape[1] / 9 for c in xtb_data[:3]])
    assert average_num_neighbors(xtb_data[:3], 1.6) == pytest.approx(expected)


def test_replica_batch_equals_collated_single_graphs(xtb_data):
    from ase_asteroid.graph import make_graph, replica_batch
    positions = np.array([c.positions for c in xtb_data[:4]])
    fast = replica_batch(xtb_data[0].numbers, positions, 2.0)
    slow = collate([make_graph(xtb_data[0].numbers, p, 2.0) for p in positions])
    for name in ("positions", "numbers", "batch", "edge_index", "shifts", "cell", "pbc", "ptr", "weight", "fidelity"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
