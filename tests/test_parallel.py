"""map_unordered: results in completion order, and items that running tasks report reach
the caller while they run, all of a task's items before its result or its error, in
every mode (here, a process pool, a Dask cluster)."""

import contextlib

import pytest

from ase_asteroid.parallel import map_unordered


def count_to(n: int, report) -> int:
    for i in range(n):
        report([n, i])
    return n


def fail_after(n: int, report) -> int:
    count_to(n, report)
    raise RuntimeError("task failed")


@contextlib.contextmanager
def where(mode: str):
    if mode != "dask":
        yield {"workers": 2 if mode == "pool" else 1}
        return
    from distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        yield {"scheduler": cluster.scheduler_address}


@pytest.mark.parametrize("mode", ["serial", "pool", "dask"])
def test_reported_items_arrive_before_the_result_or_error_of_their_task(mode):
    items, results = [], []
    with where(mode) as options:
        for n in map_unordered(count_to, [(3,), (5,), (2,)], on_item=items.append, **options):
            assert [i for k, i in items if k == n] == list(range(n))
            results.append(n)
        assert sorted(results) == [2, 3, 5] and len(items) == 10
        items.clear()
        with pytest.raises(RuntimeError, match="task failed"):
            list(map_unordered(fail_after, [(4,)], on_item=items.append, **options))
        assert items == [[4, i] for i in range(4)]
        assert sorted(map_unordered(abs, [(-1,), (2,)], **options)) == [1, 2]  # without on_item: plain calls
