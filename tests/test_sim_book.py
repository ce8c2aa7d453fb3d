"""The simulated exchange's own book: deltas keyed by exact ticks, whatever float spelling the feed uses."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bot.adapters.simulated import book as book_mod
from bot.adapters.simulated.book import SimBook


def _reference(tick: float, steps: list[tuple[list[tuple[float, float]], list[tuple[float, float]]]]
               ) -> tuple[dict[int, float], dict[int, float]]:
    """The book as plain ``round(price / tick)`` arithmetic would keep it (no cache, no trim: few levels)."""
    inv = 1.0 / tick
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    for b, a in steps:
        for side, levels in ((bids, b), (asks, a)):
            for p, s in levels:
                if s > 0:
                    side[round(p * inv)] = s
                else:
                    side.pop(round(p * inv), None)
    return bids, asks


def _steps(seed: int, n: int) -> list[tuple[list[tuple[float, float]], list[tuple[float, float]]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = [(round(rng.randint(600000, 600040) * 0.1, 1) + rng.choice([0.0, 1e-11, -1e-11]),
              rng.choice([0.0, 0.5, 1.25])) for _ in range(rng.randint(0, 6))]
        a = [(rng.randint(600041, 600080) * 0.1, rng.choice([0.0, 0.3])) for _ in range(rng.randint(0, 6))]
        out.append((b, a))
    return out


def test_delta_matches_round_arithmetic() -> None:
    steps = _steps(1, 400)
    bk = SimBook(0.1)
    for b, a in steps:
        bk.delta(b, a)
    assert (bk.bids, bk.asks) == _reference(0.1, steps)


def test_tick_cache_clears_when_full_and_stays_exact(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(book_mod, "_CACHE_MAX", 8)
    steps = _steps(2, 300)
    bk = SimBook(0.1)
    for b, a in steps:
        bk.delta(b, a)
        assert len(bk._keys) <= 8
    assert (bk.bids, bk.asks) == _reference(0.1, steps)


def test_delta_accepts_level_arrays() -> None:
    steps = _steps(3, 50)
    a_book, l_book = SimBook(0.1), SimBook(0.1)
    for b, a in steps:
        l_book.delta(b, a)
        a_book.delta(np.array(b, float).reshape(-1, 2), np.array(a, float).reshape(-1, 2))  # type: ignore[arg-type]
    assert (a_book.bids, a_book.asks) == (l_book.bids, l_book.asks)


class _Eager:
    """The book applied delta by delta, as plain arithmetic, trim included."""

    def __init__(self, tick: float) -> None:
        self.inv = 1.0 / tick
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}

    def snapshot(self, b: list[tuple[float, float]], a: list[tuple[float, float]]) -> None:
        self.bids = {round(p * self.inv): s for p, s in b if s > 0}
        self.asks = {round(p * self.inv): s for p, s in a if s > 0}
        self._trim()

    def delta(self, b: list[tuple[float, float]], a: list[tuple[float, float]]) -> None:
        for side, levels in ((self.bids, b), (self.asks, a)):
            for p, s in levels:
                if s > 0:
                    side[round(p * self.inv)] = s
                else:
                    side.pop(round(p * self.inv), None)
        if len(self.bids) > book_mod._TRIM_AT or len(self.asks) > book_mod._TRIM_AT:
            self._trim()

    def _trim(self) -> None:
        keep = book_mod.KEEP_LEVELS
        self.bids = {k: self.bids[k] for k in sorted(self.bids, reverse=True)[:keep]}
        self.asks = {k: self.asks[k] for k in sorted(self.asks)[:keep]}

    def consume(self, buy: bool, ticks: int, size: float) -> None:
        side = self.asks if buy else self.bids
        left = side.get(ticks, 0.0) - size
        if left > 1e-12:
            side[ticks] = left
        else:
            side.pop(ticks, None)


def _wide_steps(rng: random.Random, n: int, width: int, spellings: bool) -> list[tuple[list, list]]:
    """Deltas over ``width`` ticks per side (wide enough to pass the trim threshold), sizes 0 half the time, a price
    sometimes given twice, and (``spellings``) the same tick spelled by two floats."""
    out = []
    for _ in range(n):
        sides = []
        for lo in (600000 - width, 600001):
            levels = []
            for _ in range(rng.choice([0, 1, 4, 12, 40])):
                p = rng.randint(lo, lo + width - 1) * 0.1
                if spellings and rng.random() < 0.2:
                    p += rng.choice([1e-11, -1e-11])
                levels.append((p, rng.choice([0.0, 0.0, 0.5, 1.25, 3.0])))
            if levels and rng.random() < 0.2:
                levels.append(rng.choice(levels))
            sides.append(levels)
        out.append((sides[0], sides[1]))
    return out


@pytest.mark.parametrize(("seed", "width", "spellings"), [(0, 40, False), (1, 40, True), (2, 400, False),
                                                         (3, 400, True), (4, 1500, False)])
def test_book_equals_the_plain_book_at_every_read(seed: int, width: int, spellings: bool) -> None:
    """Reads (best levels, sizes, levels to take, consume) at random moments, snapshots now and then, books wide
    enough to be trimmed: every read sees what the plain book holds at that moment."""
    rng = random.Random(seed)
    book, eager = SimBook(0.1), _Eager(0.1)
    trims = 0
    for b, a in _wide_steps(rng, 1500, width, spellings):
        if rng.random() < 0.01:
            snap_b = [((600000 - k) * 0.1, 1.0) for k in range(rng.choice([10, 80]))]
            snap_a = [((600001 + k) * 0.1, 2.0) for k in range(rng.choice([10, 80]))]
            book.snapshot(snap_b, snap_a)
            eager.snapshot(snap_b, snap_a)
        before = len(eager.bids) + len(eager.asks)
        book.delta(b, a)
        eager.delta(b, a)
        trims += len(eager.bids) + len(eager.asks) < before - 20
        r = rng.random()
        if r < 0.05:
            assert book.best_bid() == (max(eager.bids) if eager.bids else None)
            assert book.best_ask() == (min(eager.asks) if eager.asks else None)
        elif r < 0.1:
            k = rng.randint(600000 - width, 600000 + width)
            assert book.size_at(k <= 600000, k) == (eager.bids if k <= 600000 else eager.asks).get(k, 0.0)
        elif r < 0.15:
            buy = rng.random() < 0.5
            want = sorted(eager.asks.items()) if buy else sorted(eager.bids.items(), reverse=True)
            assert book.levels_to_take(buy, None) == want
            if want:
                book.consume(buy, want[0][0], 0.4)
                eager.consume(buy, want[0][0], 0.4)
    assert (book.bids, book.asks) == (eager.bids, eager.asks)
    if width > 100:
        assert trims  # the threshold was reached
