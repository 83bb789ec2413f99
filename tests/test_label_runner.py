"""Labelling without lost work: resume, failures, process pool and Dask give the same file."""

import json

import numpy as np
import pytest

from ase_asteroid.labels.lj import LJLabeler
from ase_asteroid.labels.runner import choose_subset, label_configurations, read_done


@pytest.fixture(scope="module")
def frames(xtb_data):
    return [c.to_atoms() for c in xtb_data[:12]]


def content(path):
    """What a labelled file says, without the measured CPU times."""
    return [(a.info["source_index"], a.info["fidelity"], a.positions.tolist(),
             a.get_potential_energy(), a.get_forces().tolist()) for a in read_done(path)]


class InterruptedLJ(LJLabeler):
    """Ctrl-C after `after` labels."""

    def __init__(self, after):
        self.after, self.calls = after, 0

    def label(self, atoms):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return super().label(atoms)


class FailingLJ(LJLabeler):
    """Fails where atom 0 has x below `threshold` (standing in for a non-converged SCF)."""

    threshold = 0.0

    def label(self, atoms):
        if atoms.positions[0, 0] < self.threshold:
            raise RuntimeError("SCF not converged")
        return super().label(atoms)


def test_resumed_run_writes_the_same_file(frames, tmp_path):
    label_configurations(frames, LJLabeler(), tmp_path / "full.extxyz", progress=False)
    with pytest.raises(KeyboardInterrupt):
        label_configurations(frames, InterruptedLJ(after=5), tmp_path / "part.extxyz", progress=False)
    assert len(read_done(tmp_path / "part.extxyz")) == 5          # a valid file with what was done
    report = label_configurations(frames, LJLabeler(), tmp_path / "part.extxyz", mode="append", progress=False)
    assert report.already_done == 5 and report.labelled == 7
    assert content(tmp_path / "part.extxyz") == content(tmp_path / "full.extxyz")


def test_truncated_last_frame_is_dropped_on_append(frames, tmp_path):
    out = tmp_path / "cut.extxyz"
    label_configurations(frames[:3], LJLabeler(), out, progress=False)
    text = out.read_text()
    out.write_text(text[: len(text) - 200])                         # a hard kill mid-write
    report = label_configurations(frames[:3], LJLabeler(), out, mode="append", progress=False)
    assert report.already_done == 2 and report.labelled == 1 and len(read_done(out)) == 3


@pytest.mark.parametrize("cut", [1, 30, 200])
def test_a_frame_torn_anywhere_is_dropped_and_the_rest_kept(frames, tmp_path, cut):
    out = tmp_path / "cut.extxyz"
    label_configurations(frames[:3], LJLabeler(), out, progress=False)
    text = out.read_text()
    out.write_text(text[: len(text) - cut])
    assert len(read_done(out)) == 2


def test_a_corrupt_frame_in_the_middle_is_an_error_naming_file_and_line(frames, tmp_path):
    out = tmp_path / "bad.extxyz"
    label_configurations(frames[:3], LJLabeler(), out, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    n = len(frames[0]) + 2                                          # lines per frame
    lines[n + 3] = "C  not-a-number 0.0 0.0 0.0 0.0 0.0\n"          # an atom line of the second frame
    out.write_text("".join(lines))
    with pytest.raises(ValueError, match=rf"bad.extxyz: frame starting at line {n + 1} does not parse"):
        read_done(out)
    with pytest.raises(ValueError, match="corrupt"):
        label_configurations(frames[:3], LJLabeler(), out, mode="append", progress=False)
    lines[n] = "garbage\n"
    out.write_text("".join(lines))
    with pytest.raises(ValueError, match=rf"line {n + 1}: expected the atom count"):
        read_done(out)


def test_failures_are_recorded_and_the_rest_goes_on(frames, tmp_path):
    out = tmp_path / "f.extxyz"
    FailingLJ.threshold = np.median([a.positions[0, 0] for a in frames])
    report = label_configurations(frames, FailingLJ(), out, progress=False)
    bad = [i for i, a in enumerate(frames) if a.positions[0, 0] < FailingLJ.threshold]
    assert bad and sorted(report.failed) == bad
    assert report.labelled == len(frames) - len(bad)
    recorded = json.loads((tmp_path / "f.extxyz.failed.json").read_text())
    assert recorded[str(bad[0])] == "RuntimeError: SCF not converged"
    assert "SCF not converged" in report.summary()


def test_existing_output_is_refused(frames, tmp_path):
    out = tmp_path / "x.extxyz"
    out.write_text("precious")
    with pytest.raises(FileExistsError, match="--append .* or --overwrite"):
        label_configurations(frames, LJLabeler(), out, progress=False)
    assert out.read_text() == "precious"


def test_subset_is_seeded(frames, tmp_path):
    assert choose_subset(12, 4, seed=1) == choose_subset(12, 4, seed=1) != choose_subset(12, 4, seed=2)
    with pytest.raises(ValueError, match="between 1 and 12"):
        choose_subset(12, 13)
    report = label_configurations(frames, LJLabeler(), tmp_path / "s.extxyz", subset=4, seed=1, progress=False)
    assert [a.info["source_index"] for a in read_done(tmp_path / "s.extxyz")] == choose_subset(12, 4, 1)
    assert report.cpu_seconds and all(t >= 0 for t in report.cpu_seconds)


def test_process_pool_and_dask_give_the_same_labels(frames, tmp_path):
    from distributed import LocalCluster

    label_configurations(frames, LJLabeler(), tmp_path / "serial.extxyz", progress=False)
    label_configurations(frames, LJLabeler(), tmp_path / "pool.extxyz", workers=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        label_configurations(frames, LJLabeler(), tmp_path / "dask.extxyz",
                             scheduler=cluster.scheduler_address, progress=False)
    serial = content(tmp_path / "serial.extxyz")
    assert content(tmp_path / "pool.extxyz") == serial == content(tmp_path / "dask.extxyz")


def test_xtb_labels_do_not_depend_on_order_resume_or_workers(frames, tmp_path):
    """tblite restarts each SCF from the previous wavefunction unless reset: shuffled,
    resumed and 2-worker runs must give the uninterrupted run's labels to 1e-8."""
    pytest.importorskip("tblite")
    from ase_asteroid.labels.xtb import XTBLabeler

    few = frames[:6]
    label_configurations(few, XTBLabeler(), tmp_path / "full.extxyz", progress=False)
    full = {index: (energy, np.array(forces)) for index, _, _, energy, forces in content(tmp_path / "full.extxyz")}
    shuffled = XTBLabeler()
    for index in [4, 1, 5, 0, 3, 2]:
        energy, forces = shuffled.label(few[index])
        assert abs(energy - full[index][0]) < 1e-8 and np.abs(forces - full[index][1]).max() < 1e-8

    class InterruptedXTB(XTBLabeler):
        def label(self, atoms):
            if len(read_done(tmp_path / "part.extxyz")) >= 3:
                raise KeyboardInterrupt
            return super().label(atoms)

    with pytest.raises(KeyboardInterrupt):
        label_configurations(few, InterruptedXTB(), tmp_path / "part.extxyz", progress=False)
    label_configurations(few, XTBLabeler(), tmp_path / "part.extxyz", mode="append", progress=False)
    label_configurations(few, XTBLabeler(), tmp_path / "pool.extxyz", workers=2, progress=False)
    for name in ("part", "pool"):
        for index, _, _, energy, forces in content(tmp_path / f"{name}.extxyz"):
            assert abs(energy - full[index][0]) < 1e-8, name
            assert np.abs(np.array(forces) - full[index][1]).max() < 1e-8, name
