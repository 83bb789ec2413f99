import numpy as np
import pytest
import torch

from ase_asteroid.graph import batch_configurations
from ase_asteroid.training import FitConfig, energy_force_loss, errors, fit
from conftest import tiny_model


def test_weighted_loss_equals_the_formula(xtb_data):
    configs = [xtb_data[0].with_(weight=0.5), xtb_data[1].with_(weight=2.0)]
    batch = batch_configurations(configs, 4.0)
    rng = np.random.default_rng(0)
    pred = {"energy": batch.energy + torch.tensor([0.3, -0.1], dtype=torch.float64),
            "forces": batch.forces + torch.from_numpy(rng.normal(size=(18, 3)))}
    rho = 0.2
    df = (pred["forces"] - batch.forces).numpy()
    w_atom = np.repeat([0.5, 2.0], 9)[:, None]
    force_term = np.sum(w_atom * df ** 2) / (3 * 18)
    energy_term = (0.5 * (0.3 / 9) ** 2 + 2.0 * (0.1 / 9) ** 2) / 2
    expected = (1 - rho) * force_term + rho * energy_term
    assert float(energy_force_loss(pred, batch, rho)) == pytest.approx(expected, rel=1e-12)
    mae = (1 - rho) * np.sum(w_atom * np.abs(df)) / 54 + rho * (0.5 * 0.3 / 9 + 2.0 * 0.1 / 9) / 2
    assert float(energy_force_loss(pred, batch, rho, "mae")) == pytest.approx(mae, rel=1e-12)


def test_fit_lowers_the_validation_error_and_keeps_the_best(xtb_data):
    model = tiny_model("egnn", xtb_data, dtype=torch.float32)
    train, val = xtb_data[:30], xtb_data[30:]
    before = errors(model, val)["force_mae_eV_per_A"]
    model, record = fit(model, train, val, FitConfig(epochs=15, batch_size=5, lr=3e-3), progress=False)
    after = errors(model, val)["force_mae_eV_per_A"]
    assert after < 0.7 * before
    assert after == pytest.approx(record["best_val_force_mae_eV_per_A"], rel=1e-5)
    assert model.history[-1]["stage"] == "fit" and len(record["history"]) == 15


@pytest.mark.parametrize("kwargs, message", [({"epochs": 0}, "epochs"), ({"rho": 2}, "rho"),
                                             ({"loss": "l3"}, "loss must be one of")])
def test_bad_fit_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(**kwargs)


def test_bias_and_weights_on_a_known_offset(xtb_data):
    from ase_asteroid.data import Dataset
    from ase_asteroid.training.stages import bias_weights, force_bias
    model = tiny_model("egnn", xtb_data).eval()
    configs = list(xtb_data[:6])
    predicted = model(batch_configurations(configs, model.cutoff))["forces"].detach().numpy().reshape(6, 9, 3)
    offsets = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(6, 9, 3))
    cheap = Dataset([c.with_(forces=p + s * o) for c, p, s, o in zip(configs, predicted, signs, offsets)])
    bias = force_bias(model, cheap)
    assert np.allclose(bias, offsets, atol=1e-9)
    assert np.allclose(bias_weights(bias, 0.2), np.exp(-offsets / 0.2))
    with pytest.raises(ValueError, match="gamma must be positive"):
        bias_weights(bias, 0.0)


def test_fine_tuning_starts_from_the_pretrained_weights(xtb_data, lj_data, monkeypatch, tmp_path):
    import copy
    from ase_asteroid.training import pipeline
    from conftest import TINY_CONFIGS
    starts, finals = [], []
    original = pipeline.fit

    def recording_fit(model, *args, **kwargs):
        starts.append(copy.deepcopy(model.state_dict()))
        result = original(model, *args, **kwargs)
        finals.append(copy.deepcopy(model.state_dict()))
        return result

    monkeypatch.setattr(pipeline, "fit", recording_fit)
    accurate, cheap = xtb_data[:12], lj_data[12:30]
    fit_config = FitConfig(epochs=2, batch_size=4)
    final, paths = pipeline.run_stages("asteroid", TINY_CONFIGS["egnn"], accurate[:8], accurate[8:], cheap[:14],
                                       cheap[14:], 0.1, fit_config, fit_config, tmp_path, progress=False)
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    assert same(starts[2], finals[1])          # stage 3 starts from the pre-trained weights
    assert not same(starts[1], finals[1])      # stage 2 trained
    assert not same(starts[0], starts[1])      # stage 2 from scratch, not from stage 1
    assert final.fidelities == ("gfn2-xtb", "lj") and sorted(paths) == ["bias_identification", "fine_tuned", "pretrained"]


def test_refit_removes_a_constant_energy_offset(xtb_data):
    from ase_asteroid.training.loop import refit_energy_references
    model = tiny_model("egnn", xtb_data).eval()
    refs = model.energy_references
    model.set_normalization({f: {z: e + 0.7 for z, e in r.items()} for f, r in refs.items()}, float(model.scale))
    before = errors(model, xtb_data)["energy_mae_eV"]
    refit_energy_references(model, xtb_data)
    energies = model(batch_configurations(xtb_data, model.cutoff))["energy"].detach().numpy()
    assert before > 1.0 and abs(np.mean(energies - [c.energy for c in xtb_data])) < 1e-9
