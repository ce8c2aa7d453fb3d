"""ImbalanceAnalyzer (STRATEGY.md §4): hand-computed cases on a real DataStorage fed with real book/trade events."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from bot.analysis.adaptive import AdaptParams
from bot.analysis.imbalance import ImbalanceAnalyzer, _Profile, history_size, profile_bin
from bot.analysis.results import NEUTRAL_IMBALANCE
from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"  # tick 0.1
T0 = 1_700_000_010.0
INSTRUMENTS = InstrumentRegistry.bundled()

Levels = list[tuple[float, float]]


def ladder(best: float, step: float, sizes: list[float]) -> Levels:
    return [(round(best + k * step, 1), s) for k, s in enumerate(sizes)]


class Book:
    """A real DataStorage plus an ImbalanceAnalyzer; the clock follows the events."""

    def __init__(self, **overrides: object) -> None:
        self.settings = Settings(**overrides)
        self.clock = FixedClock(T0)
        self.storage = DataStorage(self.settings, self.clock, [SYM])
        self.ia = ImbalanceAnalyzer(self.settings, self.storage, INSTRUMENTS)
        self.u = 0
        self.n = 0

    def snapshot(self, ts: float, bids: Levels, asks: Levels) -> None:
        self.u += 1
        self.clock.set(ts)
        self.storage.apply(BookSnapshot(SYM, ts, bids, asks, self.u))

    def delta(self, ts: float, bids: Levels, asks: Levels) -> None:
        self.u += 1
        self.clock.set(ts)
        self.storage.apply(BookDelta(SYM, ts, bids, asks, self.u))
        assert self.storage.book_valid(SYM, ts), self.storage.issues

    def trade(self, ts: float, price: float, size: float, side: str = "Buy") -> None:
        self.n += 1
        self.clock.set(max(self.clock.now(), ts))
        self.storage.apply(Trade(SYM, ts, price, size, side, f"t{self.n}"))  # type: ignore[arg-type]

    def compute(self, now: float, sigma: float = 1.0):
        self.clock.set(now)
        return self.ia.compute(SYM, now, sigma)


def notional(levels: Levels) -> list[float]:
    return [p * s for p, s in levels]


def imb(b: float, a: float) -> float:
    return 100 * (b - a) / (b + a)


# ---------------------------------------------------------------------------------------------- §4.1


def test_book_imbalance_uses_top_n_notional_and_ema() -> None:
    bk = Book(imbalance={"depth_limit_for_calc": 3})
    bids = ladder(99.9, -0.1, [5, 4, 3, 100])  # the 4th level is beyond depth_limit_for_calc
    asks = ladder(100.1, 0.1, [1, 2, 3, 100])
    bk.snapshot(T0, bids, asks)
    r = bk.compute(T0)
    B, A = sum(notional(bids)[:3]), sum(notional(asks)[:3])
    assert (r.bid_notional, r.ask_notional) == (pytest.approx(B), pytest.approx(A))
    raw1 = imb(B, A)
    assert r.raw_imbalance == pytest.approx(raw1) and r.imbalance_score == pytest.approx(raw1)  # first I_t = raw
    asks2 = ladder(100.1, 0.1, [9, 9, 9])
    bk.snapshot(T0 + 1, bids, asks2)
    r2 = bk.compute(T0 + 1)
    raw2 = imb(B, sum(notional(asks2)))
    assert r2.raw_imbalance == pytest.approx(raw2)
    assert r2.imbalance_score == pytest.approx(0.7 * raw1 + 0.3 * raw2)


def _spoof_book(**overrides: object) -> tuple[Book, Levels, Levels]:
    bk = Book(**overrides)
    bids = ladder(99.9, -0.1, [1, 1, 100, 1, 1])  # 99.7 holds 9970 USDT ≥ max(5 % of the side, 500): tracked
    asks = ladder(100.1, 0.1, [1, 1, 1, 1, 1])
    bk.snapshot(T0, bids, asks)
    bk.delta(T0 + 1, [(99.7, 0.0)], [])  # vanishes after 1 s inside the top-N range → suspicious
    return bk, bids, asks


def test_spoof_filter_subtracts_min_of_current_and_recorded() -> None:
    bk, bids, asks = _spoof_book()
    assert [(o.side, o.price, o.notional) for o in bk.storage.suspicious_orders(SYM, T0)] == [
        ("bid", 99.7, pytest.approx(9970.0))
    ]
    bk.delta(T0 + 2, [(99.7, 3.0)], [])  # back, smaller: current notional 299.1 < recorded 9970
    r = bk.compute(T0 + 2)
    current = [n for n in notional(bids)]
    current[2] = 99.7 * 3
    assert r.spoof_filtered_volume == pytest.approx(99.7 * 3)
    assert r.bid_notional == pytest.approx(sum(current) - 99.7 * 3)
    assert r.ask_notional == pytest.approx(sum(notional(asks)))
    assert r.raw_imbalance == pytest.approx(imb(sum(current) - 99.7 * 3, sum(notional(asks))))


def test_spoof_filter_ignores_prices_not_in_book_and_expired_records() -> None:
    bk, _, _ = _spoof_book()
    r = bk.compute(T0 + 2)  # 99.7 is not in the book now: nothing to subtract
    assert r.spoof_filtered_volume == 0.0
    bk.delta(T0 + 400, [(99.7, 3.0)], [])  # the record (removed at T0 + 1) is older than spoof_lookback_sec
    assert bk.compute(T0 + 400).spoof_filtered_volume == 0.0


def test_spoof_filter_off() -> None:
    bk, _, _ = _spoof_book(imbalance={"enable_spoof_filter": False})
    bk.delta(T0 + 2, [(99.7, 3.0)], [])
    assert bk.compute(T0 + 2).spoof_filtered_volume == 0.0


def test_repeated_spoofs_at_one_price_never_subtract_more_than_the_level() -> None:
    bk, _, _ = _spoof_book()
    bk.delta(T0 + 1.5, [(99.7, 100.0)], [])
    bk.delta(T0 + 2, [(99.7, 0.0)], [])  # a second record at 99.7
    assert len(bk.storage.suspicious_orders(SYM, T0)) == 2
    bk.delta(T0 + 3, [(99.7, 3.0)], [])
    assert bk.compute(T0 + 3).spoof_filtered_volume == pytest.approx(99.7 * 3)


# ---------------------------------------------------------------------------------------------- §4.2


@pytest.mark.parametrize(
    ("base", "sigma", "size"),
    [(10, 0.1, 15), (10, 1.0, 10), (10, 3.0, 7), (3, 1.0, 5), (3, 3.0, 5), (50, 0.1, 50), (40, 0.1, 50)],
)
def test_history_size(base: int, sigma: float, size: int) -> None:
    assert history_size(base, sigma, AdaptParams()) == size


def _raw_sequence_book(raws_sizes: list[float], **overrides: object) -> tuple[Book, list[float]]:
    """One book per bid size (asks fixed): returns the analyzer's raw imbalances, checked against the formula."""
    imb_over = {"smoothing_factor": 1.0, **overrides.pop("imbalance", {})}  # type: ignore[dict-item]
    bk = Book(imbalance=imb_over, **overrides)
    asks = [(100.1, 10.0)]
    out = []
    for i, s in enumerate(raws_sizes):
        bk.snapshot(T0 + i, [(99.9, s)], asks)
        r = bk.compute(T0 + i)
        assert r.raw_imbalance == pytest.approx(imb(99.9 * s, 1001.0))
        out.append(r.raw_imbalance)
    return bk, out


def test_history_mean_trend_and_combined() -> None:
    bk, raws = _raw_sequence_book([10.0, 15.0, 30.0])
    r = bk.compute(T0 + 2)  # re-evaluate the last book: the ring is [raw0, raw1, raw2, raw2]
    ring = [*raws, raws[2]]
    hist = statistics.fmean(ring)
    trend = ring[-1] - ring[0]
    assert r.historical_imbalance == pytest.approx(hist)
    assert r.imbalance_trend == pytest.approx(trend)
    assert r.imbalance_volatility == pytest.approx(statistics.stdev(ring))
    assert abs(trend) > 10
    assert r.combined_imbalance == pytest.approx(0.7 * raws[2] + 0.3 * hist + trend * min(abs(trend) / 50, 0.2))


def test_history_needs_three_samples_and_can_be_disabled() -> None:
    bk, raws = _raw_sequence_book([10.0, 30.0])
    r = bk.compute(T0 + 1)  # 3rd sample (same book again): the ring statistics take over
    assert r.history_size == 3 and r.historical_imbalance == pytest.approx(statistics.fmean([*raws, raws[1]]))
    bk2 = Book(imbalance={"smoothing_factor": 1.0})
    for i, s in enumerate([30.0, 10.0]):
        bk2.snapshot(T0 + i, [(99.9, s)], [(100.1, 10.0)])
        r2 = bk2.compute(T0 + i)
        assert r2.history_size == i + 1
        assert (r2.historical_imbalance, r2.imbalance_trend, r2.combined_imbalance) == (
            r2.imbalance_score, 0.0, r2.imbalance_score)
    bk3, _ = _raw_sequence_book([10.0, 15.0, 30.0, 12.0], imbalance={"enable_historical_imbalance": False})
    r3 = bk3.compute(T0 + 3)
    assert r3.historical_imbalance == r3.imbalance_score == r3.combined_imbalance
    assert r3.imbalance_trend == 0.0


def test_history_ring_resizes_keeping_the_newest() -> None:
    sizes = [10.0 + 2 * i for i in range(12)]
    bk, raws = _raw_sequence_book(sizes)  # σ = 1 → ring of 10
    r = bk.compute(T0 + 11, sigma=3.0)  # σ = 3 → 7: keeps the newest 6, appends the new sample
    ring = [*raws[-6:], raws[-1]]
    assert r.history_size == 7
    assert r.historical_imbalance == pytest.approx(statistics.fmean(ring))
    assert r.imbalance_trend == pytest.approx(ring[-1] - ring[0])
    r = bk.compute(T0 + 11, sigma=0.1)  # → 15: grows, nothing dropped
    assert r.history_size == 8


# ---------------------------------------------------------------------------------------------- §4.3–§4.5


def test_depth_weighted_and_effective_imbalance() -> None:
    bk = Book()
    bids = ladder(99.9, -0.1, [3, 1, 2, 5, 1, 4, 4, 4, 4, 4, 9, 9])  # levels 11–12 are outside depth_levels = 10
    asks = ladder(100.1, 0.1, [1, 2, 1, 1, 6, 2, 2, 2, 2, 2, 9, 9])
    bk.snapshot(T0, bids, asks)
    r = bk.compute(T0)
    nb, na = notional(bids), notional(asks)
    bl, al = sum(nb[:10]), sum(na[:10])
    assert (r.depth.bid_liq, r.depth.ask_liq) == (pytest.approx(bl), pytest.approx(al))
    assert r.depth.ratio == pytest.approx(bl / (bl + al))
    assert r.depth.d == pytest.approx((bl / (bl + al) - 0.5) * 200)
    w = [1.0, 0.8, 0.6, 0.4, 0.2]
    wb = sum(wk * x for wk, x in zip(w, nb, strict=False))
    wa = sum(wk * x for wk, x in zip(w, na, strict=False))
    assert r.weighted_imbalance == pytest.approx(imb(wb, wa))
    # first evaluation: combined = hist = I_t = raw over the top 50 (all 12 levels)
    raw = imb(sum(nb), sum(na))
    assert r.combined_imbalance == pytest.approx(raw)
    expected_e = 0.4 * raw + 0.3 * raw + 0.2 * imb(wb, wa) + 0.1 * (bl / (bl + al) - 0.5) * 200
    assert r.effective_imbalance == pytest.approx(expected_e)


def test_bounds_with_a_one_sided_extreme_book() -> None:
    bk = Book()
    bk.snapshot(T0, [(99.9, 1e6)], [(100.1, 1e-3)])
    r = bk.compute(T0)
    for x in (r.raw_imbalance, r.imbalance_score, r.combined_imbalance, r.weighted_imbalance, r.depth.d,
              r.effective_imbalance):
        assert 99.99 < x <= 100.0


# ---------------------------------------------------------------------------------------------- §4.6 Bayesian


def _bayes_book() -> Book:
    bk = Book()
    bk.snapshot(T0, [(99.9, 1.0)], [(100.1, 1.0)])
    return bk


def _fresh(bk: Book, now: float) -> None:
    """Keep the book valid (younger than book_stale_sec) at ``now``."""
    bk.snapshot(now, [(99.9, 1.0)], [(100.1, 1.0)])


def test_bayesian_counts_each_trade_once_then_decays() -> None:
    bk = _bayes_book()
    for i in range(5):
        bk.trade(T0 + 1 + i * 0.1, 100.0, 1.0, "Buy")
    b = bk.compute(T0 + 5).bayesian
    p = 0.98 * (0.5 + 5 * 0.05) + 0.01
    assert b.p == pytest.approx(p) and b.signal == "BULLISH" and b.confidence == pytest.approx(2 * (p - 0.5))
    b = bk.compute(T0 + 7).bayesian  # same trades still in the window: not counted again, only decay
    p = 0.98 * p + 0.01
    assert b.p == pytest.approx(p)
    bk.trade(T0 + 8, 100.0, 1.0, "Sell")
    b = bk.compute(T0 + 9).bayesian  # 6 trades in the window (≥ 3), one new sell
    p = 0.98 * (p - 0.05) + 0.01
    assert b.p == pytest.approx(p)


def test_bayesian_max_trades_window_and_min_trades() -> None:
    bk = _bayes_book()
    for i in range(4):
        bk.trade(T0 + 1 + i, 100.0, 1.0, "Sell")  # older than now − 30 at the evaluation: never counted
    for i in range(15):
        bk.trade(T0 + 60 + i * 0.1, 100.0, 1.0, "Sell")
    _fresh(bk, T0 + 62)
    b = bk.compute(T0 + 62).bayesian  # only the newest bayesian_max_trades = 10 count
    p = 0.98 * (0.5 - 10 * 0.05) + 0.01
    assert b.p == pytest.approx(p) and b.signal == "BEARISH" and b.confidence == pytest.approx(2 * (0.5 - p))
    bk2 = _bayes_book()
    bk2.trade(T0 + 1, 100.0, 1.0, "Buy")
    bk2.trade(T0 + 2, 100.0, 1.0, "Buy")  # 2 < bayesian_min_trades 3: no update, decay only
    assert bk2.compute(T0 + 3).bayesian.p == pytest.approx(0.5)


def test_bayesian_clips_at_one() -> None:
    bk = _bayes_book()
    p = 0.5
    for k in range(3):
        for i in range(10):
            bk.trade(T0 + 10 * k + 1 + 0.1 * i, 100.0, 1.0, "Buy")
        p = 0.98 * min(1.0, p + 0.5) + 0.01
        _fresh(bk, T0 + 10 * k + 5)
        assert bk.compute(T0 + 10 * k + 5).bayesian.p == pytest.approx(p)
    assert p == pytest.approx(0.99)


# ---------------------------------------------------------------------------------------------- §4.7 profile


@pytest.mark.parametrize(
    ("tick", "mid", "bin_"),
    [(0.1, 50_000.0, 0.1), (0.0001, 150.0, 0.01), (0.0001, 50.0, 0.001), (0.00001, 5.0, 0.0001),
     (0.01, 100.0, 0.01), (0.0001, 100.0, 0.001)],
)
def test_profile_bin_rule(tick: float, mid: float, bin_: float) -> None:
    assert profile_bin(tick, mid) == bin_


def test_volume_profile_poc() -> None:
    bk = Book()
    now = T0 + 3600
    bk.trade(now - 16 * 60, 98.0, 1000.0)  # outside the 15 min look-back (σ = 1)
    for i in range(6):
        bk.trade(now - 600 + i, 100.0, 1.0)  # 600 USDT at 100.0
    bk.trade(now - 300, 100.5, 5.0)  # 502.5 + 502.5 at 100.5
    bk.trade(now - 200, 100.5, 5.0)
    bk.trade(now - 100, 99.0, 2.0)
    bk.trade(now - 50, 99.0, 2.0)  # 10 trades in the look-back
    bk.snapshot(now, [(99.9, 1.0)], [(100.1, 1.0)])
    c = bk.compute(now).cluster
    assert c.lookback_min == 15.0 and c.trades == 10 and c.bin_size == 0.1
    assert c.poc_price == pytest.approx(100.5)
    assert c.poc_distance_pct == pytest.approx(100 * (100.5 - 100.0) / 100.0)
    c = bk.compute(now, sigma=3.0).cluster  # 10.5 min: the two 100.0 prints… still inside; POC unchanged
    assert c.lookback_min == pytest.approx(10.5) and c.poc_price == pytest.approx(100.5)


def test_volume_profile_needs_ten_trades() -> None:
    bk = Book()
    for i in range(9):
        bk.trade(T0 + i, 100.0, 1.0)
    bk.snapshot(T0 + 10, [(99.9, 1.0)], [(100.1, 1.0)])
    c = bk.compute(T0 + 10).cluster
    assert c.trades == 9 and c.poc_price is None and c.poc_distance_pct == 0.0


def test_incremental_profile_equals_a_fresh_rebuild() -> None:
    rng = np.random.default_rng(11)
    n = 3000
    times = np.sort(rng.uniform(T0, T0 + 3000, n))
    prices = np.round(100.0 + np.cumsum(rng.choice([-0.1, 0.0, 0.1], n)), 1)
    sizes = np.round(rng.pareto(1.5, n) + 0.01, 3)
    bk = Book()
    i = 0
    now = T0
    sigmas = [1.0, 0.1, 3.0]
    k = 0
    while now < T0 + 3000:
        now += 7.0
        while i < n and times[i] <= now:
            bk.trade(float(times[i]), float(prices[i]), float(sizes[i]), "Buy")
            i += 1
        mid = float(prices[i - 1]) if i else 100.0
        bk.snapshot(now, [(round(mid - 0.1, 1), 1.0)], [(round(mid + 0.1, 1), 1.0)])
        k += 1
        sigma = sigmas[(k // 40) % 3]  # the look-back changes now and then
        c = bk.compute(now, sigma).cluster
        fresh = ImbalanceAnalyzer(bk.settings, bk.storage, INSTRUMENTS).compute(SYM, now, sigma).cluster
        assert c == fresh


def test_incremental_poc_is_the_first_maximum_even_with_ties() -> None:
    """The POC kept across updates equals np.argmax of the histogram (lowest bin on ties) after every move of the
    window: equal sizes on a few prices make ties the common case."""
    rng = np.random.default_rng(5)
    n = 4000
    price = np.round(100.0 + rng.integers(-6, 7, n) * 0.1, 1)
    size = rng.choice([1.0, 2.0], n)
    seq = np.arange(1, n + 1)
    prof = _Profile()
    first = 0
    for last in range(1, n, 3):
        first = max(first, last - int(rng.integers(5, 60)))
        prof.update(_View(price[first:last], 100.0 * size[first:last], seq[first:last]), 0.1)  # equal notionals
        expected = (prof.base + int(np.argmax(prof.hist))) / prof.inv
        assert prof.poc() == expected, last


class _View:
    """A TradeView stand-in: the three columns the profile reads."""

    def __init__(self, price: np.ndarray, notional: np.ndarray, seq: np.ndarray) -> None:
        self.price, self.notional, self.seq = price, notional, seq

    def __len__(self) -> int:
        return len(self.seq)


# ---------------------------------------------------------------------------------------------- validity


def test_invalid_book_is_neutral_and_leaves_state_unchanged() -> None:
    bk = Book()
    asks = [(100.1, 10.0)]
    bk.snapshot(T0, [(99.9, 30.0)], asks)
    raw1 = bk.compute(T0).raw_imbalance
    for i in range(5):
        bk.trade(T0 + 1 + 0.1 * i, 100.0, 1.0, "Buy")
    assert bk.compute(T0 + 20) is NEUTRAL_IMBALANCE  # book older than book_stale_sec
    bk.snapshot(T0 + 21, [(99.9, 5.0)], asks)
    r = bk.compute(T0 + 21)
    raw2 = imb(99.9 * 5, 1001.0)
    assert r.imbalance_score == pytest.approx(0.7 * raw1 + 0.3 * raw2)  # the stale call did not advance the EMA
    assert r.history_size == 2
    p = 0.98 * (0.98 * 0.5 + 0.01 + 0.25) + 0.01  # one decay at T0, then the 5 buys (still in the window) once
    assert r.bayesian.p == pytest.approx(p)


def test_result_field_orders_are_pinned() -> None:
    """compute() builds its result structs positionally (cheaper than keywords): a reordered field must fail here,
    not silently swap two floats."""
    from bot.analysis.results import BayesianBelief, ClusterStats, DepthStats, ImbalanceResult

    assert ImbalanceResult.__struct_fields__ == (
        "valid", "imbalance_score", "raw_imbalance", "bid_notional", "ask_notional", "spoof_filtered_volume",
        "historical_imbalance", "imbalance_trend", "imbalance_volatility", "history_size", "combined_imbalance",
        "depth", "weighted_imbalance", "effective_imbalance", "cluster", "bayesian",
    )
    assert DepthStats.__struct_fields__ == ("bid_liq", "ask_liq", "ratio", "d")
    assert ClusterStats.__struct_fields__ == ("poc_price", "poc_distance_pct", "trades", "lookback_min", "bin_size")
    assert BayesianBelief.__struct_fields__ == ("p", "signal", "confidence")


def test_windows_are_cached_per_multiplier_with_the_uncached_values() -> None:
    """History size and cluster look-back depend on σ only through the window multiplier: the cached pair equals
    the direct computation for σ in each of the three regimes (and at their edges)."""
    from bot.analysis.adaptive import adapt

    bk = Book()
    ia = bk.ia
    ad = AdaptParams.from_settings(bk.settings)
    base = bk.settings.imbalance.historical_samples
    lb_min = bk.settings.imbalance.cluster_lookback_minutes
    for sigma in (0.0, 0.3, 0.7, 0.70001, 1.0, 1.99, 2.0, 5.0, 0.2, 3.0, 1.5):
        lb = min(60.0, max(5.0, adapt(lb_min, sigma, ad)))
        assert ia._windows(sigma) == (history_size(base, sigma, ad), lb), sigma
