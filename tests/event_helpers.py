"""Comparable forms of market events (``TradeBatch`` holds numpy arrays, whose ``==`` is elementwise)."""

from __future__ import annotations

from typing import Any

from bot.events import BookDelta, BookSnapshot, TradeBatch, as_levels


def canonical(batches: list[tuple[float, list[Any]]]) -> list[tuple[float, list[Any]]]:
    """Batches with every ``TradeBatch`` turned into a tuple of plain lists (exact values, exact dtypes)."""
    out = []
    for ts, batch in batches:
        evs: list[Any] = []
        for ev in batch:
            if isinstance(ev, BookDelta | BookSnapshot):
                evs.append((type(ev).__name__, ev.symbol, ev.ts, as_levels(ev.bids), as_levels(ev.asks), ev.update_id))
            elif isinstance(ev, TradeBatch):
                evs.append(("TradeBatch", ev.symbol, *((str(getattr(ev, f).dtype), getattr(ev, f).tolist())
                                                        for f in ("ts", "price", "size", "is_buy", "trade_id"))))
            else:
                evs.append(ev)
        out.append((ts, evs))
    return out
