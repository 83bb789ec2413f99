"""Multi-head models: one shared backbone, one readout head (and reference row) per fidelity."""

from dataclasses import replace

import pytest
import torch

from ase_asteroid import testing
from ase_asteroid.checkpoint import load_checkpoint, save_checkpoint
from ase_asteroid.data import fit_energy_references
from ase_asteroid.graph import batch_configurations
from ase_asteroid.models import build_model
from conftest import TINY_CONFIGS


@pytest.fixture(params=sorted(TINY_CONFIGS))
def two_heads(request, xtb_data, lj_data):
    model = build_model(replace(TINY_CONFIGS[request.param], num_heads=2), seed=0, dtype=torch.float64)
    model.set_normalization({**fit_energy_references(xtb_data), **fit_energy_references(lj_data)})
    return model


def _head_gradients(model, configs):
    model.zero_grad()
    model(model.batch_of(configs), compute_forces=False)["energy"].sum().backward()
    return {name: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for name, p in model.named_parameters()}


def test_heads_share_the_backbone_and_differ_only_in_readouts(two_heads, xtb_data, lj_data):
    head0, head1 = _head_gradients(two_heads, xtb_data[:3]), _head_gradients(two_heads, lj_data[:3])
    readout_names = [n for n in head0 if "readout" in n]
    assert readout_names
    for name in head0:
        if name in readout_names:  # each head's readout weights are its own: disjoint gradients
            assert not torch.any((head0[name] != 0) & (head1[name] != 0)), name
        elif head0[name].abs().sum() > 0:  # every trained backbone weight serves both heads
            assert head1[name].abs().sum() > 0, name
    assert sum(int(head0[n].abs().sum() > 0) for n in head0 if n not in readout_names) > 3


def test_heads_predict_differently_and_survive_a_checkpoint(two_heads, lj_data, tmp_path):
    index = {f: i for i, f in enumerate(two_heads.fidelities)}
    as_head = lambda model, row: model(batch_configurations([c.with_(fidelity=two_heads.fidelities[row])
                                                             for c in lj_data[:2]], model.cutoff, index))["forces"]
    assert not torch.allclose(as_head(two_heads, 0), as_head(two_heads, 1))
    loaded = load_checkpoint(save_checkpoint(two_heads, tmp_path / "heads.ckpt"))
    for row in (0, 1):
        assert torch.allclose(as_head(loaded, row), as_head(two_heads, row), atol=1e-12)


def test_multi_head_models_pass_the_conformance_kit(two_heads, xtb_data, lj_data):
    testing.check_force_field(two_heads, [xtb_data[0], lj_data[3], xtb_data[7]])


def test_one_fidelity_per_head(xtb_data):
    model = build_model(replace(TINY_CONFIGS["egnn"], num_heads=2))
    with pytest.raises(ValueError, match="2 heads needs one fidelity per head"):
        model.set_normalization(fit_energy_references(xtb_data))
