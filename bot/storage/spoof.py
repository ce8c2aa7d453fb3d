"""Large-level tracker and suspicious-order records (STRATEGY.md §3, spoof tracking; notional throughout).

Times are the book's exchange ``ts`` for placement/removal (so a level's lifetime is measured on the exchange's
clock, free of network jitter) and the storage clock for pruning. The "top-N range" is the price span of the best
``depth_limit_for_calc`` levels of that side after the update.
"""

from __future__ import annotations

from collections import deque

from bot.storage.types import BookSide, SuspiciousOrder


class SpoofTracker:
    """Per-symbol tracker: ``tracked[side][price] = [first_seen_ts, last_notional]`` and the record deque."""

    __slots__ = ("lifetime_sec", "lookback_sec", "min_abs", "records", "side_pct", "top_n", "tracked")

    def __init__(self, top_n: int, side_pct: float, min_abs: float, lifetime_ms: float, lookback_sec: float) -> None:
        self.top_n = top_n
        self.side_pct = side_pct
        self.min_abs = min_abs
        self.lifetime_sec = lifetime_ms / 1000.0
        self.lookback_sec = lookback_sec
        self.tracked: dict[BookSide, dict[float, list[float]]] = {"bid": {}, "ask": {}}
        self.records: deque[SuspiciousOrder] = deque()

    def on_book(
        self,
        bid_px: list[float],
        bids: dict[float, float],
        ask_px: list[float],
        asks: dict[float, float],
        ts: float,
        now: float,
    ) -> None:
        """Run steps 1–4 of the spec for both sides after a committed book update."""
        self._side("bid", bid_px, bids, ts)
        self._side("ask", ask_px, asks, ts)
        self.prune(now)

    def _side(self, side: BookSide, px: list[float], levels: dict[float, float], ts: float) -> None:
        top = px[: self.top_n]
        tracked = self.tracked[side]
        if not top:
            tracked.clear()
            return
        notionals = [p * levels[p] for p in top]
        thr = max(self.side_pct * sum(notionals), self.min_abs)
        lo, hi = (top[-1], top[0]) if side == "bid" else (top[0], top[-1])
        if tracked:
            for p in list(tracked):
                entry = tracked[p]
                if not lo <= p <= hi:
                    del tracked[p]  # left the top-N range: not evidence of anything
                    continue
                size = levels.get(p)
                if size is None:
                    del tracked[p]
                    if ts - entry[0] < self.lifetime_sec:
                        self.records.append(SuspiciousOrder(side, p, entry[1], entry[0], ts))
                else:
                    entry[1] = p * size
        for p, n in zip(top, notionals, strict=True):
            if n >= thr and p not in tracked:
                tracked[p] = [ts, n]

    def prune(self, now: float) -> None:
        cutoff = now - self.lookback_sec
        recs = self.records
        while recs and recs[0].removed_ts < cutoff:
            recs.popleft()

    def since(self, t: float, now: float) -> list[SuspiciousOrder]:
        self.prune(now)
        t = max(t, now - self.lookback_sec)  # exact even if book ts ever stepped back (prune stops at the front)
        return [r for r in self.records if r.removed_ts >= t]
