"""Cleanup of the cycle's own folders: run folders ``{report_path}/cycle/{run_id}`` and their studies
``{report_path}/optimization/cycle-{run_id}``. Nothing else is touched (hand-made studies, proposals, the overlay,
its backups and audit log stay).

With ``backtest.auto_cleanup``: keep the newest ``keep_last_n_runs`` runs, and of those drop the ones older than
``cleanup_interval_days`` (by the run id, a UTC stamp, against the bot's clock). The run in progress is never removed.
The shared kline cache ``{report_path}/cycle/kline_cache`` keeps the day files a cycle can still read (the last
``data_lookback_days`` plus a day's margin); older days are removed, so a bot that runs for months does not grow it
without bound (one parquet file per symbol and day, ~40 kB).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from bot.cycle.runner import KLINE_CACHE, STUDY_PREFIX

RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
_DAY_FORMAT = "%Y-%m-%d"  # the cache's day-file stem (replay.data.cache)


def run_id_at(ts: float) -> str:
    """The run id for a cycle started at ``ts`` (epoch seconds from the bot's clock): a sortable UTC stamp."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime(RUN_ID_FORMAT)


def run_time(run_id: str) -> float | None:
    try:
        return datetime.strptime(run_id, RUN_ID_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def rotate(root: Path, *, keep_last_n: int, max_age_days: float, now: float, protect: str | None = None) -> list[str]:
    """Remove old cycle runs and their studies; returns the run ids removed."""
    runs_dir = root / "cycle"
    ids = (
        sorted((p.name for p in runs_dir.iterdir() if p.is_dir() and run_time(p.name) is not None), reverse=True)
        if runs_dir.is_dir()
        else []
    )
    drop = ids[keep_last_n:] + [i for i in ids[:keep_last_n] if now - (run_time(i) or now) > max_age_days * 86_400]
    removed = []
    for run_id in drop:
        if run_id == protect:
            continue
        for path in (runs_dir / run_id, root / "optimization" / f"{STUDY_PREFIX}{run_id}"):
            shutil.rmtree(path, ignore_errors=True)
        removed.append(run_id)
    if removed:
        logger.info("cycle cleanup: removed {} old run(s) and their studies: {}", len(removed), ", ".join(removed))
    return removed


def prune_kline_cache(root: Path, *, keep_days: float, now: float) -> list[Path]:
    """Remove the cycle's cached kline days that ended more than ``keep_days`` before ``now``; returns the files
    removed. Only ``{root}/cycle/kline_cache/<category-interval>/<SYMBOL>/<YYYY-MM-DD>.parquet`` files are candidates;
    anything else there (a file whose name is not a day, a temporary file being written) is left alone."""
    cache = root / "cycle" / KLINE_CACHE
    cutoff = now - keep_days * 86_400
    removed = []
    for path in sorted(cache.glob("*/*/*.parquet")):
        try:
            day = datetime.strptime(path.stem, _DAY_FORMAT).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
        if day + 86_400 <= cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("cycle cleanup: removed {} cached kline day(s) older than {:g} days", len(removed), keep_days)
    return removed
