"""Training on forces without double backpropagation: the gradients must be those of the loss."""

import numpy as np
import pytest
import torch

from ase_asteroid.graph import batch_configurations
from ase_asteroid.training.force_gradients import loss_and_backward, proxy_error
from conftest import tiny_model


def gradients(model, batch, method, kind="mse", epsilon=1e-5):
    model.zero_grad()
    loss = loss_and_backward(model, batch, rho=0.1, kind=kind, method=method, epsilon=epsilon)
    return loss, torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("backend", ["egnn", "mace"])
@pytest.mark.parametrize("method", ["central_difference", "forward_mode"])
def test_gradient_matches_double_backprop(xtb_data, backend, method):
    model = tiny_model(backend, xtb_data).train()
    configs = [c.with_(weight=w) for c, w in zip(xtb_data[:4], (1.0, 0.3, 2.0, 0.0))]  # ASTEROID-style weights
    batch = batch_configurations(configs, model.cutoff)
    reference_loss, reference = gradients(model, batch, "double_backprop")
    if (backend, method) == ("mace", "forward_mode"):  # mace-torch calls requires_grad_ inside its forward
        with pytest.raises(NotImplementedError, match="forward_mode is not supported by the mace backend"):
            gradients(model, batch, method)
        return
    loss, gradient = gradients(model, batch, method)
    assert float(loss) == pytest.approx(float(reference_loss), rel=1e-12)
    relative = float((gradient - reference).norm() / reference.norm())
    assert relative < 1e-6, relative


def test_central_difference_follows_other_loss_kinds(xtb_data):
    model = tiny_model("egnn", xtb_data).train()
    batch = batch_configurations(xtb_data[:3], model.cutoff)
    _, reference = gradients(model, batch, "double_backprop", kind="huber")
    _, gradient = gradients(model, batch, "central_difference", kind="huber")
    assert float((gradient - reference).norm() / reference.norm()) < 1e-6


def test_proxy_error_is_small_for_a_good_epsilon_and_grows_for_a_bad_one(xtb_data):
    model = tiny_model("egnn", xtb_data)
    batch = batch_configurations(xtb_data[:4], model.cutoff)
    errors = {eps: proxy_error(model, batch, eps) for eps in (1e-1, 1e-5)}
    assert errors[1e-5] < 1e-6 < errors[1e-1]


def test_unknown_method_is_named(xtb_data):
    model = tiny_model("egnn", xtb_data)
    with pytest.raises(ValueError, match="force_grad must be one of"):
        loss_and_backward(model, batch_configurations(xtb_data[:2], model.cutoff), 0.1, "mse", "magic")


def test_training_with_central_differences_follows_double_backprop(xtb_data):
    from ase_asteroid.training import FitConfig, fit
    train, val = xtb_data[:20], xtb_data[20:30]
    runs = {}
    for method in ("double_backprop", "central_difference"):
        config = FitConfig(epochs=3, batch_size=5, lr=3e-3, force_grad=method)
        _, record = fit(tiny_model("egnn", xtb_data), train, val, config, progress=False)
        runs[method] = [h["force_mae_eV_per_A"] for h in record["history"]]
    assert runs["double_backprop"][-1] < runs["double_backprop"][0]
    assert np.allclose(runs["central_difference"], runs["double_backprop"], rtol=1e-5)
