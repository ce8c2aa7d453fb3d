"""Comparable forms of market events (``TradeBatch`` holds numpy arrays, whose ``==`` is elementwise)."""

from __future__ import annotations

from typing import Any

from bot.events import TradeBatch


def canonical(batches: list[tuple[float, list[Any]]]) -> list[tuple[float, list[Any]]]:
    """Batches with every ``TradeBatch`` turned into a tuple of plain lists (exact values, exact dtypes)."""
    out = []
    for ts, batch in batches:
        evs: list[Any] = []
        for ev in batch:
            if isinstance(ev, TradeBatch):
                evs.append(("TradeBatch", ev.symbol, *((str(getattr(ev, f).dtype), getattr(ev, f).tolist())
                                                        for f in ("ts", "price", "size", "is_buy", "trade_id"))))
            else:
                evs.append(ev)
        out.append((ts, evs))
    return out
