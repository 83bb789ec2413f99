"""Run independent tasks here, in a local process pool, or on a Dask cluster, yielding
results as they complete (so callers can write each one at once and lose nothing).

A long task can also hand back parts of its work while it runs (``on_item``): a
stability sweep's task of many batched MD runs reports each run the moment it stops, so
an interrupt or a failed task loses no finished run, whatever the size of the task.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Callable, Iterator, Sequence

#: How long (s) a reported item may wait in the channel before it is handed on.
POLL_S = 0.1


def _limit_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def map_unordered(function: Callable[..., Any], tasks: Sequence[tuple], workers: int = 1,
                  scheduler: str | None = None, on_item: Callable[[Any], None] | None = None) -> Iterator[Any]:
    """``function(*task)`` for every task, yielded in completion order.

    workers > 1: a spawn-started process pool (forking a process whose OpenMP/BLAS threads
    are running can deadlock), each worker limited to cpu_count // workers threads.
    scheduler: the address of a Dask distributed scheduler (takes precedence).
    on_item: if given, tasks run as ``function(*task, report)``, and every item a task passes
    to ``report(item)`` (a JSON value: it may come from another machine) is handed to
    ``on_item(item)`` in this process while the task still runs (within POLL_S). A task's
    items all arrive before its result or its error is seen here; with workers or a
    scheduler they are copies (JSON round trip for Dask: tuples come back as lists).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if scheduler:
        yield from _dask(function, tasks, scheduler, on_item)
    elif workers > 1:
        yield from _pool(function, tasks, workers, on_item)
    else:
        for task in tasks:
            yield function(*task) if on_item is None else function(*task, on_item)


def _call(function: Callable[..., Any], task: tuple, report: Callable[[Any], None] | None) -> Any:
    return function(*task) if report is None else function(*task, report)


def _completion_order(futures, wait_some: Callable[[set], set], drain: Callable[[], None]) -> Iterator[Any]:
    """Results of `futures` as they complete; between waits (and on an interrupt while
    waiting) drain() hands on the items the tasks have reported so far."""
    pending = set(futures)
    while pending:
        try:
            done = wait_some(pending)
        except BaseException:
            with contextlib.suppress(Exception):
                drain()
            raise
        pending -= done
        drain()
        for future in done:
            yield future.result()


def _hand_on(fetch: Callable[[], list], on_item: Callable[[Any], None] | None) -> Callable[[], None]:
    """drain(): on_item(item) for every item fetch() returns (nothing without on_item)."""
    def drain() -> None:
        for item in fetch() if on_item is not None else ():
            on_item(item)
    return drain


def _waiting_items(channel) -> list:
    items = []
    while True:
        try:
            items.append(channel.get_nowait())
        except queue.Empty:
            return items


def _pool(function, tasks, workers, on_item) -> Iterator[Any]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    # a manager's queue: a put returns once the item is there, so a task's items precede its result
    with context.Manager() if on_item is not None else contextlib.nullcontext() as manager, \
            ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads,
                                initargs=(threads,)) as pool:
        channel = manager.Queue() if manager is not None else None
        report = channel.put if channel is not None else None
        futures = [pool.submit(_call, function, task, report) for task in tasks]
        try:
            yield from _completion_order(
                futures, lambda pending: wait_futures(pending, POLL_S, FIRST_COMPLETED).done,
                _hand_on(lambda: _waiting_items(channel), on_item))
        finally:
            for future in futures:
                future.cancel()


class _QueueReport:
    """report(item) on a Dask worker: the item, as JSON text, onto the client's named Queue
    (put waits for the scheduler, so a task's items precede its result)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, item: Any) -> None:
        from distributed import Queue

        channel = Queue(self.name)  # a handle per item: nothing shared between tasks or threads
        try:
            channel.put(json.dumps(item))
        finally:
            channel.close()


def _dask_wait_some(pending: set) -> set:
    from distributed import wait

    try:
        return set(wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED").done)
    except TimeoutError:
        return set()


def _dask(function, tasks, scheduler, on_item) -> Iterator[Any]:
    from distributed import Client, Queue

    with Client(scheduler) as client:
        channel = Queue(client=client) if on_item is not None else None
        report = _QueueReport(channel.name) if channel is not None else None
        futures = [client.submit(_call, function, task, report, pure=False) for task in tasks]
        try:
            yield from _completion_order(futures, _dask_wait_some, _hand_on(
                lambda: [json.loads(text) for text in channel.get(batch=True)], on_item))
        finally:
            client.cancel(futures)
            if channel is not None:
                channel.close()
