"""Run independent tasks here, in a local process pool, or on a Dask cluster, yielding
results as they complete (so callers can write each one at once and lose nothing)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence


def _limit_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def map_unordered(function: Callable[..., Any], tasks: Sequence[tuple], workers: int = 1,
                  scheduler: str | None = None) -> Iterator[Any]:
    """``function(*task)`` for every task, yielded in completion order.

    workers > 1: a spawn-started process pool (forking a process whose OpenMP/BLAS threads
    are running can deadlock), each worker limited to cpu_count // workers threads.
    scheduler: the address of a Dask distributed scheduler (takes precedence).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if scheduler:
        yield from _dask(function, tasks, scheduler)
    elif workers > 1:
        yield from _pool(function, tasks, workers)
    else:
        for task in tasks:
            yield function(*task)


def _pool(function, tasks, workers) -> Iterator[Any]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(function, *task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _dask(function, tasks, scheduler) -> Iterator[Any]:
    from distributed import Client, as_completed as dask_completed

    with Client(scheduler) as client:
        futures = [client.submit(function, *task, pure=False) for task in tasks]
        try:
            for future in dask_completed(futures):
                yield future.result()
        finally:
            client.cancel(futures)
