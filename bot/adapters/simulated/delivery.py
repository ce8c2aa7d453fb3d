"""The simulated private stream: one ordered queue whose batches are released at their delivery times.

Like one WS connection, a batch is never delivered before the previous one (simplification: a fast draw queued
behind a slow one waits for it). Release is a loop timer, so virtual time (replay) and wall time (paper) both work.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from bot.ports import PrivateEvent


class Delivery:
    """The outbox between the matching engine and the bot's ``events`` queue."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[PrivateEvent] = asyncio.Queue()
        self._outbox: deque[tuple[float, list[PrivateEvent]]] = deque()
        self._last_delivery = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def send(self, batch: list[PrivateEvent], delay: float) -> float:
        """Queue ``batch`` (possibly empty) for delivery after ``delay``, never before the previous batch; returns
        the delivery time."""
        loop = asyncio.get_running_loop()
        t = max(loop.time() + delay, self._last_delivery)
        self._last_delivery = t
        if batch:
            self._outbox.append((t, batch))
            if self._timer is None:
                self._timer = loop.call_at(t, self._flush)
        return t

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        now = loop.time() + 1e-9
        while self._outbox and self._outbox[0][0] <= now:
            for ev in self._outbox.popleft()[1]:
                self.events.put_nowait(ev)
        if self._outbox:
            self._timer = loop.call_at(self._outbox[0][0], self._flush)


def resolve(fut: asyncio.Future[Any], res: Any, err: BaseException | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(res)
