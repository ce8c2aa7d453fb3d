"""The simulated exchange's own book: deltas keyed by exact ticks, whatever float spelling the feed uses."""

from __future__ import annotations

import random

import numpy as np

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
