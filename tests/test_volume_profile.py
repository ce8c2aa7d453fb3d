"""The incremental §4.7 volume profile (plain-Python lists) against a from-scratch numpy histogram (hypothesis): after
every move of the window, whatever its size (the Python path below 64 new trades, the numpy path above), the bins,
the weights and the POC are exactly those of ``np.rint`` bins, ``np.rint`` cent weights and ``np.argmax``."""

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


def _reference(price: np.ndarray, notional: np.ndarray, inv: float) -> dict[int, float]:
    idx = np.rint(price * inv).astype(np.int64)
    w = np.rint(notional * 100.0)
    out: dict[int, float] = {}
    for i, x in zip(idx.tolist(), w.tolist(), strict=True):
        out[i] = out.get(i, 0.0) + x
    return out


moves = st.lists(st.tuples(st.integers(0, 90), st.integers(0, 150), st.sampled_from([0.1, 0.1, 0.1, 0.5, 0.01])),
                 min_size=5, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=moves, seed=st.integers(0, 2**16), tick_prices=st.booleans(), ties=st.booleans())
def test_incremental_profile_equals_a_from_scratch_histogram(moves: list[tuple[int, int, float]], seed: int,
                                                             tick_prices: bool, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    if ties:  # a few prices, equal notionals: equal bins, so the lowest-bin rule decides the POC
        price = np.round(100.0 + rng.integers(-4, 5, n) * 0.1, 1)
        notional = np.full(n, 100.0)
    else:
        steps = rng.integers(-3, 4, n) * (0.1 if tick_prices else 0.037)
        price = np.round(100.0 + np.cumsum(steps), 3)
        notional = np.round(rng.choice([1.0, 2.0, 2.5, 1234.567, 0.004], n) * rng.integers(1, 4, n), 4)
    seq = np.arange(1, n + 1, dtype=np.int64)
    prof = VolumeProfile()
    first = last = 0
    for drop, add, bin_size in moves:
        last = min(n, last + add)
        first = min(last, first + drop) if drop < 80 else max(0, first - 40)  # 80+: the look-back grows back
        prof.update(_View(price[first:last], notional[first:last], seq[first:last]), bin_size)
        if last == first:
            continue
        ref = _reference(price[first:last], notional[first:last], prof.inv)
        got = {prof.base + i: v for i, v in enumerate(prof.hist) if v}
        assert got == {i: v for i, v in ref.items() if v}
        best = max(ref.values())
        if best > 0:  # an all-zero window has no POC to speak of (the dense search returns the first bin)
            assert prof.poc() == min(i for i, v in ref.items() if v == best) / prof.inv


def test_bins_and_weights_round_half_to_even_like_numpy() -> None:
    """Prices and notionals that land exactly on .5 of a bin or a cent: both paths round them to even."""
    price = np.array([100.05, 100.15, 100.25, 100.35] * 20)
    notional = np.array([0.005, 0.015, 0.025, 1.125] * 20)
    for k in (4, 80):  # the Python path and the numpy path
        prof = VolumeProfile()
        prof.update(_View(price[:k], notional[:k], np.arange(1, k + 1)), 0.1)
        ref = _reference(price[:k], notional[:k], prof.inv)
        assert {prof.base + i: v for i, v in enumerate(prof.hist) if v} == {i: v for i, v in ref.items() if v}


def test_a_push_that_ties_the_maximum_in_several_bins_moves_the_poc_to_the_lowest() -> None:
    """The POC bin (100.3) is not touched; the new trades bring 100.2 and then 100.1 level with it: the POC is the
    lowest of the three whatever order the new trades came in."""
    price = np.array([100.3, 100.3, 100.2, 100.1, 100.2, 100.1])
    notional = np.full(6, 10.0)
    prof = VolumeProfile()
    prof.update(_View(price[:4], notional[:4], np.arange(1, 5)), 0.1)
    assert prof.poc() == 100.3
    prof.update(_View(price, notional, np.arange(1, 7)), 0.1)
    assert prof.poc() == 100.1
