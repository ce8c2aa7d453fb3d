"""OrderBook deltas against a plain model: copy the side, apply level by level, validate, sort, truncate."""

from __future__ import annotations

import math
import random

import pytest

from bot.events import BookDelta, BookSnapshot
from bot.storage.book import OrderBook, check_touch


def _model(bids: dict, asks: dict, d: BookDelta, depth: int) -> tuple[dict, dict] | None:
    """The book a delta should leave (None: rejected, the book stays as it was)."""
    out = []
    for side, levels in ((dict(bids), d.bids), (dict(asks), d.asks)):
        for p, s in levels:
            if not (0.0 < p < math.inf and 0.0 <= s < math.inf):
                return None
            if s > 0.0:
                side[p] = s
            else:
                side.pop(p, None)
        out.append(side)
    nb, na = out
    if check_touch(sorted(nb, reverse=True), sorted(na), 1000.0) is not None:
        return None
    keep_b = sorted(nb, reverse=True)[:depth]
    keep_a = sorted(na)[:depth]
    return {p: nb[p] for p in keep_b}, {p: na[p] for p in keep_a}


@pytest.mark.parametrize("seed", range(6))
def test_deltas_match_the_plain_model(seed: int) -> None:
    rng = random.Random(seed)
    depth = 20
    book = OrderBook("X", depth)
    snap = BookSnapshot("X", 0.0, [(100.0 - 0.5 * i, 1.0) for i in range(1, 25)],
                        [(100.0 + 0.5 * i, 1.0) for i in range(1, 25)], 1)
    assert book.try_apply(snap, True, 1000.0) is None
    mid = 100.0
    for u in range(2, 400):
        mid += rng.choice([-0.5, 0.0, 0.5])

        def levels(sign: float, mid: float = mid) -> list[tuple[float, float]]:
            out = []
            for _ in range(rng.choice([0, 1, 3, 15, 30])):
                p = mid + sign * 0.5 * rng.randint(1, 40)
                s = rng.choice([0.0, 0.0, 1.0, 2.5, 40.0])
                if rng.random() < 0.02:
                    p, s = rng.choice([(p, math.nan), (p, -1.0), (math.inf, 1.0), (mid - sign, 1.0)])
                out.append((p, s))
            return out

        d = BookDelta("X", float(u), levels(-1.0), levels(1.0), u)
        before = (dict(book.bids), dict(book.asks), list(book.bid_px), list(book.ask_px))
        want = _model(book.bids, book.asks, d, depth)
        err = book.try_apply(d, False, 1000.0)
        if want is None:
            assert err is not None
            assert (dict(book.bids), dict(book.asks), book.bid_px, book.ask_px) == before
        else:
            assert err is None and (book.bids, book.asks) == want
        assert book.bid_px == sorted(book.bids, reverse=True) and book.ask_px == sorted(book.asks)
        assert book.bid_notionals() == [p * book.bids[p] for p in book.bid_px]
        assert book.ask_notionals() == [p * book.asks[p] for p in book.ask_px]
        assert book.top("bid", 100)[:, 1].tolist() == [book.bids[p] for p in book.bid_px]


_BAD_LEVELS = [(math.nan, 1.0), (0.0, 1.0), (-0.0, 1.0), (-3.0, 1.0), (math.inf, 1.0), (-math.inf, 1.0),
               (None, math.nan), (None, -1.0), (None, math.inf), (None, -0.5)]


@pytest.mark.parametrize("seed", range(8))
def test_unsorted_deltas_duplicates_and_every_invalid_level(seed: int) -> None:
    """Levels in any order, a price given twice in one delta (the last one wins), deletes of absent prices, sides
    emptied and refilled within one delta, and every kind of invalid price and size at any position: the same book,
    or the same rejection (the first invalid level's message), as the plain model."""
    rng = random.Random(1000 + seed)
    depth = 12
    book = OrderBook("X", depth)
    snap = BookSnapshot("X", 0.0, [(1000.0 - i, 1.0) for i in range(1, 15)],
                        [(1000.0 + i, 1.0) for i in range(1, 15)], 1)
    assert book.try_apply(snap, True, 1000.0) is None
    for u in range(2, 600):
        def levels(sign: float) -> list[tuple[float, float]]:
            out = []
            for _ in range(rng.choice([0, 1, 2, 5, 12, 30])):
                p = 1000.0 + sign * rng.randint(1, 20)
                s = rng.choice([0.0, 0.0, 0.5, 2.0, 7.25])
                if rng.random() < 0.015:
                    bp, bs = rng.choice(_BAD_LEVELS)
                    p, s = (p if bp is None else bp), bs
                out.append((p, s))
            if out and rng.random() < 0.2:
                out.append(rng.choice(out))  # the same price again
            return out

        d = BookDelta("X", float(u), levels(-1.0), levels(1.0), u)
        before = (book.bids, book.asks, list(book.bid_px), list(book.ask_px), book.update_id)
        want = _model(book.bids, book.asks, d, depth)
        err = book.try_apply(d, False, 1000.0)
        if want is None:
            assert err is not None
            assert (book.bids, book.asks, book.bid_px, book.ask_px, book.update_id) == before
            bad = next(((p, s) for p, s in d.bids + d.asks if not (0.0 < p < math.inf and 0.0 <= s < math.inf)), None)
            if bad is not None:
                assert err == f"invalid level ({bad[0]}, {bad[1]})"
        else:
            assert err is None and (book.bids, book.asks) == want and book.update_id == u
        assert book.bid_px == sorted(book.bids, reverse=True) and book.ask_px == sorted(book.asks)
        assert book.bid_notionals() == [p * book.bids[p] for p in book.bid_px]
        assert book.ask_notionals() == [p * book.asks[p] for p in book.ask_px]
        assert book.bid_px == book._asc_bid[-2::-1] and book._not_bid == book._asc_not_bid[::-1]
        assert book.ask_px == book._asc_ask[:-1] and math.isnan(book._asc_bid[-1]) and math.isnan(book._asc_ask[-1])
        if rng.random() < 0.01:  # an occasional fresh snapshot
            assert book.try_apply(snap, True, 1000.0) is None
