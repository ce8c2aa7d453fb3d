"""VolumeAnalyzer (STRATEGY.md §5): hand-computed cases on a real DataStorage fed with real Trade events."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from bot.analysis.adaptive import AdaptParams, adapt
from bot.analysis.volume import (
    DEFAULT_ATR_PCT,
    DEFAULT_RANGE_PCT,
    DEFAULT_STD_PCT,
    VolumeAnalyzer,
    classify_buy_ratio,
    classify_confirmation,
    classify_frequency,
)
from bot.clock import FixedClock
from bot.events import Trade
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T0 = 1_700_000_010.0  # a multiple of 30 s: bucket k of 30 s is [T0 + 30k, T0 + 30k + 30)
NO_ADAPT = {"adaptive": {"enable_adaptive_windows": False}}


class Tape:
    """A real DataStorage plus a VolumeAnalyzer; trades must be added in time order."""

    def __init__(self, **overrides: object) -> None:
        self.settings = Settings(**overrides)
        self.clock = FixedClock(T0)
        self.storage = DataStorage(self.settings, self.clock, [SYM])
        self.va = VolumeAnalyzer(self.settings, self.storage)
        self.n = 0

    def trade(self, ts: float, price: float, size: float, side: str = "Buy") -> None:
        self.n += 1
        self.clock.set(max(self.clock.now(), ts))
        self.storage.apply(Trade(SYM, ts, price, size, side, f"t{self.n}"))  # type: ignore[arg-type]

    def compute(self, now: float):
        self.clock.set(now)
        return self.va.compute(SYM, now)


# ---------------------------------------------------------------------------------------------- §5.2 adapt()


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [(0.0, 45.0), (0.7, 45.0), (0.71, 30.0), (1.99, 30.0), (2.0, 21.0), (9.0, 21.0)],
)
def test_adapt_default_multipliers(sigma: float, expected: float) -> None:
    assert adapt(30.0, sigma, AdaptParams()) == pytest.approx(expected)


def test_adapt_clamps_and_switch() -> None:
    wide = AdaptParams(low_volatility_multiplier=3.0, high_volatility_multiplier=0.2)
    assert adapt(30.0, 0.1, wide) == 60.0  # 90 clamped to max_window_expansion·w
    assert adapt(30.0, 5.0, wide) == 15.0  # 6 clamped to min_window_reduction·w
    assert adapt(30.0, 0.1, AdaptParams(enabled=False)) == 30.0
    assert adapt(30.0, 0.5, AdaptParams(base_volatility_threshold=0.5)) == 30.0  # 0.5 is between 0.35 and 1.0


# ---------------------------------------------------------------------------------------------- §5.1/§5.2


def test_volatility_measures_and_data_ok() -> None:
    prices = [100, 101, 102, 101, 100, 99, 100, 101, 102, 103]
    t = Tape()
    for i, p in enumerate(prices):
        t.trade(T0 + 1 + i, float(p), 1.0)
    r = t.compute(T0 + 20)
    mean = statistics.fmean(prices)  # 100.9
    assert r.range_pct == pytest.approx(100 * 4 / mean)
    assert r.atr_pct == pytest.approx(100 * 1.0 / mean)  # every tick-to-tick move is 1
    assert r.std_pct == pytest.approx(100 * statistics.stdev(prices) / mean)
    assert r.volatility == r.range_pct and r.recent_volatility == r.std_pct
    assert r.volatility_score == pytest.approx(min(100.0, 10 * (r.range_pct + r.atr_pct + r.std_pct) / 3))
    # σ ≈ 1.2 % is between 0.7 and 2.0: windows unchanged
    assert r.short_window_sec == 30.0
    assert r.momentum_windows_sec == (15.0, 30.0, 60.0, 120.0)
    assert r.data_ok and r.short_trades_count == 10 and r.volatility_trades_count == 10


def test_insufficient_data_defaults() -> None:
    t = Tape()
    for i in range(9):  # volatility_min_trades is 10
        t.trade(T0 + i, 100.0 + i, 1.0)
    r = t.compute(T0 + 20)
    assert not r.data_ok
    assert (r.range_pct, r.atr_pct, r.std_pct) == (DEFAULT_RANGE_PCT, DEFAULT_ATR_PCT, DEFAULT_STD_PCT)
    assert r.short_window_sec == 45.0  # default σ 0.1 ≤ 0.7 → ×1.5


def test_data_ok_needs_short_window_trades() -> None:
    t = Tape()
    for i in range(10):
        t.trade(T0 + i, 100.0, 1.0)
    for i in range(4):
        t.trade(T0 + 100 + i, 100.0, 1.0)
    # σ = 0 → short = 45 s: [now − 45, now] holds the 4 late trades only (default_min_trades 5)
    r = t.compute(T0 + 120)
    assert r.short_trades_count == 4 and not r.data_ok
    t.trade(T0 + 110, 100.0, 1.0)
    assert t.compute(T0 + 120).data_ok


# ---------------------------------------------------------------------------------------------- §5.3 momentum


def _momentum_tape() -> tuple[Tape, float]:
    t = Tape(**NO_ADAPT)
    now = T0 + 200
    for _ in range(5):
        t.trade(now - 100, 100.0, 1.0, "Sell")  # only in the 120 s window: sells 500
    for _ in range(5):
        t.trade(now - 50, 100.0, 1.0, "Buy")  # 60 s and 120 s windows: buys 500
    for _ in range(3):
        t.trade(now - 20, 100.0, 2.0, "Buy")  # 30/60/120: buys 600
    for _ in range(4):
        t.trade(now - 10, 100.0, 1.0, "Buy")  # all windows: buys 400
    t.trade(now, 100.0, 2.0, "Sell")  # ts == now is inside every window: sells 200
    return t, now


def test_momentum_multi_window_by_hand() -> None:
    t, now = _momentum_tape()
    r = t.compute(now)
    m15 = 100 * (400 - 200) / 600
    m30 = 100 * (1000 - 200) / 1200
    m60 = 100 * (1500 - 200) / 1700
    m120 = 100 * (1500 - 700) / 2200
    assert r.momentum_components == pytest.approx((m15, m30, m60, m120))
    assert r.momentum_score == pytest.approx(0.4 * m15 + 0.3 * m30 + 0.2 * m60 + 0.1 * m120)


def test_momentum_window_with_too_few_trades_is_zero() -> None:
    t, now = _momentum_tape()
    r = t.compute(now - 0.5)  # the sell at `now` is not visible yet: 4 trades in the 15 s window
    assert r.momentum_components[0] == 0.0
    assert r.momentum_components[1] == pytest.approx(100.0)  # 7 buys, no sells


def test_momentum_single_window_when_multi_timeframe_off() -> None:
    t, now = _momentum_tape()
    t2 = Tape(adaptive={"enable_adaptive_windows": False}, volume={"enable_multi_timeframe_momentum": False})
    t2.storage, t2.va = t.storage, VolumeAnalyzer(t2.settings, t.storage)
    r = t2.compute(now)
    assert r.momentum_windows_sec == (30.0,)
    assert r.momentum_score == pytest.approx(100 * (1000 - 200) / 1200)


# ---------------------------------------------------------------------------------------------- §5.4 tape


def test_tape_large_net_and_acceleration() -> None:
    t = Tape(**NO_ADAPT)  # short = 30 s; large = notional ≥ 5000
    now = T0 + 100
    t.trade(now - 25, 100.0, 10.0, "Buy")  # V1 (older half [now−30, now−15)): 1000
    t.trade(now - 20, 100.0, 50.0, "Sell")  # large sell, V1 += 5000
    t.trade(now - 10, 100.0, 60.0, "Buy")  # large buy, V2
    t.trade(now - 5, 100.0, 70.0, "Buy")  # large buy, V2
    t.trade(now, 100.0, 2.0, "Sell")  # V2
    r = t.compute(now)
    assert (r.tape.large_buys, r.tape.large_sells, r.tape.large_net) == (2, 1, 1)
    v1, v2 = 6000.0, 13200.0
    assert r.tape.acceleration == pytest.approx(100 * (v2 - v1) / v1)  # 120 %
    assert r.tape.spike  # > spike_acceleration_pct 50


def test_acceleration_clips() -> None:
    t = Tape(**NO_ADAPT)
    now = T0 + 100
    t.trade(now - 1, 100.0, 1.0)  # V1 = 0 → +inf → 1000
    assert t.compute(now).tape.acceleration == 1000.0
    t2 = Tape(**NO_ADAPT)
    t2.trade(now - 29, 100.0, 1.0)  # V2 = 0 → −100
    r = t2.compute(now)
    assert r.tape.acceleration == -100.0 and not r.tape.spike


@pytest.mark.parametrize("bull", [True, False])
def test_absorption(bull: bool) -> None:
    t = Tape(**NO_ADAPT)
    now = T0 + 100
    # H1 = the older 2 trades, H2 = the newer 3 (n = 5 → ⌊5/2⌋ = 2)
    p1, p2 = (101.0, 100.0) if bull else (100.0, 101.0)
    t.trade(now - 20, p1, 1.0)
    t.trade(now - 19, p1, 1.0)
    big = "Buy" if bull else "Sell"
    small = "Sell" if bull else "Buy"
    t.trade(now - 10, p2, 60.0, big)
    t.trade(now - 9, p2, 60.0, big)
    t.trade(now - 8, p2, 60.0, small)
    r = t.compute(now)
    assert r.tape.absorb_bull is bull
    assert r.tape.absorb_bear is not bull


def test_no_absorption_when_the_price_moves_with_the_large_flow() -> None:
    t = Tape(**NO_ADAPT)
    now = T0 + 100
    t.trade(now - 20, 100.0, 1.0)
    t.trade(now - 19, 100.0, 1.0)
    for i in range(3):
        t.trade(now - 10 + i, 101.0, 60.0, "Buy")  # price up with large buys: plain buying, not absorption
    r = t.compute(now)
    assert not r.tape.absorb_bull and not r.tape.absorb_bear


# ---------------------------------------------------------------------------------------------- §5.5 z-score


def _bucket_sizes(n: int) -> list[float]:
    return [float(k % 5 + 1) for k in range(n)]


def test_volume_zscore_and_emas_by_hand() -> None:
    t = Tape()
    sizes = _bucket_sizes(25)
    for k, s in enumerate(sizes):
        t.trade(T0 + 30 * k + 5, 100.0, s)  # one trade per bucket: notional 100·s
    now = T0 + 30 * 25 + 10
    t.trade(now - 1, 100.0, 10.0)  # the current (incomplete) bucket: cv = 1000
    r = t.compute(now)
    ring = [100 * s for s in sizes]
    mu = statistics.fmean(ring)
    sd = statistics.pstdev(ring)
    assert r.bucket_count == 25
    assert r.current_volume == pytest.approx(1000.0)
    assert r.volume_z == pytest.approx((1000 - mu) / sd)
    ef = es = ring[0]
    for x in ring[1:]:
        ef += 2 / 21 * (x - ef)
        es += 2 / 101 * (x - es)
    assert r.ema_fast == pytest.approx(ef) and r.ema_slow == pytest.approx(es)
    assert r.ema_ratio == pytest.approx(1000 / es)


def test_volume_zscore_needs_min_samples_and_counts_empty_buckets() -> None:
    t = Tape()
    for k in range(5):
        t.trade(T0 + 30 * k + 1, 100.0, 1.0)
    r = t.compute(T0 + 30 * 5)
    assert r.bucket_count == 5 and r.volume_z is None and r.ema_ratio is None
    r = t.compute(T0 + 30 * 20 + 3)  # 15 empty buckets completed since: appended too
    assert r.bucket_count == 20
    ring = [100.0] * 5 + [0.0] * 15
    assert r.volume_z == pytest.approx((0.0 - statistics.fmean(ring)) / statistics.pstdev(ring))


def test_volume_buckets_are_cadence_free() -> None:
    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(T0, T0 + 1500, 400))
    sizes = rng.uniform(0.1, 5.0, 400).round(3)
    often, once = Tape(), Tape()
    i = 0
    now = T0
    while now < T0 + 1500:
        now += 2.0
        while i < len(times) and times[i] <= now:
            for tp in (often, once):
                tp.trade(float(times[i]), 100.0, float(sizes[i]), "Buy" if i % 3 else "Sell")
            i += 1
        a = often.compute(now)
    b = once.compute(now)
    assert a.bucket_count == b.bucket_count == 50
    assert a.volume_z == b.volume_z and a.ema_fast == b.ema_fast and a.ema_slow == b.ema_slow
    # the exactly-once large-order ring is cadence-free too
    assert a.large_orders == b.large_orders


# ---------------------------------------------------------------------------------------------- §5.6 large orders


def _large_order_tape(**overrides: object) -> tuple[Tape, float]:
    t = Tape(**overrides)
    now = T0 + 1000
    for i in range(30):
        t.trade(now - 300 + i, 100.0, 1.0, "Buy" if i % 2 else "Sell")  # ring only: notional 100
    t.trade(now - 30, 100.0, 10.0, "Buy")  # large buys of 1000 inside the 60 s window
    t.trade(now - 20, 100.0, 10.0, "Buy")
    t.trade(now - 10, 100.0, 10.0, "Sell")
    t.trade(now - 5, 100.0, 1.0, "Sell")
    return t, now


def test_large_order_flow_by_hand() -> None:
    t, now = _large_order_tape()
    r = t.compute(now)
    ring = np.array([100.0] * 30 + [1000.0] * 3 + [100.0])
    thr = ring.mean() + 1.0 * ring.std()  # population σ
    lo = r.large_orders
    assert lo.samples == 34
    assert lo.threshold == pytest.approx(thr)
    assert (lo.buy_count, lo.sell_count) == (2, 1)
    assert (lo.buy_notional, lo.sell_notional) == (pytest.approx(2000.0), pytest.approx(1000.0))
    assert lo.buy_ratio == pytest.approx(2 / 3)
    assert lo.direction == "MEDIUM_BUY"


def test_large_order_ring_counts_each_trade_once_and_evicts() -> None:
    t, now = _large_order_tape()
    for k in range(3):
        assert t.compute(now + k).large_orders.samples == 34  # re-evaluation appends nothing
    # the first 30 trades were at now−300…now−271: after 600 s they age out one by one
    assert t.compute(now + 300.5).large_orders.samples == 34 - 1
    lo = t.compute(now + 575).large_orders  # cutoff now − 25: only the trades at now−20, −10, −5 remain
    assert lo.samples == 3 and lo.direction == "NEUTRAL"  # too few samples


def test_large_order_ring_capacity_and_min_samples() -> None:
    t, now = _large_order_tape(volume={"large_order_lookback_periods": 25})
    assert t.compute(now).large_orders.samples == 25
    t2, now2 = _large_order_tape(volume={"large_order_min_samples": 35})
    lo = t2.compute(now2).large_orders
    assert lo.samples == 34 and lo.direction == "NEUTRAL" and lo.threshold is None


@pytest.mark.parametrize(
    ("ratio", "label"),
    [(0.71, "STRONG_BUY"), (0.7, "MEDIUM_BUY"), (0.61, "MEDIUM_BUY"), (0.6, "NEUTRAL"), (0.41, "NEUTRAL"),
     (0.4, "MEDIUM_SELL"), (0.31, "MEDIUM_SELL"), (0.3, "STRONG_SELL"), (0.0, "STRONG_SELL")],
)
def test_buy_ratio_bands(ratio: float, label: str) -> None:
    assert classify_buy_ratio(ratio) == label


# ---------------------------------------------------------------------------------------------- §5.7 frequency


def test_frequency_regime_by_hand() -> None:
    t = Tape()
    now = T0 + 1000
    for i in range(30):
        t.trade(now - 300 + 9 * i, 100.0, 1.0)  # now−300 … now−39: baseline only
    for i in range(10):
        t.trade(now - 29 + 3 * i, 100.0, 1.0)  # now−29 … now−2: both windows
    r = t.compute(now)
    base = 40 / 5.0  # trades per minute over [now − 300, now)
    cur = 10 / 0.5
    assert r.frequency.baseline_per_min == pytest.approx(base)
    assert r.frequency.current_per_min == pytest.approx(cur)
    assert r.frequency.ratio == pytest.approx(cur / base)  # 2.5 → HIGH
    assert r.frequency.regime == "HIGH"


def test_frequency_unknown_with_thin_baseline() -> None:
    t = Tape()
    now = T0 + 1000
    for i in range(9):
        t.trade(now - 100 + i, 100.0, 1.0)
    f = t.compute(now).frequency
    assert f.regime == "UNKNOWN" and f.ratio is None


@pytest.mark.parametrize(
    ("ratio", "label"),
    [(5.0, "VERY_HIGH"), (4.99, "HIGH"), (2.5, "HIGH"), (2.49, "NORMAL"), (0.31, "NORMAL"), (0.3, "VERY_LOW")],
)
def test_frequency_bands(ratio: float, label: str) -> None:
    assert classify_frequency(ratio, 5.0, 2.5, 0.3) == label


# ---------------------------------------------------------------------------------------------- §5.8 confirmation


@pytest.mark.parametrize(
    ("z", "label"), [(1.21, "CONFIRMED"), (1.2, "MODERATE"), (0.01, "MODERATE"), (0.0, "NEUTRAL"),
                     (-0.5, "NEUTRAL"), (-0.51, "WEAK")],
)
def test_confirmation_bands(z: float, label: str) -> None:
    assert classify_confirmation(z, 1.2, -0.5) == label


def test_confirmation_price_move_over_last_trades() -> None:
    t = Tape()
    now = T0 + 100
    t.trade(now - 50, 50.0, 1.0)  # outside the last 10 trades
    prices = [100.0 + 0.25 * i for i in range(10)]  # 100 → 102.25: +2.25 %
    for i, p in enumerate(prices):
        t.trade(now - 20 + i, p, 1.0)
    c = t.compute(now).confirmation
    assert c.price_change_pct == pytest.approx(2.25)
    assert c.direction == 1
    assert c.status == "NEUTRAL"  # z is None (too few buckets) → treated as 0


def test_confirmation_small_move_has_no_direction() -> None:
    t = Tape()
    now = T0 + 100
    for i in range(10):
        t.trade(now - 20 + i, 100.0 - 0.05 * i, 1.0)  # −0.45 %
    c = t.compute(now).confirmation
    assert c.direction == 0 and c.status == "NEUTRAL" and c.price_change_pct == pytest.approx(-0.45)


def test_confirmation_confirmed_with_high_activity() -> None:
    t = Tape(volume={"volume_min_samples": 5})
    for k in range(6):
        t.trade(T0 + 30 * k + 1, 100.0, 1.0 + 0.1 * k)
    now = T0 + 30 * 6 + 20
    for i in range(10):
        t.trade(now - 10 + i, 100.0 - 0.3 * i, 20.0, "Sell")  # −2.7 % on heavy volume
    r = t.compute(now)
    assert r.volume_z is not None and r.volume_z > 1.2
    assert (r.confirmation.status, r.confirmation.direction) == ("CONFIRMED", -1)


def test_analyzer_never_mutates_storage() -> None:
    t, now = _momentum_tape()
    before = (t.storage.last_seq(SYM), t.storage.side_sums(SYM, -math.inf, math.inf))
    for k in range(3):
        t.va.compute(SYM, now + k)
    assert (t.storage.last_seq(SYM), t.storage.side_sums(SYM, -math.inf, math.inf)) == before
