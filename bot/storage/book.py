"""One symbol's L2 book: price→size maps kept to the top ``depth`` levels per side (STRATEGY.md §3).

Updates are built on copies of the touched side(s) and committed only if the result is a sane book, so a rejected
update leaves the previous book byte-for-byte intact. Continuity (update ids) is decided by the caller
(:mod:`bot.storage.storage`); this class only knows how to apply and validate levels.
"""

from __future__ import annotations

import math

import numpy as np

from bot.events import BookDelta, BookSnapshot, Level

_INF = math.inf


class OrderBook:
    """Book state. ``bid_px``/``ask_px`` are the level prices best first (rebuilt on each commit)."""

    __slots__ = (
        "_top_ask",
        "_top_bid",
        "ask_px",
        "asks",
        "bid_px",
        "bids",
        "depth",
        "symbol",
        "ts",
        "update_id",
        "valid",
    )

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_px: list[float] = []
        self.ask_px: list[float] = []
        self.update_id = 0
        self.ts = -_INF
        self.valid = False
        self._top_bid: np.ndarray | None = None
        self._top_ask: np.ndarray | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.bid_px)

    def try_apply(self, ev: BookSnapshot | BookDelta, snapshot: bool, max_spread_bps: float) -> str | None:
        """Apply ``ev`` (as a snapshot if ``snapshot``); return None if committed, else why it was rejected."""
        if snapshot:
            bids, err = _fresh(ev.bids)
            if err is None:
                asks, err = _fresh(ev.asks)
            if err is not None:
                return err
            bid_px = _top(bids, self.depth, True)
            ask_px = _top(asks, self.depth, False)
        else:
            bids, bid_px, err = _patched(self.bids, self.bid_px, ev.bids, self.depth, True)
            if err is not None:
                return err
            asks, ask_px, err = _patched(self.asks, self.ask_px, ev.asks, self.depth, False)
            if err is not None:
                return err
        err = check_touch(bid_px, ask_px, max_spread_bps)
        if err is not None:
            return err
        self.bids, self.asks, self.bid_px, self.ask_px = bids, asks, bid_px, ask_px
        self.update_id = ev.update_id
        self.ts = ev.ts
        self._top_bid = self._top_ask = None
        return None

    def top(self, side: str, n: int) -> np.ndarray:
        """``(k, 3)`` read-only array of price, size, notional for the best ``k = min(n, levels)`` levels."""
        if side == "bid":
            arr = self._top_bid
            if arr is None:
                arr = self._top_bid = _levels_array(self.bid_px, self.bids)
        elif side == "ask":
            arr = self._top_ask
            if arr is None:
                arr = self._top_ask = _levels_array(self.ask_px, self.asks)
        else:
            raise ValueError(f"book side must be 'bid' or 'ask', got {side!r}")
        return arr[: max(0, n)]


def check_touch(bid_px: list[float], ask_px: list[float], max_spread_bps: float) -> str | None:
    """Why a book with these sorted sides is unusable, or None (STRATEGY.md §3 validity rule)."""
    if not bid_px:
        return "empty bid side"
    if not ask_px:
        return "empty ask side"
    bb, ba = bid_px[0], ask_px[0]
    if not bb > 0.0:
        return f"best bid {bb} <= 0"
    if bb >= ba:
        return f"crossed book: best bid {bb} >= best ask {ba}"
    spread = (ba - bb) / bb * 1e4
    if not 0.0 < spread <= max_spread_bps:
        return f"spread {spread:.2f} bps outside (0, {max_spread_bps}]"
    return None


def _valid_level(p: float, s: float) -> bool:
    return 0.0 < p < _INF and 0.0 <= s < _INF


def _fresh(levels: list[Level]) -> tuple[dict[float, float], str | None]:
    out: dict[float, float] = {}
    for p, s in levels:
        if not _valid_level(p, s):
            return out, f"invalid level ({p}, {s})"
        if s > 0.0:
            out[p] = s
        else:
            out.pop(p, None)
    return out, None


def _top(side: dict[float, float], depth: int, desc: bool) -> list[float]:
    """Sorted prices best first; truncates ``side`` in place to ``depth`` levels."""
    px = sorted(side, reverse=desc)
    if len(px) > depth:
        for p in px[depth:]:
            del side[p]
        del px[depth:]
    return px


def _patched(
    side: dict[float, float], px: list[float], levels: list[Level], depth: int, desc: bool
) -> tuple[dict[float, float], list[float], str | None]:
    if not levels:
        return side, px, None
    new = side.copy()
    for p, s in levels:
        if not _valid_level(p, s):
            return side, px, f"invalid level ({p}, {s})"
        if s > 0.0:
            new[p] = s
        else:
            new.pop(p, None)
    return new, _top(new, depth, desc), None


def _levels_array(px: list[float], side: dict[float, float]) -> np.ndarray:
    arr = np.empty((len(px), 3))
    if px:
        arr[:, 0] = px
        arr[:, 1] = [side[p] for p in px]
        np.multiply(arr[:, 0], arr[:, 1], out=arr[:, 2])
    arr.flags.writeable = False
    return arr
