"""bench/md17_ccsd.py: what makes a run (its epochs included) and the table of mixed-epoch rows."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from conftest import SHARED_MD17, bench_module

from ase_asteroid.data import Configuration, Dataset


def _args(epochs: int, visits: int = 40000) -> argparse.Namespace:
    return argparse.Namespace(molecules=["aspirin"], backends=["mace"], seeds=[0], methods=["pretrain_finetune"],
                              labels=["old"], corrupt=None, corrupt_kind="noise", correct_bonds=None, cheap_sizes=[4000], accurate_sizes=[200], standard_sizes=[250],
                              epochs=epochs, pretrain_visits=visits, gammas=[0.05], gamma_iqr_fractions=[1.0], fit={},
                              accurate_fit={})


def _row(spec: dict, mae: float) -> dict:
    return {**spec, "seconds": 60.0, "force_mae_kcal_per_mol_A": mae, "force_mae_meV_per_A": mae * 43.364,
            "energy_mae_meV": 1.0}


def test_a_run_with_other_epochs_is_another_run():
    bench = bench_module("md17_ccsd")
    long, short = bench.planned(_args(140)), bench.planned(_args(60, 16000))
    assert [s["method"] for s in long] == ["pretrain_finetune", "standard"]  # the baseline last
    assert [(s["epochs"], s["pretrain_epochs"]) for s in long] == [(140, 10), (140, 0)]
    assert [(s["epochs"], s["pretrain_epochs"]) for s in short] == [(60, 4), (60, 0)]
    finished = {bench.key(_row(s, 1.0)) for s in short}
    assert not finished & {bench.key(s) for s in long}  # the 60-epoch rows do not stand in for 140-epoch runs
    assert {bench.key(s) for s in short} == finished  # and a rerun of the same settings skips them


def test_the_table_compares_rows_of_the_same_epochs_only():
    bench = bench_module("md17_ccsd")
    rows = [_row(s, mae) for s, mae in zip(bench.planned(_args(140)), (0.5, 1.0))]
    rows += [_row(s, mae) for s, mae in zip(bench.planned(_args(60, 16000)), (0.9, 1.2))]
    text = bench.table(rows, _args(140))
    lines = {line.split("|")[3].strip() + "@" + line.split("|")[7].strip(): line for line in text.splitlines()
             if line.startswith("| aspirin")}
    assert set(lines) == {"pretrain_finetune@10 + 140", "standard@140", "pretrain_finetune@4 + 60", "standard@60"}
    assert "| -50% |" in lines["pretrain_finetune@10 + 140"]  # 0.5 against 1.0, not against the 60-epoch 1.2
    assert "| -25% |" in lines["pretrain_finetune@4 + 60"]  # 0.9 against 1.2


def _pool(count: int = 40) -> Dataset:
    rng = np.random.default_rng(5)
    return Dataset([Configuration(numbers=np.array([1, 8]), positions=rng.normal(size=(2, 3)),
                                  energy=float(rng.normal()), forces=rng.normal(size=(2, 3))) for _ in range(count)])


def test_noise_corrupts_the_fraction_asked_for_and_leaves_the_rest_alone():
    bench, pool = bench_module("md17_ccsd"), _pool(400)
    bad_pool, bad = bench.corrupted(pool, 0.25, 2.0, "noise")
    assert len(bad) == 100 and len(set(bad.tolist())) == 100
    change = np.array([c.forces - d.forces for c, d in zip(bad_pool, pool)])
    assert not change[np.setdiff1d(np.arange(400), bad)].any()
    assert abs(change[bad].std() - 2.0) < 0.15  # 600 components of N(0, 2)
    assert bench.label_set("new", [0.25, 2.0], "noise") == "new+0.25x2"  # the name of the rows already measured


def test_scale_corrupts_the_highest_energies_by_the_factor_asked_for():
    bench, pool = bench_module("md17_ccsd"), _pool()
    bad_pool, bad = bench.corrupted(pool, 0.25, 0.5, "scale")
    energies = np.array([c.energy for c in pool])
    assert set(bad.tolist()) == set(np.argsort(energies)[-10:].tolist())
    for i, (c, d) in enumerate(zip(bad_pool, pool)):
        np.testing.assert_allclose(c.forces, d.forces * (1.5 if i in bad else 1.0))
        assert c.energy == d.energy
    assert bench.label_set("old", [0.25, 0.5], "scale") == "old+0.25scale0.5"
    with pytest.raises(ValueError, match="unknown corruption kind 'flip'"):
        bench.corrupted(pool, 0.25, 0.5, "flip")


def test_standard_sizes_without_values_plans_no_baseline():
    bench = bench_module("md17_ccsd")
    common = ["--molecules", "ethanol", "--backends", "mace", "--methods", "asteroid", "--cheap-sizes", "4000"]
    with_baseline = bench.planned(bench.arguments(common))
    without = bench.planned(bench.arguments([*common, "--standard-sizes"]))
    assert [s["method"] for s in with_baseline] == ["asteroid", "standard"]
    assert [s["method"] for s in without] == ["asteroid"]


def test_accurate_sizes_plan_one_run_each_that_a_rerun_tells_apart():
    bench = bench_module("md17_ccsd")
    specs = bench.planned(bench.arguments(["--molecules", "ethanol", "--backends", "mace", "--methods",
                                           "pretrain_finetune", "--cheap-sizes", "4000", "--accurate-sizes", "200",
                                           "400", "--standard-sizes"]))
    assert [(s["method"], s["accurate"], s["cheap"]) for s in specs] == [("pretrain_finetune", 200, 4000),
                                                                          ("pretrain_finetune", 400, 4000)]
    assert len({bench.key(_row(s, 1.0)) for s in specs}) == 2  # the 400 run is not skipped as the 200 one
    default = bench.planned(bench.arguments(["--molecules", "ethanol", "--backends", "mace", "--methods",
                                             "pretrain_finetune", "--cheap-sizes", "4000", "--standard-sizes"]))
    assert [s["accurate"] for s in default] == [200]


def test_the_table_gives_a_multi_head_run_its_joint_epochs():
    bench = bench_module("md17_ccsd")
    spec = {"molecule": "ethanol", "backend": "mace", "seed": 0, "epochs": 140, "method": "multi_head",
            "cheap": 4000, "accurate": 200, "labels": "old", "pretrain_epochs": 10}
    assert bench.joint_epochs(spec) == 14  # (10 × 4000 + 140 × 200) visits / (4000 + 4 × 200) per epoch
    line = next(x for x in bench.table([_row(spec, 0.25)], _args(140)).splitlines() if "| multi_head |" in x)
    assert "| 14 joint (visits of 10 + 140) |" in line


def test_multi_head3_gets_the_visits_of_the_others_and_older_rows_keep_their_own():
    bench = bench_module("md17_ccsd")
    args = bench.arguments(["--molecules", "ethanol", "--backends", "mace", "--methods", "multi_head", "multi_head3",
                            "--labels", "old", "--cheap-sizes", "4000", "--standard-sizes", "--epochs", "140"])
    two, three = bench.planned(args)
    assert (two["joint_epochs"], three["joint_epochs"]) == (14, 8)  # 68 000 visits / (4000 + 4000 + 4 × 200)
    older = {k: v for k, v in three.items() if k != "joint_epochs"}  # run before the epochs were recorded: 14
    assert bench.joint_epochs(older) == 14 and bench.key(older) != bench.key(three)
    table = bench.table([_row(three, 0.21), _row(older, 0.22)], _args(140)).splitlines()
    assert any("| 4000 + 4000 new | old | 8 joint (visits of 10 + 140) |" in x for x in table)
    assert any("| 4000 + 4000 new | old | 14 joint (1.8× the visits of 10 + 140) |" in x for x in table)


def test_sample_efficiency_compares_only_rows_trained_as_long_as_the_others():
    bench = bench_module("md17_ccsd")
    args = bench.arguments(["--molecules", "ethanol", "--backends", "mace", "--methods", "multi_head3",
                            "--labels", "old", "--cheap-sizes", "4000", "--standard-sizes", "250", "450",
                            "--epochs", "140"])
    matched = bench.planned(args)[0]
    longer = {k: v for k, v in matched.items() if k != "joint_epochs"}  # 14 joint epochs: 1.8× the visits
    standard = [{**matched, "method": "standard", "cheap": 0, "labels": "-", "pretrain_epochs": 0, "accurate": n}
                for n in (250, 450)]
    rows = [_row(standard[0], 0.36), _row(standard[1], 0.24), _row(matched, 0.30), _row(longer, 0.20)]
    line = " ".join(bench.sample_efficiency(rows))
    assert "at 0.300 kcal/mol/Å" in line and "0.200" not in line  # the longer run's 0.20 is not the cheap labels' gain
    assert bench.sample_efficiency(rows[:2] + rows[3:]) == []  # the longer run alone: no claim at all


def test_accurate_fit_overrides_the_accurate_stage_and_leaves_pre_training_alone():
    bench = bench_module("md17_ccsd")
    args = bench.arguments(["--molecules", "aspirin", "--backends", "mace", "--methods", "pretrain_finetune",
                            "--cheap-sizes", "4000", "--epochs", "40", "--fit", "rho=0.1", "--accurate-fit", "lr=0.001"])
    spec = bench.planned(args)[0]
    fit, pretrain = bench.stage_fits(spec)
    assert fit == {"rho": 0.1, "lr": 0.001, "epochs": 40, "seed": 0}
    assert pretrain == {"rho": 0.1, "epochs": 10, "seed": 0}  # 40000 visits / 4000
    standard = bench.planned(args)[-1]
    assert standard["method"] == "standard" and bench.stage_fits(standard)[1] == {}


def test_recipe_overrides_are_part_of_the_run_key_folder_and_table():
    bench = bench_module("md17_ccsd")
    common = ["--molecules", "aspirin", "--backends", "mace", "--methods", "pretrain_finetune",
              "--cheap-sizes", "4000", "--epochs", "40", "--standard-sizes"]
    default = bench.planned(bench.arguments(common))[0]
    changed = bench.planned(bench.arguments(common + ["--accurate-fit", "lr=0.001"]))[0]
    assert bench.key(default) != bench.key(changed)  # a finished default run does not stand in for it
    assert bench.run_name(default) == "aspirin_mace_0_40_pretrain_finetune_4000_200_new_10"  # as before overrides
    assert bench.run_name(changed) == bench.run_name(default) + "_accurate-lr=0.001"
    rows = [_row(default, 0.50), _row(changed, 0.60)]
    assert len(bench.mean_over_seeds(rows)) == 2  # not averaged together
    text = bench.table(rows, _args(40))
    assert "| pretrain_finetune (accurate-lr=0.001) |" in text and "| pretrain_finetune |" in text


def test_a_bond_correction_moves_that_bond_only_and_stays_conservative():
    bench, pool = bench_module("md17_ccsd"), _pool(5)
    fixed = bench.bond_corrected(pool, [(1, 0)], np.array([0.4]))  # O1-H0, 0.4 eV/Å outward too much
    for c, d in zip(fixed, pool):
        vector = d.positions[0] - d.positions[1]
        unit = vector / np.linalg.norm(vector)
        change = c.forces - d.forces
        np.testing.assert_allclose(change[0], -0.4 * unit)  # the H pushed outward 0.4 less, along the bond only
        np.testing.assert_allclose(change.sum(0), 0.0, atol=1e-12)  # no net force added
        assert c.energy - d.energy == pytest.approx(0.4 * np.linalg.norm(vector))
    # the added energy's finite-difference gradient is minus the added force: forces stay -dE/dx
    h = 1e-6
    moved = Dataset([pool[0].with_(positions=pool[0].positions + np.array([[h, 0, 0], [0, 0, 0]]))])
    added = lambda c, d: c.energy - d.energy
    gradient = (added(bench.bond_corrected(moved, [(1, 0)], np.array([0.4]))[0], moved[0]) - added(fixed[0], pool[0])) / h
    assert gradient == pytest.approx(-(fixed[0].forces - pool[0].forces)[0, 0], rel=1e-5)
    assert bench.label_set("old", None, "noise", [(9, 13)]) == "old+bond9-13"
    with pytest.raises(ValueError, match="bond 0-1: expected .* a hydrogen second"):
        bench.bond_corrected(pool, [(0, 1)], np.array([0.4]))


def test_correct_bonds_takes_pairs_and_not_with_corrupt(capsys):
    bench = bench_module("md17_ccsd")
    common = ["--molecules", "aspirin", "--backends", "mace", "--methods", "pretrain_finetune", "--labels", "old"]
    args = bench.arguments([*common, "--correct-bonds", "9", "13"])
    assert args.correct_bonds == [(9, 13)] and {s["labels"] for s in bench.planned(args)} == {"old+bond9-13", "-"}
    for extra, message in ((["--correct-bonds", "9"], "pairs of atom indices"),
                           (["--correct-bonds", "9", "13", "--corrupt", "0.25", "1"], "give one of them")):
        with pytest.raises(SystemExit):
            bench.arguments([*common, *extra])
        assert message in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED_MD17 / "aspirin_ccsd-train.npz").exists(), reason="needs ../shared/data/md17")
def test_bond_offsets_are_measured_at_the_accurate_training_geometries_only():
    bench = bench_module("md17_ccsd")
    pool, val, *_ = bench.accurate_splits(SHARED_MD17, "aspirin")
    offsets, shared = bench.measured_bond_offsets(SHARED_MD17, "aspirin", "old", bench.accurate_train(pool, 200),
                                                  [(9, 13), (0, 14)])
    # 7 of the 200 are rMD17 geometries; at each the original MD17 labels push the acid H 0.38-0.47 eV/Å
    # farther out than CCSD does (docs/benchmarks.md, all 62 shared geometries: +0.348 to +0.529), a C-H in
    assert shared == 7
    assert 0.35 < offsets[0] < 0.53 and offsets[1] < 0
    with pytest.raises(ValueError, match="no aspirin rMD17 geometry is among the 3 accurate"):
        bench.measured_bond_offsets(SHARED_MD17, "aspirin", "old", _pool(3), [(9, 13)])
