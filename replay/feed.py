"""Feeds that release market event batches on the (virtual) clock (ARCHITECTURE.md §4).

A batch is released when the clock reaches its timestamp, never before: the bot cannot observe an event stamped after
``now``. Each released batch goes first to the extra sinks (the simulated exchange's ``on_market``: the exchange sees
the market at exchange time) and then, as one queue item, to the bot's consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from bot.clock import Clock
from bot.events import EventBatch
from replay.virtual_loop import sleep_until

BatchSink = Callable[[EventBatch], None]


class ScheduledFeed:
    """Releases ``(ts, batch)`` pairs in order at their timestamps; batches sharing a timestamp go out together.

    ``progress`` (if given) is called with the released timestamp at most once per ``progress_every_sec`` of
    market time: cheap enough for a progress bar over millions of batches.
    """

    def __init__(self, clock: Clock, batches: Iterable[tuple[float, EventBatch]], *, sinks: Sequence[BatchSink] = (),
                 progress: Callable[[float], None] | None = None, progress_every_sec: float = 3600.0) -> None:
        self._clock = clock
        self._batches = batches
        self._sinks = tuple(sinks)
        self._progress = progress
        self._progress_every = progress_every_sec
        self.released_events = 0
        self.released_batches = 0
        self.last_ts: float | None = None
        loop_time_at = getattr(clock, "loop_time_at", None)
        self._loop_time_at: Callable[[float], float] = loop_time_at or (lambda ts: ts)

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None:
        clock, sinks, put = self._clock, self._sinks, queue.put_nowait
        next_progress = -float("inf")
        pending: EventBatch = []
        pending_ts: float | None = None
        for ts, batch in self._batches:
            if pending_ts is not None and ts != pending_ts:
                await self._release(pending_ts, pending, clock, sinks, put)
                if self._progress is not None and pending_ts >= next_progress:
                    self._progress(pending_ts)
                    next_progress = pending_ts + self._progress_every
                pending = []
            if pending_ts is not None and ts < pending_ts:
                raise ValueError(f"feed batches out of order: {ts} after {pending_ts}")
            pending_ts = ts
            pending.extend(batch)
        if pending_ts is not None:
            await self._release(pending_ts, pending, clock, sinks, put)
            if self._progress is not None:
                self._progress(pending_ts)

    async def _release(self, ts: float, batch: EventBatch, clock: Clock, sinks: tuple[BatchSink, ...],
                       put: Callable[[EventBatch], None]) -> None:
        if ts > clock.now():
            await sleep_until(self._loop_time_at(ts))
        for sink in sinks:
            sink(batch)
        put(batch)
        self.last_ts = ts
        self.released_batches += 1
        self.released_events += len(batch)
