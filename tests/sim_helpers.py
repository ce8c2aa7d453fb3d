"""A scripted market for the simulated exchange: events at chosen virtual times, then read what the bot received.

Use inside ``run_virtual``: ``m = ScriptedMarket.create(...)``, then ``await m.at(t, m.book(...), m.trade(...))``
feeds one batch when the virtual clock reaches ``EPOCH0 + t``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from bot.adapters.simulated import ConstantLatency, LatencyModel, SimExchange
from bot.events import BookSnapshot, Level, MarketEvent, Trade
from bot.instruments import InstrumentRegistry
from bot.ports import Execution, PrivateEvent
from replay.virtual_loop import virtual_clock
from settings import Settings

EPOCH0 = 1_785_600_000.0          # a multiple of 8 h: funding boundaries at EPOCH0 + k·28800
INSTRUMENTS = InstrumentRegistry.bundled()
D = Decimal


class ScriptedMarket:
    def __init__(self, ex: SimExchange, symbol: str) -> None:
        self.ex = ex
        self.symbol = symbol
        self._uid = 0
        self._trade_id = 0
        self.received: list[PrivateEvent] = []

    @classmethod
    def create(cls, symbol: str = "BTCUSDT", *, latency: LatencyModel | None = None,
               balance: str = "10000", seed: int = 7, **settings: Any) -> ScriptedMarket:
        clock = virtual_clock(EPOCH0)
        ex = SimExchange(Settings(**settings), clock, INSTRUMENTS, seed=seed,
                         latency=latency if latency is not None else ConstantLatency(0, 0),
                         initial_balance=Decimal(balance))
        return cls(ex, symbol)

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def until(self, t: float) -> None:
        dt = t - self.now
        if dt > 0:
            await asyncio.sleep(dt)

    async def at(self, t: float, *events: MarketEvent) -> None:
        await self.until(t)
        self.ex.on_market(list(events))

    def book(self, bids: list[Level], asks: list[Level], symbol: str | None = None) -> BookSnapshot:
        self._uid += 1
        return BookSnapshot(symbol or self.symbol, EPOCH0 + self.now, bids, asks, self._uid)

    def trade(self, price: float, size: float, side: str = "Sell", symbol: str | None = None) -> Trade:
        self._trade_id += 1
        return Trade(symbol or self.symbol, EPOCH0 + self.now, price, size, side, f"t{self._trade_id}")  # type: ignore[arg-type]

    async def settle(self, dt: float = 1.0) -> list[PrivateEvent]:
        """Let in-flight responses arrive; return (and remember) every private event delivered so far."""
        await asyncio.sleep(dt)
        while not self.ex.events.empty():
            self.received.append(self.ex.events.get_nowait())
        return self.received

    def trade_fills(self) -> list[Execution]:
        return [e for e in self.ex.fills if e.exec_type != "Funding"]


def fee_of(e: Execution, maker: str = "0.0002", taker: str = "0.00055") -> Decimal:
    return e.exec_qty * e.exec_price * D(maker if e.is_maker else taker)
