"""The executor's account-sync state: what the book has applied from the exchange, and the lock that orders it.

Shared by the event consumer and the REST reconciliation (:mod:`bot.execution.reconcile`) as one small explicit
object, so neither reaches into the other's private fields.
"""

from __future__ import annotations

import asyncio

from bot.ports import PositionUpdate


class AccountSync:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # events arriving during a reconciliation are applied after it
        self.last_exec_ts = 0.0  # newest execution time applied (the next REST sweep starts there)
        self.last_reconcile = 0.0  # clock time the last full reconciliation started
        # symbol → exchange time of the newest account change the book has applied (a trade execution, a close):
        # a position snapshot/event not newer than it predates what we know and must not adopt or flatten
        self.fence: dict[str, float] = {}

    def advance_fence(self, symbol: str, ts: float) -> None:
        if ts > self.fence.get(symbol, float("-inf")):
            self.fence[symbol] = ts

    def predates(self, p: PositionUpdate) -> bool:
        """A REST position snapshot not newer than the last account change applied for its symbol (equal times are
        ambiguous: the next reconciliation decides)."""
        return p.ts <= self.fence.get(p.symbol, float("-inf"))

    def older(self, p: PositionUpdate) -> bool:
        """Strictly older than fills already applied (REST ran ahead of the stream): a past state, not news."""
        return p.ts < self.fence.get(p.symbol, float("-inf"))
