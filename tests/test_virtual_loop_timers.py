"""The virtual loop's own timer and handle construction and the feed's timer-free releases (``jump_to``) run every
callback at the same time and in the same order as the stock asyncio paths, ties and cancellations included."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from bot.clock import LoopClock
from replay.feed import ScheduledFeed
from replay.virtual_loop import VirtualTimeLoop
from tests.test_virtual_loop_pass import StockVirtualLoop


def _workload(loop: asyncio.AbstractEventLoop, seed: int) -> list[tuple[float, Any]]:
    """A feed of random batches (many sharing a time) beside timers with exact ties (some on batch times),
    cancellations, call_soon chains, call_later and sleeping tasks: what ran, when, in order."""
    rng = random.Random(seed)
    seen: list[tuple[float, Any]] = []
    handles: list[asyncio.TimerHandle] = []
    counter = iter(range(10**9))
    t0 = loop.time()
    grid = [t0 + 0.25 * k for k in range(1, 400)]

    def cb(ident: int, depth: int) -> None:
        seen.append((loop.time(), ident))
        if depth > 4:
            return
        for _ in range(rng.randint(0, 2)):
            r = rng.random()
            if r < 0.4:
                handles.append(loop.call_at(rng.choice(grid), cb, next(counter), depth + 1))
            elif r < 0.55:
                handles.append(loop.call_later(rng.choice((0.0, 0.25, 0.5, 1.0)), cb, next(counter), depth + 1))
            elif r < 0.7:
                loop.call_soon(cb, next(counter), depth + 1)
            elif handles:
                handles.pop(rng.randrange(len(handles))).cancel()

    def sink(batch: list[Any]) -> None:
        seen.append((loop.time(), ("batch", tuple(batch))))
        if rng.random() < 0.1:
            loop.call_soon(cb, next(counter), 3)
        if rng.random() < 0.05 and handles:
            handles.pop(rng.randrange(len(handles))).cancel()

    class Queue:
        def release(self, batch: list[Any]) -> None:
            seen.append((loop.time(), ("put", len(batch))))

    times = sorted(rng.choice(grid) + rng.choice((0.0, 0.0, 0.01, 0.1)) for _ in range(300))
    batches = [(t, [i]) for i, t in enumerate(times)]

    async def sleeper(ident: int) -> None:
        for _ in range(30):
            await asyncio.sleep(rng.choice((0.0, 0.25, 1.0)))
            seen.append((loop.time(), -ident))

    async def main() -> None:
        for _ in range(150):
            handles.append(loop.call_at(rng.choice(grid), cb, next(counter), 0))
        feed = ScheduledFeed(LoopClock(loop.time(), loop), batches, sinks=[sink])
        await asyncio.gather(feed.run(Queue()), *(sleeper(i) for i in range(1, 4)))  # type: ignore[arg-type]
        await asyncio.sleep(200.0)

    loop.run_until_complete(main())
    loop.close()
    return seen


def test_timers_and_feed_jumps_match_stock_asyncio() -> None:
    for seed in range(6):
        fast = _workload(VirtualTimeLoop(1.75e9), seed)
        stock = _workload(StockVirtualLoop(1.75e9), seed)
        assert len(fast) > 800
        assert fast == stock


def test_jump_to_is_taken_and_lands_on_the_time() -> None:
    loop = VirtualTimeLoop(100.0)
    jumps: list[bool] = []
    real = loop.jump_to

    def spy(when: float) -> bool:
        ok = real(when)
        jumps.append(ok)
        if ok:
            assert loop.time() == when
        return ok

    loop.jump_to = spy  # type: ignore[method-assign]
    released: list[float] = []
    feed = ScheduledFeed(LoopClock(loop.time(), loop), [(100.0 + k, [k]) for k in range(1, 50)],
                         sinks=[lambda b: released.append(loop.time())])

    class Queue:
        def release(self, batch: list[Any]) -> None:
            pass

    loop.run_until_complete(feed.run(Queue()))  # type: ignore[arg-type]
    loop.close()
    assert released == [100.0 + k for k in range(1, 50)]
    assert sum(jumps) >= 45  # nothing else runs: every release after the first timer's is timer-free


def test_timer_handles_order_and_cancel_like_asyncio() -> None:
    loop = VirtualTimeLoop(0.0)
    a = loop.call_at(1.0, print)
    b = loop.call_at(2.0, print)
    assert isinstance(a, asyncio.TimerHandle) and a.when() == 1.0
    assert a < b and not b < a and not a < loop.call_at(1.0, print)
    b.cancel()
    assert b.cancelled() and loop._timer_cancelled_count == 1  # type: ignore[attr-defined]
    loop.close()
