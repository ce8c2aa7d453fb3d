"""Feeds that release market event batches on the (virtual) clock (ARCHITECTURE.md §4).

A batch is released when the clock reaches its timestamp, never before: the bot cannot observe an event stamped after
``now``. Each released batch goes first to the extra sinks (the simulated exchange's ``on_market``: the exchange sees
the market at exchange time) and then, as one queue item, to the bot's consumer.

Releases are loop callbacks, not steps of a sleeping task: the timer at the batch's time releases at once when nothing
else runs at that instant, else hands the release to the ready queue (``call_soon``), exactly where a woken feed
task would run. Either way the order of everything observable is the sleeper's, without the future, task step and
coroutine resume a sleep costs per batch. On the virtual loop a release whose timer's pass would run only that
release happens without the timer (:meth:`replay.virtual_loop.VirtualTimeLoop.jump_to`). A
:class:`bot.feed_consumer.FeedQueue` is fed through its ``release`` (the idle consumer applies the batch in the same
step).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager

from bot.clock import Clock
from bot.events import EventBatch

BatchSink = Callable[[EventBatch], None]


def _grouped(batches: Iterable[tuple[float, EventBatch]]) -> Iterator[tuple[float, EventBatch, bool]]:
    """``(ts, merged batch, is_last)`` per run of equal timestamps; out-of-order input raises once the group before
    it was taken."""
    it = iter(batches)
    first = next(it, None)
    if first is None:
        return
    pending_ts, batch = first
    pending: EventBatch = list(batch)
    for ts, batch in it:
        if ts == pending_ts:
            pending.extend(batch)
            continue
        yield pending_ts, pending, False
        if ts < pending_ts:
            raise ValueError(f"feed batches out of order: {ts} after {pending_ts}")
        pending_ts = ts
        pending = list(batch)
    yield pending_ts, pending, True


class ScheduledFeed:
    """Releases ``(ts, batch)`` pairs in order at their timestamps; batches sharing a timestamp go out together.

    ``progress`` (if given) is called with the released timestamp at most once per ``progress_every_sec`` of
    market time: cheap enough for a progress bar over millions of batches.
    """

    def __init__(
        self,
        clock: Clock,
        batches: Iterable[tuple[float, EventBatch]],
        *,
        sinks: Sequence[BatchSink] = (),
        progress: Callable[[float], None] | None = None,
        progress_every_sec: float = 3600.0,
        symbols: Collection[str] | None = None,
    ) -> None:
        self._clock = clock
        self.symbols = None if symbols is None else frozenset(symbols)  # all it will ever deliver (None: unknown)
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
        loop = asyncio.get_running_loop()
        clock, sinks = self._clock, self._sinks
        put: Callable[[EventBatch], None] = getattr(queue, "release", None) or queue.put_nowait
        groups = _grouped(self._batches)
        done: asyncio.Future[None] = loop.create_future()
        ctx = contextvars.copy_context()
        timer: asyncio.TimerHandle | None = None
        next_progress = -float("inf")
        group = next(groups, None)

        now, loop_time, loop_time_at = clock.now, loop.time, self._loop_time_at
        jump: Callable[[float], bool] = getattr(loop, "jump_to", None) or (lambda when: False)

        def advance(fired: bool) -> None:
            """Release every group that is due (the one whose timer ``fired`` unconditionally, as a woken sleeper
            would), then arm a timer for the next one, or finish. Called by the loop (``fired``), it releases the next
            group right here when its timer's pass would have done only that (see
            :meth:`replay.virtual_loop.VirtualTimeLoop.jump_to`)."""
            nonlocal group, timer, next_progress
            timer = None
            if done.done():  # cancelled (or failed) meanwhile: release nothing more
                return
            in_loop = fired  # not the first call from ``run``: this is the loop's callback, run in ``ctx``
            try:
                while group is not None:
                    ts, batch, last = group
                    if not fired and ts > now():
                        when = loop_time_at(ts)
                        if when > loop_time() and not (in_loop and jump(when)):
                            timer = loop.call_at(when, fire, context=ctx)
                            return
                    fired = False
                    for sink in sinks:
                        sink(batch)
                    put(batch)
                    self.last_ts = ts
                    self.released_batches += 1
                    self.released_events += len(batch)
                    if self._progress is not None and (last or ts >= next_progress):
                        self._progress(ts)
                        next_progress = ts + self._progress_every
                    group = next(groups, None)
                done.set_result(None)
            except Exception as e:  # a sink or the batch source failed: the feed task raises it
                done.set_exception(e)

        claim: Callable[[], bool] = getattr(loop, "claim_pass", None) or (lambda: False)

        def fire() -> None:
            """The timer of the next group: release at once if the release would run alone in the next loop pass
            (see :meth:`replay.virtual_loop.VirtualTimeLoop.claim_pass`), else queue it exactly where the sleeper's
            wake-up would go."""
            if claim():
                advance(True)
            else:
                loop.call_soon(advance, True, context=ctx)

        advance(False)
        try:
            with replay_gc():
                await done
        finally:
            if timer is not None:
                timer.cancel()
            if not done.done():
                done.cancel()


GC_GEN0_THRESHOLD = 20_000
"""Allocations between young-generation collections while a replay runs (CPython's default: 700)."""


@contextmanager
def replay_gc() -> Iterator[None]:
    """The cyclic GC policy for the span of a replay (this feed's task lives as long as the replay).

    The replay allocates millions of short-lived, acyclic objects (event lists, per-evaluation results) that reference
    counting frees; the cyclic collector still rescans the young ones every 700 allocations and the whole heap (the
    synthetic market, the bot's state) every few dozen of those: ~5% of a replay's CPU. Here the heap built before the
    replay starts is frozen (never rescanned) and young collections are rarer. Collection only reclaims cycles, so what
    the bot sees and does is unchanged; the previous thresholds and the frozen objects are restored on exit.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
