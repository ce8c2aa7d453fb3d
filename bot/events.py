"""Market events: the only things a feed may hand the bot (ARCHITECTURE.md §4).

Live collector, synthetic feed and recorded feed all produce exactly these. They travel through an asyncio
queue in batches (``list[MarketEvent]``), one batch per WS frame or per intrabar point, because the queue hop is
the expensive part. Prices and sizes are floats here: they describe the market, they are never sent to an
exchange (orders use ``Decimal`` on the instrument grid, see :mod:`bot.instruments`).
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np

Level = tuple[float, float]
"""(price, size in base coin). In a delta, size 0 deletes the level."""

Side = Literal["Buy", "Sell"]


def as_levels(levels: list[Level] | np.ndarray) -> list[Level]:
    """Book levels as a list of (price, size) pairs; a synthetic feed may send an (n, 2) float64 array instead (no
    Python object per level until a consumer needs one)."""
    return levels if levels.__class__ is list else levels.tolist()  # type: ignore[union-attr,return-value]


class BookSnapshot(msgspec.Struct, frozen=True, array_like=True, tag="s"):
    """Replaces the whole book. ``update_id`` is Bybit's ``u``. ``bids``/``asks``: see :func:`as_levels`."""

    symbol: str
    ts: float
    bids: list[Level]
    asks: list[Level]
    update_id: int


class BookDelta(msgspec.Struct, frozen=True, array_like=True, tag="d"):
    """Upserts levels; must carry ``update_id == previous + 1``. ``bids``/``asks``: see :func:`as_levels`."""

    symbol: str
    ts: float
    bids: list[Level]
    asks: list[Level]
    update_id: int


class Trade(msgspec.Struct, frozen=True, array_like=True, tag="t"):
    """One public trade; ``side`` is the aggressor (taker) side, ``ts`` the exchange trade time ``T``."""

    symbol: str
    ts: float
    price: float
    size: float
    side: Side
    trade_id: str


class TradeBatch(msgspec.Struct, frozen=True, tag="b"):
    """Consecutive public trades of one symbol as columns: one Bybit ``publicTrade`` frame, or one synthetic batch.

    Real tapes print thousands of trades a minute; storage and the simulated exchange ingest a batch as arrays, never
    trade by trade in Python. Columns have equal length and are in exchange-time order. ``trade_id`` is an int64
    array that increases per symbol (synthetic feeds) or an object array of Bybit's id strings (live frames).
    Arrays are shared, never copied: nobody may write to them after the batch is built.
    """

    symbol: str
    ts: np.ndarray  # float64 epoch seconds, exchange trade time T
    price: np.ndarray  # float64
    size: np.ndarray  # float64, base coin
    is_buy: np.ndarray  # bool: the aggressor (taker) bought
    trade_id: np.ndarray  # int64 (increasing per symbol) or object (str ids)

    def __len__(self) -> int:
        return len(self.ts)


MarketEvent = BookSnapshot | BookDelta | Trade | TradeBatch
EventBatch = list[MarketEvent]


def latest_ts(ev: MarketEvent) -> float:
    """The latest exchange time an event carries: its ``ts``, or the largest row ts of a ``TradeBatch`` (−inf when
    empty). What "an event stamped after the clock" means for a batch."""
    if ev.__class__ is TradeBatch:
        ts = ev.ts
        return float(ts.max()) if len(ts) else -math.inf
    return ev.ts  # type: ignore[return-value]
