"""Where trials run: a ``concurrent.futures.Executor`` chosen by one spec string.

- ``local`` (default): a ``ProcessPoolExecutor`` of ``jobs`` workers (``inline`` with one job: no process at all).
- ``dask://host:port``: an existing Dask distributed scheduler; ``Client.get_executor()`` is concurrent.futures-
  compatible, so the study loop is the same code. Workers need this project installed (they import
  :func:`replay.optimize.objective.evaluate`) and the data (bundled, or a ``--data-dir`` path they can read).

Locally, the number of concurrent jobs is capped by ``backtest.max_memory_gb`` (Dask workers keep their own memory
limits): a trial holds one symbol's synthetic market and bot at a time, estimated at :data:`BASE_GB` plus
:data:`GB_PER_DAY` per replayed day, so ``jobs <= max_memory_gb / estimate`` (never below one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

BASE_GB = 0.3  # interpreter + numpy/pandas/bot imports of one worker (replay_bench: 263 MB peak for 30 days)
GB_PER_DAY = 0.005  # candles, per-day generated batches and equity of one replayed day (one symbol)


class InlineExecutor(Executor):
    """Runs each call at submit time in this process: one job, no pickling, no process start-up."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


def estimate_job_gb(days: float) -> float:
    return BASE_GB + GB_PER_DAY * max(days, 0.0)


def memory_capped_jobs(jobs: int, days: float, max_memory_gb: float) -> int:
    """``jobs`` reduced so the estimated memory of concurrent trials fits in ``max_memory_gb``."""
    fit = math.floor(max_memory_gb / estimate_job_gb(days))
    return max(1, min(jobs, fit))


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@contextmanager
def open_executor(spec: str, jobs: int) -> Iterator[tuple[Executor, int]]:
    """Yield (executor, parallel slots) for ``spec``; the executor (and a Dask client) is closed on exit."""
    if spec.startswith("dask://") or spec.startswith("tcp://"):
        from distributed import Client

        address = "tcp://" + spec.split("://", 1)[1]
        client = Client(address, set_as_default=False)
        try:
            slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
            yield client.get_executor(pure=False), max(1, min(jobs, slots) if jobs > 0 else slots)
        finally:
            client.close()
        return
    if spec != "local":
        raise ValueError(f"--executor must be 'local' or 'dask://host:port', got {spec!r}")
    if jobs <= 1:
        yield InlineExecutor(), 1
        return
    pool = ProcessPoolExecutor(max_workers=jobs)
    try:
        yield pool, jobs
    finally:
        pool.shutdown(cancel_futures=True)
