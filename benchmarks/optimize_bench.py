"""Optimizer throughput: trials per hour of a small random-search study on 1 and 2 local worker processes.

Each trial replays BTCUSDT over the same window (default 6 hours) with different parameters; the study runs through the
real ask/tell loop, SQLite storage and ``ProcessPoolExecutor``. Workers are warmed up first (imports, bundled data), so
the figure is steady-state. ``cpu_share_of_wall`` (worker CPU seconds / wall seconds, at most the worker count) shows
how much CPU the workers actually got: on a shared machine it, not the code, bounds the speed-up. A benchmark, not a
test: it asserts nothing.
Usage: ``python benchmarks/optimize_bench.py [--hours 6] [--trials 8] [--workers 1,2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from replay.data.timeutil import fmt_utc, to_ms  # noqa: E402
from replay.optimize import space as sp  # noqa: E402
from replay.optimize.objective import TrialTask, evaluate  # noqa: E402
from replay.optimize.study import StudySpec, run_study  # noqa: E402
from settings import Settings  # noqa: E402

START = "2025-06-20T00:00"


def bench(workers: int, hours: float, trials: int, folder: Path) -> dict[str, float]:
    end = fmt_utc(to_ms(START) + round(hours * 3_600_000))
    base = Settings()
    spec = StudySpec(name="bench", symbols=("BTCUSDT",), start=START, end=end, params=sp.resolve(None), base=base,
                     trials=trials, mode="random", seed=1)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    with ProcessPoolExecutor(max_workers=workers) as pool:
        warm = TrialTask(-1, base.model_dump_json(), ("BTCUSDT",), START, fmt_utc(to_ms(START) + 600_000), 1)
        wait([pool.submit(evaluate, warm) for _ in range(workers)])
        t0 = time.perf_counter()
        run_study(spec, folder, pool, workers)
        wall = time.perf_counter() - t0
    worker_cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu0  # workers are joined: counted now
    return {"workers": workers, "trials": trials, "window_hours": hours, "wall_s": round(wall, 2),
            "trials_per_hour": round(trials / wall * 3600, 1),
            "worker_cpu_s_per_trial": round(worker_cpu / trials, 2),
            "cpu_share_of_wall": round(worker_cpu / wall, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--workers", default="1,2")
    a = p.parse_args()
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                      "cpus": len(os.sched_getaffinity(0)), "load_avg": os.getloadavg()}))
    rows = []
    for w in (int(x) for x in a.workers.split(",")):
        with tempfile.TemporaryDirectory() as d:
            rows.append(bench(w, a.hours, a.trials, Path(d)))
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) > 1:
        print(json.dumps({"speedup": round(rows[-1]["trials_per_hour"] / rows[0]["trials_per_hour"], 2),
                          "load_avg_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
