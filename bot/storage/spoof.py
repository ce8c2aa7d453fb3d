"""Large-level tracker and suspicious-order records (STRATEGY.md §3, spoof tracking; notional throughout).

Times are the book's exchange ``ts`` for placement/removal (so a level's lifetime is measured on the exchange's
clock, free of network jitter) and the storage clock for pruning. The "top-N range" is the price span of the best
``depth_limit_for_calc`` levels of that side after the update.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Container
from typing import TYPE_CHECKING

from bot.events import BookDelta, Level
from bot.storage.types import BookSide, SuspiciousOrder

if TYPE_CHECKING:
    from bot.storage.book import OrderBook


class _Everything:
    """A container holding every price: after a snapshot any tracked level may have gone."""

    __slots__ = ()

    def __contains__(self, item: object) -> bool:
        return True


_EVERYTHING = _Everything()


class SpoofTracker:
    """Per-symbol tracker: ``tracked[side][price] = first_seen_ts`` and the record deque.

    A tracked level's notional is read only when it vanishes, from the book the tracker saw last (the level was in
    it, see :meth:`_side`): it is the notional the level had at its last update before it vanished."""

    __slots__ = ("_last", "_px", "lifetime_sec", "lookback_sec", "min_abs", "records", "side_pct", "top_n", "tracked")

    def __init__(self, top_n: int, side_pct: float, min_abs: float, lifetime_ms: float, lookback_sec: float) -> None:
        self.top_n = top_n
        self.side_pct = side_pct
        self.min_abs = min_abs
        self.lifetime_sec = lifetime_ms / 1000.0
        self.lookback_sec = lookback_sec
        self.tracked: dict[BookSide, dict[float, float]] = {"bid": {}, "ask": {}}
        self.records: deque[SuspiciousOrder] = deque()
        self._px: dict[BookSide, list[float] | None] = {"bid": None, "ask": None}  # price list of the last run
        # the last run's levels in ascending price order: prices and notionals (the book's committed lists)
        self._last: dict[BookSide, tuple[list[float], list[float]]] = {"bid": ([], []), "ask": ([], [])}

    def on_book(self, book: OrderBook, now: float, delta: BookDelta | None = None) -> None:
        """Run steps 1–4 of the spec for both sides after a committed book update (``delta`` None: a snapshot).

        Must see every committed update of ``book`` (storage calls it after each one): a delta's side is checked only
        for the tracked levels the delta deleted."""
        if delta is None:
            self._side("bid", book.bid_px, book._not_bid, book._asc_bid, book._asc_not_bid, _EVERYTHING, book.ts, None)
            self._side("ask", book.ask_px, book._not_ask, book._asc_ask, book._not_ask, _EVERYTHING, book.ts, None)
        else:
            self._side("bid", book.bid_px, book._not_bid, book._asc_bid, book._asc_not_bid, book._gone_bid, book.ts,
                       delta.bids)
            self._side("ask", book.ask_px, book._not_ask, book._asc_ask, book._not_ask, book._gone_ask, book.ts,
                       delta.asks)
        self.prune(now)

    def _side(
        self,
        side: BookSide,
        px: list[float],
        notionals: list[float],
        asc_px: list[float],
        asc_notionals: list[float],
        gone: Container[float],
        ts: float,
        changed: list[Level] | None,
    ) -> None:
        """Steps 1–3 for one side; skipped when a delta left this side alone (same price list object, which the
        book replaces whenever its prices change, and no level updates: nothing here can change).

        ``px``/``notionals`` are the book's levels best first (price · size per level, the book's committed lists,
        shared with the analyzer's reads); ``asc_px``/``asc_notionals`` the same levels in ascending price order
        (``asc_px`` ends with the book's NaN; the asks' notionals are ascending already: the same list); ``gone``
        holds (at least) every price the update deleted.

        Every tracked level is visited (there are a handful): one outside the new top-N range is dropped, one gone
        from the book is dropped and recorded if it lived less than the lifetime. After each run every tracked level
        is in the book this run saw, so a tracked level is gone now only if this update deleted it: only those are
        looked up (by binary search in ``asc_px``; a deleted price may have come back later in the same delta)."""
        if changed is not None and not changed and px is self._px[side]:
            return
        self._px[side] = px
        last = self._last[side]
        self._last[side] = (asc_px, asc_notionals)
        top_n = self.top_n
        top = px if len(px) <= top_n else px[:top_n]  # committed price lists are never mutated: no copy needed
        tracked = self.tracked[side]
        if not top:
            tracked.clear()
            return
        if len(notionals) > top_n:
            notionals = notionals[:top_n]
        # float(max(pct · sum, min_abs)) without the two calls: max keeps its first argument unless the second is
        # greater (NaN included), float() of a float is that float; a float, so the compare below specialises
        thr = self.side_pct * sum(notionals)
        if self.min_abs > thr:
            thr = float(self.min_abs)
        if tracked:
            lo, hi = (top[-1], top[0]) if side == "bid" else (top[0], top[-1])
            dead: list[float] = []  # deleted after the loop (iterating the dict itself, not a copy of its items)
            for p, first in tracked.items():
                if p < lo or hi < p:  # not lo <= p <= hi (no NaN here)
                    dead.append(p)  # left the top-N range: not evidence of anything
                elif p in gone and asc_px[bisect_left(asc_px, p)] != p:  # p <= hi <= asc_px[-1]: the slot exists
                    dead.append(p)
                    if ts - first < self.lifetime_sec:
                        self.records.append(SuspiciousOrder(side, p, _notional_at(last, p), first, ts))
            for p in dead:
                del tracked[p]
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
                    tracked[p] = ts
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


def _notional_at(levels: tuple[list[float], list[float]], p: float) -> float:
    """The notional of price ``p`` in ascending ``(prices, notionals)`` lists that hold it."""
    px, notionals = levels
    i = bisect_left(px, p)
    if i == len(px) or px[i] != p:
        raise AssertionError(f"spoof tracker: tracked price {p} missing from the book it was seen in")
    return notionals[i]
