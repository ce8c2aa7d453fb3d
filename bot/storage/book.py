"""One symbol's L2 book: price→size maps kept to the top ``depth`` levels per side (STRATEGY.md §3).

A delta is applied in place and checked on the result. The committed state is also kept as two lists per side, the
prices best first and their sizes aligned with them (made once per committed update: the notionals, the spoof tracker
and the analyzer's arrays read them without a dict lookup per level). If an update is rejected (invalid level, empty
side, crossed, spread out of range) the touched side's map is rebuilt from those lists, so the previous book is kept
intact without copying a side or journaling each level per delta. Levels pushed beyond ``depth`` are dropped only
once the update is accepted (they cannot change the touch). A snapshot builds fresh maps and replaces the old ones
only if sane. Continuity (update ids) is decided by the caller (:mod:`bot.storage.storage`); this class only
knows how to apply and validate levels.
"""

from __future__ import annotations

import math
from operator import mul

import numpy as np

from bot.events import BookDelta, BookSnapshot, Level

_INF = math.inf


class OrderBook:
    """Book state. ``bid_px``/``ask_px`` are the level prices best first (a new list whenever a side's levels were
    updated; never mutated once committed, so holders of an old list keep a consistent snapshot of it)."""

    __slots__ = (
        "_not_ask",
        "_not_bid",
        "_sz_ask",
        "_sz_bid",
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
        self._sz_bid: list[float] = []  # bids[p] for p in bid_px: the committed sizes, also the undo record
        self._sz_ask: list[float] = []
        self.update_id = 0
        self.ts = -_INF
        self.valid = False
        self._top_bid: np.ndarray | None = None
        self._top_ask: np.ndarray | None = None
        self._not_bid: list[float] | None = None  # price · size per level of bid_px, made once per committed update
        self._not_ask: list[float] | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.bid_px)

    def try_apply(self, ev: BookSnapshot | BookDelta, snapshot: bool, max_spread_bps: float) -> str | None:
        """Apply ``ev`` (as a snapshot if ``snapshot``); return None if committed, else why it was rejected."""
        if snapshot:
            return self._apply_snapshot(ev, max_spread_bps)
        bids, asks = self.bids, self.asks
        lb, la = ev.bids, ev.asks
        if lb:
            err = _upsert(bids, lb)
            if err is not None:
                _restore(bids, self.bid_px, self._sz_bid)
                return err
        if la:
            err = _upsert(asks, la)
            if err is not None:
                self._restore(lb, la)
                return err
        # a side without level updates keeps its lists; an updated side is sorted anew (most deltas add or remove a
        # price on each side they touch, and the sizes list is rebuilt anyway)
        bid_px = sorted(bids, reverse=True) if lb else self.bid_px
        ask_px = sorted(asks) if la else self.ask_px
        err = check_touch(bid_px, ask_px, max_spread_bps)
        if err is not None:
            self._restore(lb, la)
            return err
        depth = self.depth
        if lb:
            if len(bid_px) > depth:
                _truncate(bids, bid_px, depth)
            self.bid_px = bid_px
            self._sz_bid = [bids[p] for p in bid_px]
            self._top_bid = self._not_bid = None
        if la:
            if len(ask_px) > depth:
                _truncate(asks, ask_px, depth)
            self.ask_px = ask_px
            self._sz_ask = [asks[p] for p in ask_px]
            self._top_ask = self._not_ask = None
        self.update_id = ev.update_id
        self.ts = ev.ts
        return None

    def _restore(self, lb: list[Level], la: list[Level]) -> None:
        """Put the committed levels back into the side maps a rejected delta touched."""
        if lb:
            _restore(self.bids, self.bid_px, self._sz_bid)
        if la:
            _restore(self.asks, self.ask_px, self._sz_ask)

    def _apply_snapshot(self, ev: BookSnapshot | BookDelta, max_spread_bps: float) -> str | None:
        bids, err = _fresh(ev.bids)
        if err is None:
            asks, err = _fresh(ev.asks)
        if err is not None:
            return err
        bid_px = sorted(bids, reverse=True)
        ask_px = sorted(asks)
        err = check_touch(bid_px, ask_px, max_spread_bps)
        if err is not None:
            return err
        depth = self.depth
        if len(bid_px) > depth:
            _truncate(bids, bid_px, depth)
        if len(ask_px) > depth:
            _truncate(asks, ask_px, depth)
        self.bids, self.asks, self.bid_px, self.ask_px = bids, asks, bid_px, ask_px
        self._sz_bid = [bids[p] for p in bid_px]
        self._sz_ask = [asks[p] for p in ask_px]
        self.update_id = ev.update_id
        self.ts = ev.ts
        self._top_bid = self._top_ask = self._not_bid = self._not_ask = None
        return None

    def bid_notionals(self) -> list[float]:
        """Price · size of every level of ``bid_px``, best first: shared by the spoof tracker (each update) and the
        analyzer (each evaluation), so it is built once per committed update. Callers must not mutate it."""
        n = self._not_bid
        if n is None:
            # one IEEE multiply per level, from the aligned lists (no dict lookup; a C-level map beats a comprehension)
            n = self._not_bid = list(map(mul, self.bid_px, self._sz_bid))
        return n

    def ask_notionals(self) -> list[float]:
        """:meth:`bid_notionals` for the ask side."""
        n = self._not_ask
        if n is None:
            n = self._not_ask = list(map(mul, self.ask_px, self._sz_ask))
        return n

    def top(self, side: str, n: int) -> np.ndarray:
        """``(k, 3)`` read-only array of price, size, notional for the best ``k = min(n, levels)`` levels."""
        if side == "bid":
            arr = self._top_bid
            if arr is None:
                arr = self._top_bid = _levels_array(self.bid_px, self._sz_bid)
        elif side == "ask":
            arr = self._top_ask
            if arr is None:
                arr = self._top_ask = _levels_array(self.ask_px, self._sz_ask)
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


def _fresh(levels: list[Level]) -> tuple[dict[float, float], str | None]:
    out: dict[float, float] = {}
    for p, s in levels:
        if not (0.0 < p < _INF and 0.0 <= s < _INF):  # NaN fails every comparison
            return out, f"invalid level ({p}, {s})"
        if s > 0.0:
            out[p] = s
        else:
            out.pop(p, None)
    return out, None


def _upsert(side: dict[float, float], levels: list[Level]) -> str | None:
    """Upsert ``levels`` into ``side`` in place, in order (size 0 deletes); stop at the first invalid level and say
    why (the caller restores the side from its committed lists). One hash of the price per level: no journal."""
    pop = side.pop
    inf = _INF
    for p, s in levels:
        if not (0.0 < p < inf and 0.0 <= s < inf):  # NaN fails every comparison
            return f"invalid level ({p}, {s})"
        if s > 0.0:
            side[p] = s
        else:
            pop(p, None)
    return None


def _restore(side: dict[float, float], px: list[float], sizes: list[float]) -> None:
    """Make ``side`` hold exactly the committed levels again (a rejected update's rare path; the maps' order is never
    read: every reader goes through the sorted price lists)."""
    side.clear()
    side.update(zip(px, sizes, strict=True))


def _truncate(side: dict[float, float], px: list[float], depth: int) -> None:
    """Drop the levels beyond ``depth`` from ``side`` and ``px`` (sorted best first)."""
    for p in px[depth:]:
        del side[p]
    del px[depth:]


def _levels_array(px: list[float], sizes: list[float]) -> np.ndarray:
    n = len(px)
    arr = np.empty((n, 3))
    if n:
        p = np.fromiter(px, np.float64, n)
        s = np.fromiter(sizes, np.float64, n)
        arr[:, 0] = p
        arr[:, 1] = s
        np.multiply(p, s, out=arr[:, 2])
    arr.flags.writeable = False
    return arr
