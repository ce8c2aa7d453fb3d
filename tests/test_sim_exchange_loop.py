"""The simulated exchange remembers the running loop for its requests only while that loop runs: a request made on a
later loop runs on that loop."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bot.adapters.simulated import ConstantLatency, SimExchange
from bot.clock import FixedClock
from bot.instruments import InstrumentRegistry
from settings import Settings


def test_requests_follow_the_running_loop() -> None:
    ex = SimExchange(Settings(), FixedClock(1.75e9), InstrumentRegistry.bundled(), seed=1,
                     latency=ConstantLatency(0, 0), initial_balance=Decimal("1000"))
    seen: list[asyncio.AbstractEventLoop] = []

    async def ask() -> None:
        seen.append(asyncio.get_running_loop())
        assert await ex.get_positions() == []
        assert ex._req_loop is seen[-1]

    asyncio.run(ask())
    asyncio.run(ask())  # a new loop: the remembered one has stopped
    assert seen[0] is not seen[1]
