"""An asyncio event loop whose time is virtual (ARCHITECTURE.md §3).

``loop.time()`` returns virtual seconds. When no callback is ready, asyncio's ``_run_once`` asks the selector to
wait until the next timer; :class:`VirtualSelector` polls the real file descriptors without blocking and, if none
is ready, adds the timeout to virtual time and returns at once. So ``await asyncio.sleep(2.0)`` costs no wall time
while timers, timeouts and cadences keep their exact live order. The bot runs on it unmodified; its
:class:`bot.clock.LoopClock` reads ``epoch0 + loop.time()``.

Real I/O still works (the self-pipe used by ``call_soon_threadsafe``/``run_in_executor`` is polled), but a blocking
wait with no timer at all means nothing can ever wake the loop except another thread: we wait for that a bounded
wall time and then fail loudly rather than hang.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bot.clock import LoopClock

T = TypeVar("T")

DEADLOCK_WALL_TIMEOUT_SEC = 5.0


class VirtualTimeDeadlock(RuntimeError):
    """No task is ready, no timer is pending and no thread woke the loop: the run can never progress."""


class VirtualSelector(selectors.BaseSelector):
    """Delegates registration to a real selector; turns waits into virtual-time jumps."""

    def __init__(self, start: float = 0.0) -> None:
        self._real = selectors.DefaultSelector()
        self.vtime = start
        self.next_timer: Callable[[], float | None] = lambda: None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            ready = self._real.select(DEADLOCK_WALL_TIMEOUT_SEC)
            if not ready:
                raise VirtualTimeDeadlock(
                    "virtual-time loop has no ready task and no pending timer: every task waits on something "
                    "that can never happen (a queue nobody feeds, a future nobody resolves)")
            return ready
        if timeout > 0:
            # Land exactly on the timer's own ``when`` (not vtime + timeout, which float rounding can leave an ulp
            # short), so an event released at ``ts`` is seen at a clock that reads exactly ``ts``.
            when = self.next_timer()
            self.vtime = when if when is not None and when > self.vtime else self.vtime + timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time; starts at ``start`` (epoch seconds in replay) and advances only by
    waiting. Starting at the replay's start epoch makes ``loop.time()`` *be* the bot's clock, with no offset arithmetic
    to round."""

    def __init__(self, start: float = 0.0) -> None:
        self._vselector = VirtualSelector(start)
        super().__init__(self._vselector)
        self._vselector.next_timer = self._next_timer_when
        # asyncio runs a timer once ``when < time() + _clock_resolution``. Its default (the monotonic clock's 1 ns) is
        # below the float spacing of epoch seconds (~2.4e-7 at 1.7e9), so ``time() + 1e-9 == time()`` and a timer due
        # exactly now would never run. 1 µs is above that spacing and far below anything the bot schedules.
        self._clock_resolution = 1e-6

    def _next_timer_when(self) -> float | None:
        scheduled = self._scheduled  # asyncio's timer heap (CPython BaseEventLoop); earliest first
        return scheduled[0].when() if scheduled else None

    def time(self) -> float:
        return self._vselector.vtime


def run_virtual(coro: Coroutine[Any, Any, T], *, start: float = 0.0, debug: bool = False) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop` starting at ``start`` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start), debug=debug) as runner:
        return runner.run(coro)


def virtual_clock(epoch0: float | None = None) -> LoopClock:
    """The bot's clock on the running virtual loop. With ``epoch0`` omitted the loop time *is* epoch time (the loop
    was started at the replay's start epoch); otherwise ``now() = epoch0 + (loop.time() - loop time at creation)``."""
    loop = asyncio.get_running_loop()
    return LoopClock(loop.time() if epoch0 is None else epoch0, loop)


async def sleep_until(when: float) -> None:
    """Sleep until the running loop's time is exactly ``when`` (no relative-delay rounding)."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        return
    fut = loop.create_future()
    handle = loop.call_at(when, fut.set_result, None)
    try:
        await fut
    finally:
        handle.cancel()
