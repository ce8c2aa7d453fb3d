"""Spoof tracking through DataStorage against a plain model of STRATEGY.md §3: a price→size map per side, and per
update every tracked level visited (dropped if outside the top-N range, dropped and recorded with its last notional
if gone before the lifetime), every top-N level at or above max(pct · side notional, min) tracked."""

from __future__ import annotations

import random

import pytest

from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot
from bot.storage import DataStorage
from settings import Settings
from settings.search import with_overrides

SYM = "X"


class _Model:
    def __init__(self, top_n: int, depth: int, pct: float, min_abs: float, lifetime_sec: float) -> None:
        self.top_n, self.depth, self.pct, self.min_abs, self.life = top_n, depth, pct, min_abs, lifetime_sec
        self.book: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
        self.tracked: dict[str, dict[float, list[float]]] = {"bid": {}, "ask": {}}
        self.records: list[tuple[str, float, float, float, float]] = []

    def apply(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]], ts: float, snap: bool) -> None:
        for side, levels in (("bid", bids), ("ask", asks)):
            book = {} if snap else self.book[side]
            for p, s in levels:
                if s > 0.0:
                    book[p] = s
                else:
                    book.pop(p, None)
            keep = sorted(book, reverse=side == "bid")[: self.depth]
            self.book[side] = {p: book[p] for p in keep}
        for side in ("bid", "ask"):
            self._spoof(side, ts)

    def _spoof(self, side: str, ts: float) -> None:
        levels, tracked = self.book[side], self.tracked[side]
        top = sorted(levels, reverse=side == "bid")[: self.top_n]
        if not top:
            tracked.clear()
            return
        notionals = [p * levels[p] for p in top]
        thr = max(self.pct * sum(notionals), self.min_abs)
        lo, hi = min(top), max(top)
        for p, entry in list(tracked.items()):
            if not lo <= p <= hi:
                del tracked[p]
            elif p in levels:
                entry[1] = p * levels[p]
            else:
                del tracked[p]
                if ts - entry[0] < self.life:
                    self.records.append((side, p, entry[1], entry[0], ts))
        for p, n in zip(top, notionals, strict=True):
            if n >= thr and p not in tracked:
                tracked[p] = [ts, n]


def _levels(rng: random.Random, book: dict[float, float], side: str, mid: int) -> list[tuple[float, float]]:
    """A delta for one side: levels now on the wrong side of ``mid`` deleted, then random updates (big sizes now and
    then, deletes of present and absent prices, a price twice)."""
    sign = -1 if side == "bid" else 1
    out = [(p, 0.0) for p in book if (p * 10 - mid) * sign <= 0]
    for _ in range(rng.choice([0, 1, 3, 8, 20])):
        p = (mid + sign * rng.randint(1, 70)) / 10
        s = 0.0 if rng.random() < 0.4 else round(rng.choice([0.01, 0.2, 1.0, 3.0]) * rng.choice([1, 1, 40, 400]), 3)
        out.append((p, s))
    if out and rng.random() < 0.1:
        out.append(rng.choice(out))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize(("seed", "top_n", "depth"), [(0, 50, 50), (1, 50, 50), (2, 10, 50), (3, 25, 50), (4, 30, 200)])
def test_spoof_records_and_tracking_match_the_plain_model(seed: int, top_n: int, depth: int) -> None:
    rng = random.Random(seed)
    settings = with_overrides(Settings(), {"imbalance.depth_limit_for_calc": top_n,
                                           "websocket.subscription_depth": depth})
    imb = settings.imbalance
    clock = FixedClock(1000.0)
    ds = DataStorage(settings, clock, [SYM])
    tracker = ds._syms[SYM].spoof
    tracker.lookback_sec = 1e12  # keep every record
    model = _Model(top_n, depth, imb.large_order_side_percent, imb.large_order_min_notional_abs,
                   imb.spoof_lifetime_ms / 1000.0)
    mid, ts = 10_000, 1000.0
    for step in range(1500):
        ts += rng.choice([0.05, 0.2, 0.5, 1.0, 2.5])
        mid += rng.choice([-3, -1, 0, 0, 1, 3])
        u = step + 1
        clock.set(ts)
        if step == 0 or rng.random() < 0.01:
            bids = [((mid - k) / 10, round(rng.choice([0.2, 1.0, 40.0]), 3)) for k in range(1, 70)]
            asks = [((mid + k) / 10, round(rng.choice([0.2, 1.0, 40.0]), 3)) for k in range(1, 70)]
            ds.apply(BookSnapshot(SYM, ts, bids, asks, u))
            model.apply(bids, asks, ts, True)
        else:
            bids = _levels(rng, model.book["bid"], "bid", mid)
            asks = _levels(rng, model.book["ask"], "ask", mid)
            ds.apply(BookDelta(SYM, ts, bids, asks, u))
            model.apply(bids, asks, ts, False)
        assert not ds.issues
        book = ds._books[SYM]
        assert book.bids == model.book["bid"] and book.asks == model.book["ask"]
        for side in ("bid", "ask"):
            assert tracker.tracked[side] == {p: e[0] for p, e in model.tracked[side].items()}  # type: ignore[index]
            assert list(tracker.tracked[side]) == list(model.tracked[side])
        got = [(r.side, r.price, r.notional, r.placed_ts, r.removed_ts) for r in tracker.records]
        assert got == model.records
    assert len(model.records) > 20  # the stream does exercise the records
