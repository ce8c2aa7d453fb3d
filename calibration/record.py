"""Record real public streams within a disk budget (``python -m calibration record``, issue 12 part 1).

The live collector records: :class:`bot.adapters.bybit.public_ws.BybitPublicFeed` (same connection, subscriptions,
heartbeat and reconnects as the live bot) with its ``on_frame`` tap writing every received frame, as received, to
``{calibration_path}/sessions/<UTC stamp>-<symbols>/frames.ndjson.gz`` in the bundled capture's format
(:class:`calibration.capture_writer.CaptureWriter`: crash-safe, a kill loses at most the frame being written). When
the session ends (its minutes are over, Ctrl-C/SIGTERM, or the budget is full) it is reduced to ``aggregate.json``
(:func:`calibration.ingest.aggregate_file`), which stays when the raw frames are rotated out.

Disk budget (``calibration.disk_budget_gb``): the whole calibration folder never exceeds it. Before and while
recording, the raw frames of the oldest sessions are deleted to make room (their aggregates stay); when nothing is
left to delete, or ``calibration.keep_raw_frames`` forbids deleting, the session stops early and says so.
``keep_raw_frames = true`` thus keeps every recording for the recorded feed at the price of refusing to record once
the budget is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from bot.adapters.bybit.public_ws import BybitPublicFeed
from bot.clock import WallClock
from calibration.capture_writer import CaptureWriter
from settings import Settings

FRAMES = "frames.ndjson.gz"
AGGREGATE = "aggregate.json"
RESERVE_BYTES = 256 * 1024
"""Room kept free under the budget for the session's aggregate and the final gzip trailer."""


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def rotate(root: Path, budget_bytes: int, *, need: int = 0, protect: Path | None = None) -> list[Path]:
    """Delete the raw frames of the oldest sessions (never ``protect``) until the folder plus ``need`` bytes fits the
    budget; returns the deleted files. Aggregates are never deleted."""
    deleted: list[Path] = []
    used = folder_bytes(root)
    for frames in sorted((root / "sessions").glob(f"*/{FRAMES}")):
        if used + need <= budget_bytes:
            break
        if protect is not None and frames.parent == protect:
            continue
        size = frames.stat().st_size
        frames.unlink()
        used -= size
        deleted.append(frames)
        logger.info("disk budget: deleted {} ({} bytes), its aggregate stays", frames, size)
    return deleted


@dataclass
class SessionResult:
    folder: Path
    frames: int
    bytes: int
    seconds: float
    stopped_by: str
    aggregate: Path | None
    rotated: list[Path]


def session_folder(root: Path, symbols: Sequence[str], now: float) -> Path:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = root / "sessions" / f"{stamp}-{'_'.join(symbols)}"
    folder, k = base, 1
    while folder.exists():
        k += 1
        folder = base.with_name(f"{base.name}-{k}")
    return folder


async def record_session(
    settings: Settings,
    symbols: Sequence[str],
    minutes: float,
    *,
    url: str | None = None,
    root: Path | None = None,
    progress: bool = False,
    aggregate: bool = True,
) -> SessionResult:
    """Record ``symbols`` for ``minutes`` of wall time (or until stopped), then reduce the session."""
    cal = settings.calibration
    root = Path(root or cal.calibration_path)
    budget = int(cal.disk_budget_gb * 1e9)
    clock = WallClock()
    folder = session_folder(root, symbols, clock.now())
    rotated = [] if cal.keep_raw_frames else rotate(root, budget, need=RESERVE_BYTES)
    used_other = folder_bytes(root)
    if used_other + RESERVE_BYTES > budget:
        raise ValueError(
            f"disk budget {cal.disk_budget_gb:g} GB is full ({used_other} bytes in {root}"
            f"{'; keep_raw_frames forbids deleting old raw frames' if cal.keep_raw_frames else ''})"
        )
    folder.mkdir(parents=True)
    writer = CaptureWriter(folder / FRAMES)
    stop = asyncio.Event()
    stopped_by = ["duration"]

    def on_frame(recv_ts: float, raw: str | bytes) -> None:
        nonlocal used_other
        if stop.is_set():
            return
        try:
            writer.write(recv_ts, raw)
        except OSError as exc:  # disk full, folder removed: stop cleanly instead of reconnecting forever
            stopped_by[0] = f"write error ({exc})"
            stop.set()
            return
        if used_other + writer.bytes_written + RESERVE_BYTES > budget:
            if not cal.keep_raw_frames:
                rotated.extend(rotate(root, budget, need=RESERVE_BYTES, protect=folder))
                used_other = folder_bytes(root) - (folder / FRAMES).stat().st_size
            if used_other + writer.bytes_written + RESERVE_BYTES > budget:
                stopped_by[0] = "disk budget full"
                stop.set()

    feed = BybitPublicFeed(settings, clock, list(symbols), url=url, on_frame=on_frame)
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, lambda s=sig: (stopped_by.__setitem__(0, signal.Signals(s).name), stop.set()))
    t0 = time.monotonic()
    feed_task = asyncio.create_task(feed.run(queue), name="calibration-feed")

    async def drain() -> None:
        while True:
            await queue.get()  # the decoded batches are not needed: the raw frames are the recording

    drain_task = asyncio.create_task(drain())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round(minutes * 60), unit="s", desc="recording", file=sys.stderr, leave=False)
    try:
        deadline = t0 + minutes * 60
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            if bar is not None:
                bar.n = min(round(time.monotonic() - t0), bar.total)
                bar.set_postfix(frames=writer.frames, MB=f"{writer.bytes_written / 1e6:.1f}")
    finally:
        for task in (feed_task, drain_task):
            task.cancel()
        for task in (feed_task, drain_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        writer.close()
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - t0
    agg_path = finish_session(folder) if aggregate and writer.frames else None
    if not cal.keep_raw_frames:
        rotated.extend(rotate(root, budget, protect=folder))
    return SessionResult(
        folder, writer.frames, (folder / FRAMES).stat().st_size, seconds, stopped_by[0], agg_path, rotated
    )


def finish_session(folder: Path) -> Path | None:
    """Reduce a session's frames to its aggregate; a session without usable market data keeps no aggregate."""
    from calibration.ingest import aggregate_file, write_json_atomic
    from calibration.recordings import RecordingError

    try:
        doc = aggregate_file(folder / FRAMES)
    except RecordingError as exc:
        logger.warning("session {}: no aggregate ({})", folder.name, exc)
        return None
    name = f"{folder.name}/{FRAMES}"  # every session's file is frames.ndjson.gz: name the session instead
    doc["file"] = name
    for sym in doc["symbols"]:
        sym["source"] = name
    out = folder / AGGREGATE
    write_json_atomic(out, doc)
    return out
