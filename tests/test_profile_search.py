"""The volume profile (bot.analysis.profile) after every move of the window: its histogram against one built from
scratch over the window's trades, its incremental POC against ``base + np.argmax(hist)``; a trending price (the window
leaves empty bins behind at one end and grows past the histogram at the other, so it is re-allocated under queued
trades), moves of a few trades (the Python loop) and of many (``ufunc.at``), equal notionals (ties), zero-cent trades
(all-zero windows: the first bin, as np.argmax)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.analysis.profile import VolumeProfile


class _View:
    """A TradeView stand-in: the three columns the profile reads."""

    def __init__(self, price: np.ndarray, notional: np.ndarray, seq: np.ndarray) -> None:
        self.price, self.notional, self.seq = price, notional, seq

    def __len__(self) -> int:
        return len(self.seq)


def _check(prof: VolumeProfile, price: np.ndarray, notional: np.ndarray) -> None:
    idx = np.rint(price * prof.inv).astype(np.int64) - prof.base
    assert idx.min() >= 0 and idx.max() < len(prof.hist)
    scratch = np.bincount(idx, weights=np.rint(notional * 100.0), minlength=len(prof.hist))
    assert np.array_equal(prof.hist, scratch)
    expected = (prof.base + int(np.argmax(prof.hist))) / prof.inv
    assert prof.poc() == expected  # the incremental POC
    prof.top = None  # and a fresh search
    assert prof.poc() == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), drift=st.sampled_from([-2, -1, 0, 1, 2]), zero=st.sampled_from([0.0, 0.2, 1.0]),
       ties=st.booleans(), steps=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=5, max_size=80),
       jumps=st.booleans())
# found by CI: an all-zero window whose histogram is re-allocated below a cached zero-weight POC
@example(seed=0, drift=-2, zero=1.0, ties=False, steps=[(0, 1), (0, 10), (0, 40), (0, 40), (0, 40), (0, 7)],
         jumps=False)
def test_search_equals_argmax_of_the_whole_histogram(seed: int, drift: int, zero: float, ties: bool,
                                                     steps: list[tuple[int, int]], jumps: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    moves = rng.integers(-3, 4, n) + drift
    if jumps:  # now and then a jump of hundreds of bins: past the histogram's margin, either way
        moves = np.where(rng.random(n) < 0.01, rng.integers(-900, 900, n), moves)
    price = np.round(1000.0 + np.cumsum(moves) * 0.1, 1)
    notional = np.full(n, 50.0) if ties else np.round(rng.uniform(1.0, 500.0, n), 2)
    notional = np.where(rng.random(n) < zero, 0.004, notional)  # 0.4 cents: a zero weight
    seq = np.arange(1, n + 1, dtype=np.int64)
    prof = VolumeProfile()
    first = last = 0
    for drop, add in steps:
        last = min(n, last + add)
        first = min(last, first + drop)
        prof.update(_View(price[first:last], notional[first:last], seq[first:last]), 0.1)
        if last > first:
            _check(prof, price[first:last], notional[first:last])
