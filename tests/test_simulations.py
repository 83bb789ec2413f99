"""MD suite: Langevin equals ASE's, samples the right temperature; divergence criteria fire
when they should and only then; the sweep resumes; bad input fails before any run."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from ase_asteroid import AsteroidCalculator, save_checkpoint
from conftest import FIXTURES, tiny_model
from simulations import cli as md_cli
from simulations.batched import BatchedLangevin, RunSpec, model_forces
from simulations.divergence import DivergenceCriteria, DivergenceMonitor
from simulations.langevin import (LangevinParameters, ase_langevin, kinetic_temperature_K,
                                  maxwell_boltzmann_velocities)
from simulations.stability import SweepConfig, format_failures, read_rows, run_sweep

LOOSE = DivergenceCriteria(bond_deviation_A=50, max_distance_increase_A=50, max_temperature_factor=1e3)


def harmonic(start, k=10.0):
    """Forces of E = k/2 Σ |x - x0|² (eV/Å²): a molecule that cannot fall apart."""
    return lambda positions: -k * (positions - start.positions[None])


def _assert_equal_to_serial_ase_runs(engine, model, start, specs):
    """Each batched run ends where serial ASE Langevin with the calculator and its seed ends."""
    for k, spec in enumerate(specs):
        atoms = start.copy()
        atoms.calc = AsteroidCalculator(model)
        rng = np.random.default_rng(spec.seed)
        atoms.set_velocities(maxwell_boltzmann_velocities(atoms.get_masses(), 300, rng))
        ase_langevin(atoms, spec.params, rng).run(spec.steps)
        assert np.abs(atoms.positions - engine.positions[k]).max() < 1e-10
        assert np.abs(atoms.get_velocities() - engine.velocities[k]).max() < 1e-10


def test_batched_runs_equal_serial_ase_runs(xtb_data):
    model = tiny_model("egnn", xtb_data).eval()
    start = xtb_data[0].to_atoms()
    specs = [RunSpec(LangevinParameters(dt, 300, 0.01), 15, seed=s) for s, dt in [(1, 0.25), (2, 0.5), (3, 1.0)]]
    engine = BatchedLangevin(start, model_forces(model, start.numbers), specs, LOOSE)
    engine.run(progress=False)
    _assert_equal_to_serial_ase_runs(engine, model, start, specs)


def test_batched_runs_that_stop_at_different_steps_equal_their_serial_runs(xtb_data):
    """Runs of 4, 13 and 8 steps: after each stops, the others go on with their own
    coefficients and random streams (the runs still alive are a changing subset)."""
    model = tiny_model("egnn", xtb_data).eval()
    start = xtb_data[3].to_atoms()
    specs = [RunSpec(LangevinParameters(dt, 300, 0.01), steps, seed=s)
             for s, dt, steps in [(4, 0.25, 4), (5, 1.0, 13), (6, 0.5, 8)]]
    engine = BatchedLangevin(start, model_forces(model, start.numbers), specs, LOOSE)
    results = engine.run(progress=False)
    assert [r.steps_completed for r in results] == [4, 13, 8] and all(r.stable for r in results)
    _assert_equal_to_serial_ase_runs(engine, model, start, specs)


def test_maxwell_boltzmann_velocities_and_the_papers_friction():
    from ase import units
    from simulations.langevin import PAPER_FRICTION_PER_FS
    masses = np.tile([1.008, 15.999], 20000)
    velocities = maxwell_boltzmann_velocities(masses, 500.0, np.random.default_rng(0))
    for mass in (1.008, 15.999):          # each component ~ N(0, k_B T / m): heavy atoms slower
        part = velocities[masses == mass]
        assert abs(part.mean()) < 0.02 * part.std()
        assert part.var() * mass / units.kB == pytest.approx(500.0, rel=0.02)
    assert kinetic_temperature_K(velocities, masses) == pytest.approx(500.0, rel=0.01)
    again = maxwell_boltzmann_velocities(masses, 500.0, np.random.default_rng(0))
    assert np.array_equal(again, velocities)
    assert PAPER_FRICTION_PER_FS == pytest.approx(1.965e-4, rel=1e-3)   # the paper's 0.002 in ASE's units
    params = LangevinParameters(1.0, 300.0)
    assert params.friction_per_fs == PAPER_FRICTION_PER_FS and params.friction == pytest.approx(0.002, rel=1e-12)
    assert SweepConfig().friction_per_fs == PAPER_FRICTION_PER_FS


def test_langevin_samples_the_bath_temperature():
    start = molecule("CH3CH2OH")
    specs = [RunSpec(LangevinParameters(1.0, 400, 0.05), 3000, seed=s) for s in range(8)]
    engine = BatchedLangevin(start, harmonic(start), specs, LOOSE)
    temperatures = []
    for step in range(3000):
        engine.step(np.arange(8))
        if step >= 500:
            temperatures += [kinetic_temperature_K(v, engine.masses) for v in engine.velocities]
    assert np.mean(temperatures) == pytest.approx(400, rel=0.03)


@pytest.mark.parametrize("case, reason", [
    ("nan_force", "non_finite"), ("stretched_bond", "bond"), ("exploded", "max_distance"), ("hot", "temperature")])
def test_divergence_criteria_fire(case, reason):
    start = molecule("CH3CH2OH")
    monitor = DivergenceMonitor(start, 300, DivergenceCriteria(max_distance_increase_A=2.0))
    x, f = start.positions.copy(), np.zeros((9, 3))
    v = maxwell_boltzmann_velocities(start.get_masses(), 300, np.random.default_rng(0))
    if case == "nan_force":
        f[3, 1] = np.nan
    elif case == "stretched_bond":
        x[3] += (x[3] - x[2]) * 0.6          # O-H bond (0.97 Å) stretched by ~0.58 Å
    elif case == "exploded":
        x *= 2.5                              # every distance grows, bonds included
        monitor.criteria = DivergenceCriteria(bond_deviation_A=10.0, max_distance_increase_A=2.0)
    else:
        v *= 3.0                              # 9x the kinetic energy
    assert monitor.check(x, f, v).startswith(reason)


def test_a_bond_failure_names_the_bond():
    start = molecule("CH3CH2OH")
    x = start.positions.copy()
    x[3] += (x[3] - x[2]) * 0.6              # the O-H bond (0.97 Å) stretched by 0.58 Å
    monitor = DivergenceMonitor(start, 300)
    v = np.zeros((9, 3))
    assert monitor.check(x, np.zeros((9, 3)), v).startswith("bond: O-H (atoms 2-3) deviation 0.58 Å")


def test_exploding_pair_potential_diverges_and_harmonic_molecule_does_not():
    start = molecule("CH3CH2OH")

    def exploding(positions):   # strongly repulsive between all atoms
        d = positions[:, :, None] - positions[:, None]
        r = np.linalg.norm(d, axis=-1) + np.eye(9)
        return np.sum(50.0 * d / r[..., None] ** 3, axis=2)

    spec = [RunSpec(LangevinParameters(0.5, 300), 400, seed=0)]
    exploded = BatchedLangevin(start, exploding, spec).run(progress=False)[0]
    assert not exploded.stable and exploded.steps_completed < 400
    assert exploded.reason.split(":")[0] in ("bond", "max_distance", "temperature")
    calm = BatchedLangevin(start, harmonic(start, k=30.0), spec).run(progress=False)[0]
    assert calm.stable and calm.steps_completed == 400


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, xtb_data):
    return str(save_checkpoint(tiny_model("egnn", xtb_data), tmp_path_factory.mktemp("ckpt") / "egnn.ckpt"))


def test_sweep_resumes_without_rerunning_finished_runs(checkpoint, tmp_path, monkeypatch):
    """The finished lj rows are kept; the egnn runs are simulated on resume and must be the
    uninterrupted sweep's to the last bit (traces and frames of both replicas: the seeds)."""
    config = SweepConfig(step_sizes_fs=(0.5, 1.0), replicas=2, time_ps=0.01, temperature_K=300,
                         save_trajectories=2, record_every=5)
    start = molecule("CH3CH2OH")
    full = run_sweep({"egnn": checkpoint, "lj": "lj"}, start, config, tmp_path / "full", progress=False)
    assert len(full) == 8
    lines = (tmp_path / "full" / "runs.jsonl").read_text().splitlines()
    (tmp_path / "part").mkdir()
    lj_rows = [line for line in lines if json.loads(line)["model"] == "lj"]
    (tmp_path / "part" / "runs.jsonl").write_text("\n".join(lj_rows) + "\n")  # as if interrupted
    (tmp_path / "part" / "sweep.json").write_text((tmp_path / "full" / "sweep.json").read_text())
    simulated = []
    import simulations.stability as stability
    original = stability.run_task
    monkeypatch.setattr(stability, "run_task", lambda *a, **k: simulated.append(a[1]) or original(*a, **k))
    with pytest.raises(FileExistsError, match="--resume"):
        run_sweep({"egnn": checkpoint, "lj": "lj"}, start, config, tmp_path / "part", progress=False)
    rows = run_sweep({"egnn": checkpoint, "lj": "lj"}, start, config, tmp_path / "part", resume=True, progress=False)
    assert simulated == ["egnn"] and len(rows) == 8
    canonical = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)
    assert canonical(rows) == canonical(json.loads(json.dumps(full)))
    egnn = [r for r in full if r["model"] == "egnn"]
    assert all(r["frames"] for r in egnn) and len({json.dumps(r["frames"]) for r in egnn}) == 4  # seeds matter


def test_each_run_is_written_as_it_stops(checkpoint, tmp_path, monkeypatch):
    """1 fs runs of 0.01 ps stop after 10 steps; an interrupt at step 15 keeps their rows."""
    from simulations.batched import BatchedLangevin as Engine
    config = SweepConfig(step_sizes_fs=(0.5, 1.0), replicas=2, time_ps=0.01, temperature_K=300)
    original, calls = Engine.step, []

    def interrupt_at_15(self, runs):
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return original(self, runs)

    monkeypatch.setattr(Engine, "step", interrupt_at_15)
    with pytest.raises(KeyboardInterrupt):
        run_sweep({"egnn": checkpoint}, molecule("CH3CH2OH"), config, tmp_path / "cut", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "cut" / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["step_size_fs"], r["replica"]) for r in rows) == [(1.0, 0), (1.0, 1)]
    monkeypatch.setattr(Engine, "step", original)
    rows = run_sweep({"egnn": checkpoint}, molecule("CH3CH2OH"), config, tmp_path / "cut", resume=True,
                     progress=False)
    assert sorted((r["step_size_fs"], r["replica"]) for r in rows) == [(0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)]


def test_a_dask_sweep_that_fails_mid_task_keeps_every_finished_run_and_resumes_the_rest(checkpoint, tmp_path,
                                                                                      monkeypatch):
    """A (model, step size) task batches its replicas; with a tight bond criterion they stop at
    different steps. The worker fails as soon as one run of its task has stopped and another
    has not: that stopped run's row must be on disk (it was lost with its whole task before),
    and the resume simulates exactly the runs without a row."""
    from distributed import LocalCluster
    from simulations.batched import BatchedLangevin as Engine
    config = SweepConfig(step_sizes_fs=(0.5, 1.0), replicas=3, time_ps=0.02, temperature_K=300,
                         criteria=DivergenceCriteria(bond_deviation_A=0.2))
    start, run_of = molecule("CH3CH2OH"), lambda result: (result.spec.params.timestep_fs, result.spec.seed[3])
    full = run_sweep({"egnn": checkpoint}, start, config, tmp_path / "full", progress=False)
    original_init, original_step, stopped, simulated = Engine.__init__, Engine.step, [], []

    def fail_once_a_run_has_stopped(self, runs):
        ended = [run_of(r) for r, alive in zip(self.results, self.alive()) if not alive]
        if ended and len(ended) < len(self.results):
            stopped.extend(ended)
            raise RuntimeError("worker lost")
        return original_step(self, runs)

    def recording_init(self, start, forces, specs, *args, **kwargs):
        simulated.extend((s.params.timestep_fs, s.seed[3]) for s in specs)
        original_init(self, start, forces, specs, *args, **kwargs)

    monkeypatch.setattr(Engine, "step", fail_once_a_run_has_stopped)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_sweep({"egnn": checkpoint}, start, config, tmp_path / "cut", scheduler=cluster.scheduler_address,
                  progress=False)
    first_failure = list(stopped)
    kept = {(r["step_size_fs"], r["replica"]) for r in read_rows(tmp_path / "cut" / "runs.jsonl")}
    assert first_failure and set(first_failure) <= kept and len(kept) < 6
    cluster.close()  # waits for the other task, which may have started in the in-process worker meanwhile
    monkeypatch.setattr(Engine, "step", original_step)
    monkeypatch.setattr(Engine, "__init__", recording_init)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rows = run_sweep({"egnn": checkpoint}, start, config, tmp_path / "cut", scheduler=cluster.scheduler_address,
                         resume=True, progress=False)
    assert sorted(simulated) == sorted({(dt, r) for dt in (0.5, 1.0) for r in range(3)} - kept)
    key = lambda r: (r["step_size_fs"], r["replica"], r["stable"], r["steps_completed"], r["reason"])
    assert sorted(map(key, rows)) == sorted(map(key, full))
    assert len({r["steps_completed"] for r in full if r["step_size_fs"] == 0.5}) > 1  # runs of a task stop apart


def test_resume_with_other_settings_is_refused_naming_them(checkpoint, tmp_path):
    config = SweepConfig(step_sizes_fs=(1.0,), replicas=1, time_ps=0.005, temperature_K=300)
    start = molecule("CH3CH2OH")
    run_sweep({"egnn": checkpoint}, start, config, tmp_path / "s", progress=False)
    from dataclasses import replace
    changed = replace(config, temperature_K=500, time_ps=0.01)
    with pytest.raises(ValueError, match=r"other settings \(time_ps: 0.005 -> 0.01; temperature_K: 300.* -> 500"):
        run_sweep({"egnn": checkpoint}, start, changed, tmp_path / "s", resume=True, progress=False)
    with pytest.raises(ValueError, match=r"model egnn: .* -> 'lj'"):
        run_sweep({"egnn": "lj"}, start, config, tmp_path / "s", resume=True, progress=False)
    moved = start.copy()
    moved.positions[0, 0] += 0.1
    with pytest.raises(ValueError, match="the starting molecule"):
        run_sweep({"egnn": checkpoint}, moved, config, tmp_path / "s", resume=True, progress=False)
    rows = run_sweep({"egnn": checkpoint}, start, config, tmp_path / "s", resume=True, progress=False)
    assert len(rows) == 1  # same settings: nothing left to run


def test_a_sweep_folder_from_before_stored_settings_is_not_resumed_but_can_be_overwritten(checkpoint, tmp_path,
                                                                                          capsys):
    """Rows without sweep.json: nothing shows which settings they were run with, so --resume
    refuses (saying why and how to go on) and changes nothing; --overwrite starts again and
    removes the sweep's own files only."""
    out = tmp_path / "old"
    argv = ["stability", checkpoint, "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--step-sizes-fs", "1",
            "--replicas", "2", "--time-ps", "0.01", "--out", str(out), "--save-trajectories", "1"]
    assert md_cli.main(argv) == 0
    (out / "sweep.json").unlink()                       # as an older version left it
    (out / "trajectories" / "egnn_1fs_replica1.traj").write_text("")
    stale = [dict(json.loads(line), steps_completed=-1) for line in (out / "runs.jsonl").read_text().splitlines()]
    (out / "runs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in stale))
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert md_cli.main(argv + ["--resume"]) == 1
    error = capsys.readouterr().err
    assert "predates stored settings" in error and "--overwrite" in error and "new --out" in error
    assert not (out / "sweep.json").exists() and read_rows(out / "runs.jsonl") == stale
    assert md_cli.main(argv) == 1 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        md_cli.main(argv + ["--resume", "--overwrite"])
    assert md_cli.main(argv + ["--overwrite"]) == 0
    rows = read_rows(out / "runs.jsonl")
    assert len(rows) == 2 and all(r["steps_completed"] == 10 for r in rows) and (out / "sweep.json").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in (out / "trajectories").glob("*.traj")] == ["egnn_1fs_replica0.traj"]
    assert md_cli.main(argv + ["--resume"]) == 0     # written now with its settings: resumes (nothing to run)


def test_dask_sweep_equals_local(checkpoint, tmp_path):
    from distributed import LocalCluster
    config = SweepConfig(step_sizes_fs=(0.5, 1.0), replicas=2, time_ps=0.02, temperature_K=300)
    start = molecule("CH3CH2OH")
    local = run_sweep({"egnn": checkpoint}, start, config, tmp_path / "local", progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        remote = run_sweep({"egnn": checkpoint}, start, config, tmp_path / "dask",
                           scheduler=cluster.scheduler_address, progress=False)
    key = lambda r: (r["step_size_fs"], r["replica"], r["stable"], r["steps_completed"], r["reason"])
    assert sorted(map(key, remote)) == sorted(map(key, local))


def test_stability_cli_writes_tables_and_figures(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["stability", checkpoint, "--calculator", "lj", "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"),
            "--step-sizes-fs", "0.5", "1", "--replicas", "2", "--time-ps", "0.01", "--out", str(out),
            "--save-trajectories", "1"]
    assert md_cli.main(argv) == 0
    assert "| step (fs) | egnn | lj |" in capsys.readouterr().out
    for name in ("runs.csv", "runs.json", "summary.md", "stability.png", "bond_deviation.png"):
        assert (out / name).stat().st_size > 0
    assert len(json.loads((out / "runs.json").read_text())) == 8
    assert len(list((out / "trajectories").glob("*.traj"))) == 4   # replica 0 of 2 models x 2 steps


@pytest.mark.parametrize("extra, message", [
    (["--step-sizes-fs", "0", "1"], "step sizes must be positive"),
    (["--replicas", "0"], "replicas must be at least 1"),
    (["--molecule", "MISSING.xyz"], "no such file"),
    (["--molecule", "WATER_CL"], "never trained on Cl (atom 1)"),
])
def test_bad_input_fails_before_any_run(extra, message, checkpoint, tmp_path, capsys):
    import ase.io
    ase.io.write(tmp_path / "hcl.xyz", Atoms("HCl", positions=[[0, 0, 0], [0, 0, 1.3]]))
    extra = [str(tmp_path / "missing.xyz") if e == "MISSING.xyz" else str(tmp_path / "hcl.xyz")
             if e == "WATER_CL" else e for e in extra]
    argv = ["stability", checkpoint, "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--time-ps", "0.01",
            "--out", str(tmp_path / "out")] + extra
    assert md_cli.main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs.jsonl").exists()


def test_models_with_the_same_file_name_need_names(checkpoint, tmp_path, capsys):
    """Two runs' model.ckpt would share a name and one would silently replace the other:
    refused before any run, and NAME=PATH names them."""
    import shutil
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(checkpoint, tmp_path / folder / "model.ckpt")
    a, b = str(tmp_path / "a" / "model.ckpt"), str(tmp_path / "b" / "model.ckpt")
    argv = ["stability", "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"), "--step-sizes-fs", "0.5",
            "--replicas", "1", "--time-ps", "0.002", "--out", str(tmp_path / "out")]
    assert md_cli.main(argv + [a, b]) == 1
    assert "would both be named 'model'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs.jsonl").exists()
    assert md_cli.main(argv + [f"standard={a}", f"asteroid={b}"]) == 0
    assert "| step (fs) | standard | asteroid |" in capsys.readouterr().out
    assert md_cli.model_sources([a], ["lj"]) == {"model": a, "lj": "lj"}


def test_single_run_writes_a_trajectory(checkpoint, tmp_path, capsys):
    traj = tmp_path / "md.traj"
    assert md_cli.main(["run", checkpoint, "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"),
                        "--timestep-fs", "0.25", "--steps", "20", "--traj", str(traj), "--traj-every", "5",
                        "--temperature-K", "100"]) == 0
    assert "20 steps" in capsys.readouterr().out
    import ase.io
    assert len(ase.io.read(traj, ":")) == 5


def test_the_summary_counts_why_runs_failed():
    rows = [{"model": "m", "step_size_fs": 2.0, "stable": False,
             "reason": "bond: O-H (atoms 2-3) deviation 0.61 Å > 0.5 Å"},
            {"model": "m", "step_size_fs": 2.0, "stable": False, "reason": "temperature: 2700 K > 2500 K"},
            {"model": "m", "step_size_fs": 2.0, "stable": False, "reason": "temperature: 2600 K > 2500 K"},
            {"model": "m", "step_size_fs": 1.0, "stable": True, "reason": "stable"}]
    assert format_failures(rows) == "Failures:\n- m, 2 fs: temperature ×2, bond O-H (atoms 2-3) ×1"  # most first
    assert format_failures(rows[3:]) == ""


class _HarmonicBond:
    """A predictor whose energy is k (|r_i - r_j| - r0)^2 for one pair: a known bond curve."""

    def __init__(self, i: int, j: int, r0: float, k: float = 2.0) -> None:
        self.i, self.j, self.r0, self.k = i, j, r0, k

    def predict(self, numbers, positions):
        r = np.linalg.norm(positions[:, self.i] - positions[:, self.j], axis=1)
        return self.k * (r - self.r0) ** 2, np.zeros_like(positions)


def test_a_bond_scan_moves_one_atom_along_the_bond_and_gives_each_models_energy_rise():
    from simulations.bond_scan import bond_scan, stretched
    start = molecule("CH3CH2OH")
    stretches = [-0.2, 0.0, 0.3, 0.6]
    positions = stretched(start, 2, 3, stretches)
    lengths = np.linalg.norm(positions[:, 3] - positions[:, 2], axis=1)
    np.testing.assert_allclose(lengths, start.get_distance(2, 3) + np.array(stretches), atol=1e-12)
    others = [k for k in range(9) if k != 3]
    np.testing.assert_array_equal(positions[:, others], np.repeat(start.positions[None, others], 4, axis=0))
    r0 = start.get_distance(2, 3)
    curves = bond_scan({"stiff": _HarmonicBond(2, 3, r0, 4.0), "soft": _HarmonicBond(2, 3, r0, 1.0)},
                       start, 2, 3, stretches)
    np.testing.assert_allclose(curves["stiff"], 4.0 * np.array(stretches) ** 2, atol=1e-12)
    np.testing.assert_allclose(curves["soft"], np.array(stretches) ** 2, atol=1e-12)
    with pytest.raises(ValueError, match="on or past atom 2"):
        stretched(start, 2, 3, [-1.0])
    with pytest.raises(ValueError, match="two different atoms"):
        stretched(start, 2, 2, [0.1])


def test_bond_scan_command_writes_a_table_and_a_figure(checkpoint, tmp_path):
    out = tmp_path / "scan"
    argv = ["bond-scan", checkpoint, "--calculator", "lj", "--molecule", str(FIXTURES / "ethanol_gfn2-xtb.extxyz"),
            "--bond", "2", "3", "--stretch-A", "0", "0.4", "0.2", "--out", str(out)]
    assert md_cli.main(argv) == 0
    table = (out / "bond_scan.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| +")]
    assert [line.split("|")[1].strip() for line in rows] == ["+0.00", "+0.20", "+0.40"]
    assert [cell.strip() for cell in rows[0].split("|")[3:5]] == ["0.000", "0.000"]  # relative to the start
    assert float(rows[2].split("|")[4]) < 0  # lj: a bonded pair sits on its repulsive wall, stretching relieves it
    assert (out / "bond_scan.png").stat().st_size > 0
    assert md_cli.main([*argv[:-2], "--stretch-A", "0.4", "0", "0.1"]) == 1  # FROM above TO: refused
