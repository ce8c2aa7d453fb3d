"""The POC search over the live bin range [rmin, rmax] (bot.analysis.profile) against ``base + np.argmax(hist)`` of
the whole histogram after every move of the window: a trending price (the window leaves empty bins behind at one end
and grows at the other), equal notionals (ties), zero-cent trades (all-zero windows: the first bin, as np.argmax)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.analysis.profile import VolumeProfile


class _View:
    """A TradeView stand-in: the three columns the profile reads."""

    def __init__(self, price: np.ndarray, notional: np.ndarray, seq: np.ndarray) -> None:
        self.price, self.notional, self.seq = price, notional, seq

    def __len__(self) -> int:
        return len(self.seq)


def _check(prof: VolumeProfile) -> None:
    expected = (prof.base + int(np.argmax(prof.hist))) / prof.inv
    prof.top = None  # force a search, whatever the incremental POC says
    assert prof.poc() == expected
    nz = [prof.base + i for i, v in enumerate(prof.hist) if v]
    if nz:  # every non-zero bin is inside the searched range
        assert prof.rmin <= nz[0] and nz[-1] <= prof.rmax


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), drift=st.sampled_from([-2, -1, 0, 1, 2]), zero=st.sampled_from([0.0, 0.2, 1.0]),
       ties=st.booleans(), steps=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=5, max_size=80))
def test_search_equals_argmax_of_the_whole_histogram(seed: int, drift: int, zero: float, ties: bool,
                                                     steps: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    price = np.round(100.0 + np.cumsum(rng.integers(-3, 4, n) + drift) * 0.1, 1)
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
            _check(prof)
