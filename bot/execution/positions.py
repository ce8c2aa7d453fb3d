"""The position book (STRATEGY.md §8.1): one record per symbol, the bot's only picture of its positions.

Records are driven by private events: executions (deduplicated by exec_id) move the quantity, order updates keep
each order's latest state, position updates are kept for confirmation and for the TP/SL comparison. Waiting code
(entry, close) sleeps on a record's change signal instead of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot.execution.fills import Fill, total_qty, vwap
from bot.ports import OrderUpdate, PositionUpdate

ZERO = Decimal(0)
_TIME_EPS = 1e-6


class PositionState(StrEnum):
    OPENING = "OPENING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    DROPPED = "DROPPED"   # the entry never produced a position (rejected / unfilled); no trades.csv rows


class Protection(StrEnum):
    PENDING = "PENDING"
    SET = "SET"
    FAILED = "FAILED"


LIVE_STATES = (PositionState.OPENING, PositionState.OPEN, PositionState.CLOSING)


@dataclass(eq=False)
class PositionRecord:
    symbol: str
    position_id: str
    side: int                       # +1 LONG, −1 SHORT
    state: PositionState
    target_qty: Decimal
    created_at: float
    sl_pct: float
    tp_pct: float
    max_lifetime_sec: float
    signal: Any = None              # the Signal object (snapshot: immutable)
    signal_ts: float | None = None
    signal_summary: str = ""
    decision_mid: float | None = None  # book mid when the entry was decided: the reference of entry slippage
    qty: Decimal = ZERO             # net open size from our own fills
    avg_entry: Decimal | None = None
    opened_at: float | None = None  # first entry fill ts
    exchange_since: float | None = None  # exchange ts from which fills without our link may be ours: first
                                         # entry fill, or the snapshot an adopted record was built from
    sl: Decimal | None = None
    tp: Decimal | None = None
    protection: Protection = Protection.PENDING
    protection_sent_at: float = 0.0
    close_intent: str | None = None
    close_started_at: float | None = None
    close_attempts: int = 0
    close_sent_at: float | None = None
    reenter_signal: Any = None
    entry_reason: str = ""
    entry_fills: list[Fill] = field(default_factory=list)
    exit_fills: list[Fill] = field(default_factory=list)
    orders: dict[str, OrderUpdate] = field(default_factory=dict)   # orderLinkId (or orderId) → latest update
    order_links: list[str] = field(default_factory=list)           # our own orderLinkIds, in send order
    exchange_position: PositionUpdate | None = None
    first_cum_realised: Decimal | None = None
    funding: Decimal = ZERO
    close_reason: str | None = None
    close_source: str = ""
    closed_at: float | None = None
    exit_price: Decimal | None = None
    gross_pnl: Decimal | None = None
    fees: Decimal | None = None
    net_pnl: Decimal | None = None
    meta: dict[str, str] = field(default_factory=dict)
    open_logged: bool = False
    drop_reason: str = ""
    abort: bool = False             # stop(): finish the entry now (cancel, keep what filled)
    dust: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    # ---------------------------------------------------------------------------------------------- derived
    @property
    def side_name(self) -> str:
        return "LONG" if self.side == 1 else "SHORT"

    @property
    def order_side(self) -> str:
        """Bybit side of an order that adds to this position."""
        return "Buy" if self.side == 1 else "Sell"

    @property
    def close_side(self) -> str:
        return "Sell" if self.side == 1 else "Buy"

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def entry_qty(self) -> Decimal:
        return total_qty(self.entry_fills)

    def exit_qty(self) -> Decimal:
        return total_qty(self.exit_fills)

    def filled_for(self, link_id: str) -> Decimal:
        return total_qty(f for f in self.entry_fills if f.order_link_id == link_id)

    def entry_vwap(self) -> Decimal | None:
        return vwap(self.entry_fills)

    def exit_vwap(self) -> Decimal | None:
        return vwap(self.exit_fills)

    # ---------------------------------------------------------------------------------------------- waiting
    def notify(self) -> None:
        self._changed.set()

    async def wait_until(self, pred: Any, timeout: float) -> bool:
        """Wait until ``pred()`` holds or ``timeout`` (loop seconds) passes; returns ``pred()``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            remaining = deadline - loop.time()
            if remaining <= _TIME_EPS:  # a sub-µs timer would fire without the (virtual) clock advancing
                return bool(pred())
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True


def compute_pnl(rec: PositionRecord) -> tuple[Decimal, Decimal, Decimal]:
    """(gross, fees, net) from our own fills and our fee model (§8.6); exchange execFee never enters."""
    entry = sum((f.notional for f in rec.entry_fills), ZERO)
    exit_ = sum((f.notional for f in rec.exit_fills), ZERO)
    gross = rec.side * (exit_ - entry)
    fees = sum((f.fee for f in rec.entry_fills), ZERO) + sum((f.fee for f in rec.exit_fills), ZERO)
    return gross, fees, gross - fees


class PositionBook:
    """Symbol → live record, position_id → record (live or finished, for late events), seen exec ids."""

    def __init__(self, seen_capacity: int = 200_000) -> None:
        self._live: dict[str, PositionRecord] = {}
        self._by_pid: dict[str, PositionRecord] = {}
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._seen_capacity = seen_capacity

    def live(self, sym: str) -> PositionRecord | None:
        rec = self._live.get(sym)
        return rec if rec is not None and rec.live else None

    def live_records(self) -> list[PositionRecord]:
        return [r for r in self._live.values() if r.live]

    def live_count(self) -> int:
        return sum(1 for r in self._live.values() if r.live)

    def by_pid(self, pid: str) -> PositionRecord | None:
        return self._by_pid.get(pid)

    def add(self, rec: PositionRecord) -> None:
        if self.live(rec.symbol) is not None:
            raise RuntimeError(f"{rec.symbol}: a live record already exists; one record per symbol")
        self._live[rec.symbol] = rec
        self._by_pid[rec.position_id] = rec

    def retire(self, rec: PositionRecord) -> None:
        """Leave the live map (CLOSED / DROPPED); stays reachable by position_id for late events."""
        if self._live.get(rec.symbol) is rec:
            del self._live[rec.symbol]

    def first_seen(self, exec_id: str) -> bool:
        """True the first time an exec_id is offered (dedup of WS + REST copies of one fill)."""
        if exec_id in self._seen:
            return False
        self._seen.add(exec_id)
        self._seen_order.append(exec_id)
        if len(self._seen_order) > self._seen_capacity:
            self._seen.discard(self._seen_order.popleft())
        return True
