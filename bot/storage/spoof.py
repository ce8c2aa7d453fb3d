"""Large-level tracker and suspicious-order records (STRATEGY.md §3, spoof tracking; notional throughout).

Times are the book's exchange ``ts`` for placement/removal (so a level's lifetime is measured on the exchange's
clock, free of network jitter) and the storage clock for pruning. The "top-N range" is the price span of the best
``depth_limit_for_calc`` levels of that side after the update.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING

from bot.events import BookDelta, Level
from bot.storage.types import BookSide, SuspiciousOrder

if TYPE_CHECKING:
    from bot.storage.book import OrderBook


class SpoofTracker:
    """Per-symbol tracker: ``tracked[side][price] = [first_seen_ts, last_notional]`` and the record deque."""

    __slots__ = ("_px", "lifetime_sec", "lookback_sec", "min_abs", "records", "side_pct", "top_n", "tracked")

    def __init__(self, top_n: int, side_pct: float, min_abs: float, lifetime_ms: float, lookback_sec: float) -> None:
        self.top_n = top_n
        self.side_pct = side_pct
        self.min_abs = min_abs
        self.lifetime_sec = lifetime_ms / 1000.0
        self.lookback_sec = lookback_sec
        self.tracked: dict[BookSide, dict[float, list[float]]] = {"bid": {}, "ask": {}}
        self.records: deque[SuspiciousOrder] = deque()
        self._px: dict[BookSide, list[float] | None] = {"bid": None, "ask": None}  # price list of the last run

    def on_book(self, book: OrderBook, now: float, delta: BookDelta | None = None) -> None:
        """Run steps 1–4 of the spec for both sides after a committed book update (``delta`` None: a snapshot)."""
        if delta is None:
            self._side("bid", book.bid_px, book._not_bid, book._asc_bid, book._asc_not_bid, book.ts, None)
            self._side("ask", book.ask_px, book._not_ask, book.ask_px, book._not_ask, book.ts, None)
        else:
            self._side("bid", book.bid_px, book._not_bid, book._asc_bid, book._asc_not_bid, book.ts, delta.bids)
            self._side("ask", book.ask_px, book._not_ask, book.ask_px, book._not_ask, book.ts, delta.asks)
        self.prune(now)

    def _side(
        self,
        side: BookSide,
        px: list[float],
        notionals: list[float],
        asc_px: list[float],
        asc_notionals: list[float],
        ts: float,
        changed: list[Level] | None,
    ) -> None:
        """Steps 1–3 for one side; skipped when a delta left this side alone (same price list object, which the
        book replaces whenever its prices change, and no level updates: nothing here can change).

        ``px``/``notionals`` are the book's levels best first (price · size per level, the book's committed lists,
        shared with the analyzer's reads); ``asc_px``/``asc_notionals`` the same levels in ascending price order, where
        a tracked price is looked up by binary search (the asks' best-first order is ascending: the same lists).

        Every tracked level is visited (there are a handful): one outside the new top-N range is dropped, one gone
        from the book is dropped and recorded if it lived less than the lifetime, the others get their current
        notional (the book's ``price · size`` of that level: the same multiply of the same floats)."""
        if changed is not None and not changed and px is self._px[side]:
            return
        self._px[side] = px
        top_n = self.top_n
        top = px if len(px) <= top_n else px[:top_n]  # committed price lists are never mutated: no copy needed
        tracked = self.tracked[side]
        if not top:
            tracked.clear()
            return
        if len(notionals) > top_n:
            notionals = notionals[:top_n]
        thr = float(max(self.side_pct * sum(notionals), self.min_abs))  # a float: thr.__le__ below
        if tracked:
            lo, hi = (top[-1], top[0]) if side == "bid" else (top[0], top[-1])
            for p, entry in list(tracked.items()):
                if not lo <= p <= hi:
                    del tracked[p]  # left the top-N range: not evidence of anything
                    continue
                i = bisect_left(asc_px, p)  # p <= the top-N range's high end <= asc_px[-1]: i is in range
                if asc_px[i] == p:
                    entry[1] = asc_notionals[i]
                else:
                    del tracked[p]
                    if ts - entry[0] < self.lifetime_sec:
                        self.records.append(SuspiciousOrder(side, p, entry[1], entry[0], ts))
        # n >= thr (the same comparison as thr <= n): a plain loop over the notionals alone, whose float compare
        # CPython specialises (a zip of prices and notionals doubles the cost per level, a compress/map pipeline
        # triples it); the few qualifying levels find their position with list.index from just past the previous
        # one: any equal notional in between would have qualified and been passed already, so it is this level
        index = notionals.index
        i = 0
        for n in notionals:
            if n >= thr:
                i = index(n, i)
                p = top[i]
                if p not in tracked:
                    tracked[p] = [ts, n]
                i += 1

    def prune(self, now: float) -> None:
        cutoff = now - self.lookback_sec
        recs = self.records
        while recs and recs[0].removed_ts < cutoff:
            recs.popleft()

    def since(self, t: float, now: float) -> list[SuspiciousOrder]:
        self.prune(now)
        t = max(t, now - self.lookback_sec)  # exact even if book ts ever stepped back (prune stops at the front)
        return [r for r in self.records if r.removed_ts >= t]
