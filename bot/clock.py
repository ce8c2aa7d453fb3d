"""The one clock the bot reads.

Every time-dependent line in ``bot/`` asks an injected :class:`Clock` for ``now()`` and waits with the
running loop (``asyncio.sleep``/``call_later``). Live runs use :class:`WallClock`; replay runs the same bot on a
virtual-time loop and reads it through :class:`LoopClock`, so timers and cadences behave exactly as live.
This module is the only place in ``bot/`` allowed to read the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Epoch seconds (UTC, float) as the bot must see them."""

    def now(self) -> float: ...


class WallClock:
    """Real time, for live and paper trading."""

    def now(self) -> float:
        return time.time()


class LoopClock:
    """Epoch time derived from an event loop's ``time()``.

    ``now() = epoch0 + (loop.time() - loop_t0)``. On the virtual-time loop of replay, ``loop.time()`` is virtual,
    so this clock jumps with it; the bot cannot tell the difference.
    """

    def __init__(self, epoch0: float, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._offset = epoch0 - loop.time()  # exactly 0.0 when the loop's time is already epoch time (replay)
        if self._offset == 0.0:
            # replay reads the clock ~300k times a simulated day: the loop's own time() is the same value (t + 0.0 is
            # t for every non-negative t) without this method's extra call
            self.now = loop.time  # type: ignore[method-assign]

    def now(self) -> float:
        return self._loop.time() + self._offset

    def loop_time_at(self, epoch: float) -> float:
        """The loop time at which this clock will read ``epoch`` (for scheduling releases)."""
        return epoch - self._offset


class FixedClock:
    """A clock that reads what it is told; for deterministic unit tests and offline evaluation."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        self.t = t
