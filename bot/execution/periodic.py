"""A periodic tick as a chain of loop timers (the executor's monitor; replay runs hundreds of thousands of them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def run_periodic(period: float, tick: Callable[[], None]) -> None:
    """Call ``tick`` every ``period`` seconds of loop time until cancelled; a failing tick fails this coroutine.

    The period is a chain of loop timers rather than a sleeping task: each tick runs where the woken sleeper's
    step would (the next loop pass; in the timer's own pass when the loop's optional ``claim_pass`` says nothing
    else would run in between) and arms the next timer at ``loop.time() + period``, as ``asyncio.sleep`` would.
    Same ticks, same times, same timers, without a future and a task wake-up per period."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    handle: asyncio.TimerHandle | None = None
    claim: Callable[[], bool] = getattr(loop, "claim_pass", None) or (lambda: False)

    def step() -> None:
        nonlocal handle
        if done.done():  # cancelled meanwhile
            return
        try:
            tick()
        except Exception as e:
            done.set_exception(e)
            return
        handle = loop.call_at(loop.time() + period, fire)

    def fire() -> None:
        nonlocal handle
        handle = None
        if claim():
            step()
        else:
            loop.call_soon(step)

    handle = loop.call_at(loop.time() + period, fire)
    try:
        await done
    finally:
        if handle is not None:
            handle.cancel()
