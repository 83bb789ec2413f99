import numpy as np
import pytest
import torch

from ase_asteroid.graph import batch_configurations
from ase_asteroid.checkpoint import load_training_state, save_training_state
from ase_asteroid.data import Configuration, Dataset
from ase_asteroid.models.base import ForceField
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


def test_fit_lowers_the_validation_error(xtb_data):
    model = tiny_model("egnn", xtb_data, dtype=torch.float32)
    train, val = xtb_data[:30], xtb_data[30:]
    before = errors(model, val)["force_mae_eV_per_A"]
    config = FitConfig(epochs=15, batch_size=5, lr=0.01, amsgrad=True, schedule="cosine", min_lr=1e-5,
                       warmup_epochs=0, ema_decay=0.99, stage_two_at=0)
    model, record = fit(model, train, val, config, progress=False)
    after = errors(model, val)["force_mae_eV_per_A"]
    assert after < 0.7 * before
    assert after == pytest.approx(record["best_val_force_mae_eV_per_A"], rel=1e-5)
    assert model.extras.history[-1]["stage"] == "fit" and len(record["history"]) == 15


class Bond(ForceField):
    """A harmonic dimer E = k/2 (r - 1 Å)² with one learnable k (eV/Å²), started at `k`."""

    def __init__(self, k: float = 3.0):
        super().__init__(type("C", (), {"species": (1,), "cutoff": 3.0, "name": "bond"})())
        self.log_k = torch.nn.Parameter(torch.tensor(np.log(k), dtype=torch.float64))
        self.set_normalization({"default": {1: 0.0}})
        self.double()

    def node_energies(self, batch, positions, species):
        i, j = batch.edge_index
        r = (positions[j] - positions[i]).norm(dim=1)
        per_edge = 0.25 * self.log_k.exp() * (r - 1.0) ** 2          # each bond appears twice
        return torch.zeros(len(positions), dtype=r.dtype).index_add(0, i, per_edge)


def dimers(lengths, k=None, seed=0, rng=None):
    """H2 at these bond lengths (Å) in random directions (from `rng`, or a new one with
    `seed`); labelled with a bond of constant k (eV/Å²), or unlabelled."""
    rng = rng or np.random.default_rng(seed)
    directions = rng.normal(size=(len(lengths), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    configs = []
    for length, d in zip(lengths, directions):
        labels = {} if k is None else {"energy": 0.5 * k * (length - 1) ** 2,
                                       "forces": np.array([1.0, -1.0])[:, None] * k * (length - 1) * d}
        configs.append(Configuration(np.array([1, 1]), np.array([[0.0, 0.0, 0.0], length * d]), **labels))
    return Dataset(configs)


#: A run whose validation error falls, then rises: k climbs from 1 towards the training
#: data's 10 eV/Å², passing the validation data's 4 on the way.
CLIMB = FitConfig(epochs=8, batch_size=4, lr=0.05, amsgrad=False, schedule="plateau", plateau_patience=0,
                  warmup_epochs=0, ema_decay=0.0, clip_grad_norm=0.0, stage_two_at=0, rho=0.0, min_lr=0.0)


def test_fit_keeps_the_best_epochs_weights_not_the_last():
    lengths = np.linspace(0.8, 1.2, 20)
    train, val = dimers(lengths, k=10.0), dimers(lengths[::3], k=4.0, seed=1)
    model, record = fit(Bond(1.0), train, val, CLIMB, progress=False)
    maes = [h["force_mae_eV_per_A"] for h in record["history"]]
    best = int(np.argmin(maes))
    assert 0 < best < len(maes) - 2 and maes[-1] > 2 * maes[best]    # falls, then rises
    assert errors(model, val)["force_mae_eV_per_A"] == pytest.approx(maes[best], rel=1e-9)
    assert record["best_val_force_mae_eV_per_A"] == maes[best]
    assert float(model.log_k.detach().exp()) == pytest.approx(4.0, rel=0.3)  # the last epoch's k is near 10


def test_early_stopping_stops_patience_epochs_after_the_best_and_keeps_it():
    from dataclasses import replace
    lengths = np.linspace(0.8, 1.2, 20)
    train, val = dimers(lengths, k=10.0), dimers(lengths[::3], k=4.0, seed=1)
    model, record = fit(Bond(1.0), train, val, replace(CLIMB, epochs=14, early_stopping_patience=2), progress=False)
    maes = [h["force_mae_eV_per_A"] for h in record["history"]]
    best = int(np.argmin(maes))
    assert len(maes) == best + 3 < 14 and record["epochs"] == len(maes)
    assert errors(model, val)["force_mae_eV_per_A"] == pytest.approx(maes[best], rel=1e-9)


def test_plateau_rate_never_falls_below_min_lr():
    from dataclasses import replace
    lengths = np.linspace(0.8, 1.2, 20)
    train, val = dimers(lengths, k=10.0), dimers(lengths[::3], k=4.0, seed=1)
    config = replace(CLIMB, epochs=10, plateau_patience=1, plateau_factor=0.1, min_lr=0.02)
    _, record = fit(Bond(1.0), train, val, config, progress=False)
    rates = [h["lr"] for h in record["history"]]
    first_bad = int(np.argmin([h["force_mae_eV_per_A"] for h in record["history"]])) + 1
    assert rates[:first_bad + 1] == [0.05] * (first_bad + 1)      # cut after the first epoch without a new best
    assert rates[first_bad + 1:] == [0.02] * (10 - first_bad - 1)  # 0.005, 0.0005, ... floored at min_lr


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
    weights = bias_weights(bias, 0.2)
    assert np.allclose(weights, np.exp(-offsets / 0.2) / np.exp(-offsets / 0.2).mean())
    assert np.isclose(weights.mean(), 1.0) and np.isclose(weights[0] / weights[5], np.exp(0.5 / 0.2))
    assert np.allclose(bias_weights(bias, float("inf")), 1.0)
    with pytest.raises(ValueError, match="gamma must be positive"):
        bias_weights(bias, 0.0)


def test_bias_spread_counts_the_labels_above_a_fence_that_the_bad_ones_do_not_move():
    from ase_asteroid.training.stages import bias_spread
    clean = np.random.default_rng(0).normal(0.37, 0.024, 3000)
    assert bias_spread(clean)["share_above_bias_fence"] == pytest.approx(0.0035, abs=0.003)  # normal: 2.7 σ
    for bad_share in (0.1, 0.25, 0.4):
        bad = np.full(round(bad_share / (1 - bad_share) * len(clean)), 0.86)
        spread = bias_spread(np.concatenate([clean, bad]))
        q1, median, _ = spread["bias_quartiles_eV_per_A"]
        assert spread["bias_fence_eV_per_A"] == pytest.approx(median + 4 * (median - q1))
        assert spread["share_above_bias_fence"] == pytest.approx(bad_share, abs=0.01)


def test_bias_of_molecules_of_different_sizes_is_their_mean_component_error(xtb_data):
    from ase.build import molecule
    from ase_asteroid.training.stages import force_bias
    model = tiny_model("egnn", xtb_data).eval()
    offsets, cheap = [0.1, 0.2, 0.3, 0.4], []
    for name, offset in zip(("CH3CH2OH", "H2O", "CH4", "CO2"), offsets):
        atoms = molecule(name)
        config = Configuration(atoms.numbers, atoms.positions)
        predicted = model(batch_configurations([config], model.cutoff))["forces"].detach().numpy()
        cheap.append(config.with_(forces=predicted - offset))
    assert np.allclose(force_bias(model, Dataset(cheap), batch_size=3), offsets, atol=1e-9)


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
    from ase_asteroid.training.config import DataSpec, TrainConfig
    fit_config = {"epochs": 2, "batch_size": 4}
    config = TrainConfig("asteroid", DataSpec("unused"), TINY_CONFIGS["egnn"], cheap=DataSpec("unused"),
                         gamma_eV_per_A=0.1, fit=fit_config, pretrain_fit=fit_config, out=str(tmp_path))
    splits = pipeline.Splits(accurate[:8], accurate[8:], cheap[:14], cheap[14:])
    final, paths = pipeline.run_stages(config, splits, progress=False)
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


# stage two from the third epoch: the crash below interrupts the run right across the switch
RESUMABLE = FitConfig(epochs=4, batch_size=5, lr=3e-3, ema_decay=0.9, warmup_epochs=1, schedule="plateau",
                      plateau_patience=1, plateau_factor=0.5, clip_grad_norm=1.0, stage_two_at=0.5,
                      stage_two_rho=0.3, stage_two_lr=1e-3)


def _without_times(history):
    return [{k: v for k, v in h.items() if k != "elapsed_s"} for h in history]


# the EGNN recipe: cosine schedule and AMSGrad (its max second moments are optimiser state too)
COSINE_RESUMABLE = FitConfig(epochs=4, batch_size=5, lr=3e-3, ema_decay=0.9, schedule="cosine", amsgrad=True,
                             stage_two_at=0.5, stage_two_rho=0.3, stage_two_lr=1e-3)


@pytest.mark.parametrize("config", [RESUMABLE, COSINE_RESUMABLE], ids=["plateau", "cosine-amsgrad"])
def test_resume_after_a_crash_matches_an_uninterrupted_run(xtb_data, monkeypatch, tmp_path, config):
    from ase_asteroid.training import loop
    train, val = xtb_data[:20], xtb_data[20:30]
    uninterrupted, record = fit(tiny_model("egnn", xtb_data), train, val, config, progress=False)
    original, calls = loop.errors, []

    def crash_in_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "errors", crash_in_third_epoch)
    state = tmp_path / "fit.state.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model("egnn", xtb_data), train, val, config, progress=False, state_path=state)
    assert load_training_state(state)[1]["epoch"] == 2       # lost only the epoch in progress
    monkeypatch.setattr(loop, "errors", original)
    resumed, resumed_record = fit(tiny_model("egnn", xtb_data), train, val, config, progress=False,
                                  state_path=state)
    assert _without_times(resumed_record["history"]) == _without_times(record["history"])
    assert [h["rho"] for h in record["history"]] == [0.01, 0.01, 0.3, 0.3]
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in uninterrupted.state_dict().items())
    assert not state.exists()
    with pytest.raises(ValueError, match="different training config"):
        fit(tiny_model("egnn", xtb_data), train, val, config, progress=False, state_path=_stale(state))


def _stale(path):
    save_training_state(path, {"x": torch.zeros(1)}, {"config": {"epochs": 1}})
    return path


def test_schedule_warms_up_then_halves_on_plateau():
    from ase_asteroid.training.loop import _Schedule
    schedule = _Schedule(FitConfig(lr=1e-3, warmup_epochs=2, schedule="plateau", plateau_patience=2,
                                   plateau_factor=0.5, stage_two_at=0), 5)
    assert [schedule.lr(s) for s in (0, 4, 9, 20)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3])
    for improved in (True, False, False):
        schedule.end_epoch(improved)
    assert schedule.lr(20) == pytest.approx(5e-4)


def test_cosine_schedule_decays_to_min_lr_and_stage_two_caps_the_rate():
    from ase_asteroid.training.loop import _Schedule
    config = FitConfig(epochs=10, lr=1e-2, min_lr=1e-4, schedule="cosine", stage_two_at=0.8, stage_two_lr=1e-3)
    schedule = _Schedule(config, steps_per_epoch=4)
    assert schedule.lr(0) == pytest.approx(1e-2)
    assert schedule.lr(20) == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5)          # half way: the mean
    assert schedule.lr(28) == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + np.cos(0.7 * np.pi)))
    assert config.stage_two_epoch == 8 and schedule.lr(32) == pytest.approx(1e-3)   # capped in stage two
    assert schedule.lr(39) < 1e-3 and schedule.lr(39) == pytest.approx(
        1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + np.cos(39 / 40 * np.pi)))                  # below the cap: decays
    for improved in (False,) * 30:
        schedule.end_epoch(improved)                                                  # no plateau rule
    assert schedule.lr(0) == pytest.approx(1e-2)


def test_stage_two_switches_the_energy_weight_at_its_epoch_and_keeps_its_own_best(xtb_data, monkeypatch):
    from ase_asteroid.training import loop
    seen = []
    original = loop.loss_and_backward

    def recording(model, batch, rho, *args, **kwargs):
        seen.append(rho)
        return original(model, batch, rho, *args, **kwargs)

    monkeypatch.setattr(loop, "loss_and_backward", recording)
    # scripted validation errors: stage one's best (0.3, epoch 2) beats every stage-two epoch
    scripted = iter([0.5, 0.3, 0.4, 0.6, 0.5])
    monkeypatch.setattr(loop, "errors", lambda *a, **k: {"force_mae_eV_per_A": next(scripted), "energy_mae_eV": 0.0})
    config = FitConfig(epochs=5, batch_size=10, lr=1e-2, schedule="cosine", stage_two_at=0.6, stage_two_rho=1.0,
                       stage_two_lr=5e-3)
    model, record = fit(tiny_model("egnn", xtb_data), xtb_data[:20], xtb_data[20:30], config, progress=False)
    assert config.stage_two_epoch == 3
    assert seen == [0.01] * 6 + [1.0] * 4                     # 2 steps per epoch, the switch after epoch 3
    history = record["history"]
    assert [h["rho"] for h in history] == [0.01, 0.01, 0.01, 1.0, 1.0]
    assert all(h["lr"] <= 5e-3 for h in history[3:]) and history[0]["lr"] > 5e-3
    stage_two_best = min(h["force_mae_eV_per_A"] for h in history[3:])
    assert record["best_val_force_mae_eV_per_A"] == stage_two_best   # chosen among stage-two epochs only


def test_ema_keeps_a_running_average(xtb_data):
    from ase_asteroid.training.loop import _EMA
    model = tiny_model("egnn", xtb_data)
    ema = _EMA(model, 0.75)
    ema.updates = 100  # past the ramp
    start = {k: p.detach().clone() for k, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    live = ema.swapped_into(model)
    assert all(torch.allclose(p, start[k] + 0.25) for k, p in model.named_parameters())
    assert all(torch.equal(live[k], start[k] + 1.0) for k in start)


def test_score_matching_recovers_a_harmonic_force_constant():
    """Boltzmann samples of a harmonic bond (k = 10 eV/Å², 300 K); a model with a learnable
    k, started at 3, is fitted by sliced score matching only (the labels are NaN)."""
    from ase.units import kB

    k, temperature = 10.0, 300.0
    rng = np.random.default_rng(0)
    sigma = np.sqrt(kB * temperature / k)
    r = rng.normal(1.0, sigma, 12000)
    r = r[rng.random(len(r)) < (r / (1 + 6 * sigma)) ** 2][:10000]  # p(r) ∝ r² exp(-k(r-1)²/2kT)
    train = dimers(r[:-100], rng=rng)
    val = dimers(r[-100:], seed=1)  # unlabelled: the best is the latest
    model, _ = fit(Bond(3.0), train, val, FitConfig(epochs=8, batch_size=200, lr=0.05, plateau_patience=0, ema_decay=0.95,
                                                 objective="score_matching", temperature_K=temperature),
                   progress=False)
    assert float(model.log_k.detach().exp()) == pytest.approx(k, rel=0.03)
