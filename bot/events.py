"""Market events: the only things a feed may hand the bot (ARCHITECTURE.md §4).

Live collector, synthetic feed and recorded feed all produce exactly these. They travel through an asyncio
queue in batches (``list[MarketEvent]``), one batch per WS frame or per intrabar point, because the queue hop is
the expensive part. Prices and sizes are floats here: they describe the market, they are never sent to an
exchange (orders use ``Decimal`` on the instrument grid, see :mod:`bot.instruments`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Level = tuple[float, float]
"""(price, size in base coin). In a delta, size 0 deletes the level."""

Side = Literal["Buy", "Sell"]


class BookSnapshot(msgspec.Struct, frozen=True, array_like=True, tag="s"):
    """Replaces the whole book. ``update_id`` is Bybit's ``u``."""

    symbol: str
    ts: float
    bids: list[Level]
    asks: list[Level]
    update_id: int


class BookDelta(msgspec.Struct, frozen=True, array_like=True, tag="d"):
    """Upserts levels; must carry ``update_id == previous + 1``."""

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


MarketEvent = BookSnapshot | BookDelta | Trade
EventBatch = list[MarketEvent]
