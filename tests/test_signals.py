"""SignalGenerator (STRATEGY.md §6): hand-computed factors, composite/EMA, bands, θ, gates, whale check, cooldown.

The generator is a function of (analyzer results, spread, its own state), so most cases build the result structs
directly; the end-to-end case at the bottom drives the real analyzers on a real DataStorage through ``evaluate``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer, evaluate
from bot.analysis.results import (
    BayesianBelief,
    ClusterStats,
    Confirmation,
    DepthStats,
    FrequencyStats,
    ImbalanceResult,
    LargeOrderFlow,
    TapeStats,
    VolumeResult,
)
from bot.analysis.signals import Signal, ohara_score, strength_of
from bot.clock import FixedClock
from bot.events import BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T = 1_700_000_000.0
W = (0.45, 0.20, 0.12, 0.08, 0.15, 0.10, 0.05)


def vol(**kw: Any) -> VolumeResult:
    base = VolumeResult(
        data_ok=True,
        short_trades_count=50,
        volatility_trades_count=500,
        short_window_sec=30.0,
        momentum_windows_sec=(15.0, 30.0, 60.0, 120.0),
        momentum_score=70.0,
        momentum_components=(70.0, 70.0, 70.0, 70.0),
        tape=TapeStats(large_buys=5, large_net=5),
        volatility=1.0,
        recent_volatility=1.0,
        volatility_score=5.0,
        range_pct=1.0,
        atr_pct=0.05,
        std_pct=1.0,
        volume_z=0.0,
        ema_ratio=1.0,
        current_volume=1e5,
        ema_fast=1e5,
        ema_slow=1e5,
        bucket_count=96,
        frequency=FrequencyStats(regime="NORMAL", ratio=1.0),
        confirmation=Confirmation(),
        large_orders=LargeOrderFlow(direction="STRONG_BUY"),
    )
    return msgspec.structs.replace(base, **kw)


def imb(e: float = 80.0, **kw: Any) -> ImbalanceResult:
    base = ImbalanceResult(
        valid=True,
        effective_imbalance=e,
        depth=DepthStats(ratio=0.75, d=50.0),
        bayesian=BayesianBelief(p=0.7, signal="BULLISH", confidence=0.4),
        cluster=ClusterStats(),
    )
    return msgspec.structs.replace(base, **kw)


# strong-buy defaults: f = (0.8, 0.7, 0.2, 0.5, 0.4, 0.75, 0) → C = 0.699, O'Hara = 2 + 3 + 2 = 7, θ = 0.40
C_BUY = 0.45 * 0.8 + 0.20 * 0.7 + 0.12 * 0.2 + 0.08 * 0.5 + 0.15 * 0.4 + 0.10 * 0.75


def gen(**signals: Any) -> SignalGenerator:
    return SignalGenerator(Settings(signals=signals) if signals else Settings())


def run(g: SignalGenerator, i: ImbalanceResult | None = None, v: VolumeResult | None = None,
        spread: float | None = 1.0, now: float = T, sym: str = SYM) -> Signal:
    return g.generate(sym, now, imb() if i is None else i, vol() if v is None else v, spread)


# ---------------------------------------------------------------------------------------------- §6.1 factors


def test_factor_values_and_composite() -> None:
    s = run(gen())
    f = {k: v[0] for k, v in s.factors.items()}
    assert f == pytest.approx(
        {"imbalance": 0.8, "momentum": 0.7, "bayesian": 0.2, "large_orders": 0.5, "tape": 0.4, "depth": 0.75,
         "cluster": 0.0})
    assert [v[1] for v in s.factors.values()] == list(W)
    assert all(v[2] == pytest.approx(v[0] * v[1]) for v in s.factors.values())
    assert s.composite == pytest.approx(C_BUY) and s.ema == pytest.approx(C_BUY)  # first S = C
    assert (s.action, s.strength, s.reason, s.threshold, s.ohara_score) == ("BUY", 4, "confirmed", 0.40, 7)


@pytest.mark.parametrize(
    ("bay", "f"),
    [(BayesianBelief(0.8, "BULLISH", 0.6), 0.3), (BayesianBelief(0.2, "BEARISH", 0.6), -0.3),
     (BayesianBelief(0.6, "NEUTRAL", 0.0), 0.0)],
)
def test_bayesian_factor(bay: BayesianBelief, f: float) -> None:
    assert gen().factors(imb(bayesian=bay), vol())[2] == pytest.approx(f)


@pytest.mark.parametrize(
    ("label", "f"),
    [("STRONG_BUY", 0.5), ("MEDIUM_BUY", 0.25), ("NEUTRAL", 0.0), ("MEDIUM_SELL", -0.25), ("STRONG_SELL", -0.5)],
)
def test_large_orders_factor(label: str, f: float) -> None:
    assert gen().factors(imb(), vol(large_orders=LargeOrderFlow(direction=label)))[3] == f


@pytest.mark.parametrize(
    ("tape", "f"),
    [(TapeStats(large_net=5), 0.4), (TapeStats(large_net=-2), -0.16), (TapeStats(large_net=20), 1.0),
     (TapeStats(large_net=1, absorb_bull=True), 0.28), (TapeStats(large_net=-1, absorb_bear=True), -0.28),
     (TapeStats(large_net=-20, absorb_bear=True), -1.0)],
)
def test_tape_factor(tape: TapeStats, f: float) -> None:
    assert gen().factors(imb(), vol(tape=tape))[4] == pytest.approx(f)


@pytest.mark.parametrize(("d", "f"), [(50.0, 0.75), (-20.0, -0.3), (80.0, 1.0), (-100.0, -1.0)])
def test_depth_factor(d: float, f: float) -> None:
    ratio = 0.5 + d / 200
    assert gen().factors(imb(depth=DepthStats(ratio=ratio, d=d)), vol())[5] == pytest.approx(f)
    assert f == pytest.approx(max(-1.0, min(1.0, (ratio - 0.5) * 2 + 0.5 * d / 100)))  # the spec's long form


@pytest.mark.parametrize(("dist", "f"), [(1.5, -0.3), (1.0, 0.0), (-1.01, 0.3), (0.2, 0.0)])
def test_cluster_factor(dist: float, f: float) -> None:
    cl = ClusterStats(poc_price=1.0, poc_distance_pct=dist)
    assert gen().factors(imb(cluster=cl), vol())[6] == f


def test_imbalance_and_momentum_factors_clip() -> None:
    f = gen().factors(imb(e=-150.0), vol(momentum_score=130.0))
    assert f[0] == -1.0 and f[1] == 1.0


# ---------------------------------------------------------------------------------------------- §6.2/§6.3


def test_ema_updates_once_per_evaluation_and_never_on_insufficient_data() -> None:
    g = gen()
    s1 = run(g)
    weak = imb(e=0.0, depth=DepthStats(), bayesian=BayesianBelief())
    c2 = 0.20 * 0.7 + 0.08 * 0.5 + 0.15 * 0.4
    s2 = run(g, i=weak, now=T + 8)
    assert s2.composite == pytest.approx(c2)
    assert s2.ema == pytest.approx(0.75 * c2 + 0.25 * s1.ema)
    for bad in (dict(v=vol(data_ok=False)), dict(spread=None), dict(i=ImbalanceResult())):
        h = run(g, now=T + 16, **bad)  # type: ignore[arg-type]
        assert (h.action, h.reason, h.strength, h.ema) == ("HOLD", "insufficient_data", 0, s2.ema)
    h = g.generate(SYM, T + 16, imb(), vol(), 1.0, book_valid=False)
    assert h.reason == "insufficient_data" and g.ema(SYM) == s2.ema
    s3 = run(g, now=T + 24)
    assert s3.ema == pytest.approx(0.75 * C_BUY + 0.25 * s2.ema)


def test_composite_clips_to_one() -> None:
    g = SignalGenerator(Settings(signals={"weight_imbalance": 1.0, "weight_momentum": 0.5}))
    assert run(g, i=imb(e=100.0), v=vol(momentum_score=80.0)).composite == 1.0


@pytest.mark.parametrize(
    ("a", "k"), [(0.0, 0), (0.1499, 0), (0.15, 1), (0.29, 1), (0.30, 2), (0.40, 3), (0.649, 3), (0.65, 4),
                 (0.80, 5), (1.0, 5)],
)
def test_strength_bands(a: float, k: int) -> None:
    assert strength_of(a, (0.15, 0.30, 0.40, 0.65, 0.80)) == k


def test_zero_composite_is_neutral() -> None:
    flat = imb(e=0.0, depth=DepthStats(), bayesian=BayesianBelief())
    s = run(gen(), i=flat, v=vol(momentum_score=0.0, tape=TapeStats(), large_orders=LargeOrderFlow()))
    assert (s.action, s.reason, s.dir, s.strength) == ("HOLD", "neutral", 0, 0)


# ---------------------------------------------------------------------------------------------- §6.5 O'Hara


def test_ohara_score_is_direction_aware() -> None:
    assert ohara_score(1, "BULLISH", "STRONG_BUY", "NORMAL", "CONFIRMED", 1) == 9
    assert ohara_score(-1, "BULLISH", "STRONG_BUY", "NORMAL", "CONFIRMED", 1) == 2  # only the regime counts
    assert ohara_score(-1, "BEARISH", "MEDIUM_SELL", "HIGH", "MODERATE", -1) == 2 + 2 + 1 + 1
    assert ohara_score(1, "NEUTRAL", "NEUTRAL", "VERY_HIGH", "WEAK", 1) == 0
    assert ohara_score(1, "BULLISH", "STRONG_BUY", "NORMAL", "MODERATE", -1) == 7
    assert ohara_score(0, "BULLISH", "STRONG_BUY", "NORMAL", "CONFIRMED", 1) == 0


# ---------------------------------------------------------------------------------------------- §6.4/§6.6 θ


@pytest.mark.parametrize(
    ("v_kw", "spread", "theta"),
    [
        ({}, 1.0, 0.40),
        ({}, 25.0, 0.43),  # spread > 20 bps
        ({"volatility": 2.0}, 1.0, 0.35),  # range% ≥ 2.0
        ({"volatility": 0.5}, 1.0, 0.43),  # range% ≤ 0.5
        ({"frequency": FrequencyStats(regime="HIGH", ratio=3.0)}, 1.0, 0.42),
        ({"volume_z": 1.01}, 1.0, 0.37),
        ({"volume_z": -0.51}, 1.0, 0.45),
        ({"volume_z": None}, 1.0, 0.40),
        ({"tape": TapeStats(large_net=5, spike=True)}, 1.0, 0.37),
        ({"volatility": 0.3, "volume_z": -1.0}, 25.0, 0.50),  # 0.40 + 0.03 + 0.05 + 0.03 = 0.51 → clamp 0.50
        ({"volatility": 3.0, "volume_z": 2.0, "tape": TapeStats(large_net=5, spike=True)}, 1.0, 0.32),  # 0.29
    ],
)
def test_adaptive_threshold_terms_and_clamp(v_kw: dict[str, Any], spread: float, theta: float) -> None:
    assert gen().threshold(spread, vol(**v_kw), 7) == pytest.approx(theta)


def test_threshold_ohara_reduction_and_fixed_mode() -> None:
    g = gen()
    assert g.threshold(1.0, vol(), 8) == pytest.approx(0.37)
    assert g.threshold(1.0, vol(), 7) == pytest.approx(0.40)
    assert gen(enable_adaptive_threshold=False).threshold(99.0, vol(volatility=0.1), 10) == 0.40  # s3


# ---------------------------------------------------------------------------------------------- §6.4 gates, §6.7


@pytest.mark.parametrize(
    ("v_kw", "spread", "reason"),
    [
        ({}, 40.01, "spread_too_wide"),
        ({"volatility": 5.01}, 1.0, "volatility_too_high"),
        ({"frequency": FrequencyStats(regime="VERY_LOW", ratio=0.2)}, 1.0, "very_low_activity"),
        ({"frequency": FrequencyStats(regime="VERY_HIGH", ratio=6.0)}, 1.0, "very_high_activity"),  # a = 0.699
        ({"volatility": 5.01}, 40.01, "spread_too_wide"),  # order: spread first
    ],
)
def test_gates_keep_strength(v_kw: dict[str, Any], spread: float, reason: str) -> None:
    g = gen(very_high_activity_min_abs=0.7) if reason == "very_high_activity" else gen()
    s = run(g, v=vol(**v_kw), spread=spread)
    assert (s.action, s.reason, s.raw_action, s.strength) == ("HOLD", reason, "HOLD", 4)


def test_very_high_activity_passes_a_strong_signal_and_gate_can_be_off() -> None:
    vh = vol(frequency=FrequencyStats(regime="VERY_HIGH", ratio=6.0))
    assert run(gen(), v=vh).action == "BUY"  # a = 0.699 ≥ 0.50
    lo = vol(frequency=FrequencyStats(regime="VERY_LOW", ratio=0.1))
    assert run(gen(enable_activity_gate=False), v=lo).reason != "very_low_activity"


def test_below_threshold_and_weak_signal() -> None:
    small = imb(e=30.0, depth=DepthStats(), bayesian=BayesianBelief())
    s = run(gen(), i=small, v=vol(momentum_score=30.0, tape=TapeStats(), large_orders=LargeOrderFlow()))
    assert s.composite == pytest.approx(0.45 * 0.3 + 0.2 * 0.3)  # 0.195 < θ 0.40
    assert (s.action, s.reason, s.strength) == ("HOLD", "below_threshold", 1)
    s = run(gen(min_strength_for_action=5))  # a = 0.699 ≥ θ but strength 4 < 5
    assert (s.action, s.reason, s.strength) == ("HOLD", "weak_signal", 4)


@pytest.mark.parametrize(
    ("i_kw", "v_kw", "reason"),
    [
        ({"e": -5.0}, {"momentum_score": 85.0, "tape": TapeStats(large_net=10)}, "imbalance_against"),
        ({"e": 19.9}, {"momentum_score": 85.0, "tape": TapeStats(large_net=10)}, "imbalance_too_low"),
        ({"e": 100.0}, {"momentum_score": -5.0, "tape": TapeStats(large_net=10)}, "momentum_against"),
        ({"e": 100.0}, {"momentum_score": 49.9, "tape": TapeStats(large_net=10)}, "momentum_too_low"),
        ({"e": 80.0}, {"momentum_score": 85.1}, "momentum_too_high"),
        ({"e": 80.0}, {"large_orders": LargeOrderFlow(direction="MEDIUM_SELL"),
                       "frequency": FrequencyStats(regime="HIGH", ratio=3.0)}, "ohara_too_low"),
        ({"e": 90.0, "bayesian": BayesianBelief(0.9, "BULLISH", 0.8)},
         {"large_orders": LargeOrderFlow(direction="STRONG_SELL"),
          "confirmation": Confirmation(status="CONFIRMED", direction=1)}, "large_orders_against"),
    ],
)
def test_whale_check_reasons(i_kw: dict[str, Any], v_kw: dict[str, Any], reason: str) -> None:
    s = run(gen(), i=imb(**i_kw), v=vol(**v_kw))
    assert s.dir == 1 and s.raw_strength >= 3, s  # the signal got past the bands: the whale check decided
    assert (s.action, s.reason, s.strength, s.raw_action) == ("HOLD", reason, 0, "HOLD")


def test_whale_check_sell_side_mirror() -> None:
    i = imb(e=-80.0, depth=DepthStats(ratio=0.25, d=-50.0), bayesian=BayesianBelief(0.3, "BEARISH", 0.4))
    v = vol(momentum_score=-70.0, tape=TapeStats(large_net=-5), large_orders=LargeOrderFlow(direction="STRONG_SELL"))
    s = run(gen(), i=i, v=v)
    assert (s.action, s.strength, s.composite, s.ohara_score) == ("SELL", 4, pytest.approx(-C_BUY), 7)
    s = run(gen(), i=i, v=msgspec.structs.replace(v, momentum_score=-86.0))
    assert s.reason == "momentum_too_high"


# ---------------------------------------------------------------------------------------------- §6.8 cooldown


def _sell() -> tuple[ImbalanceResult, VolumeResult]:
    i = imb(e=-80.0, depth=DepthStats(ratio=0.25, d=-50.0), bayesian=BayesianBelief(0.3, "BEARISH", 0.4))
    v = vol(momentum_score=-70.0, tape=TapeStats(large_net=-5), large_orders=LargeOrderFlow(direction="STRONG_SELL"))
    return i, v


def test_cooldown_suppresses_then_expires() -> None:
    g = gen(smoothing_alpha=1.0)
    s = run(g)
    assert (s.action, s.strength, s.cooldown_until) == ("BUY", 4, T + 180)
    s = run(g, now=T + 10)
    assert (s.action, s.reason, s.cooldown_active, s.raw_action, s.raw_strength, s.strength) == (
        "HOLD", "cooldown", True, "BUY", 4, 0)
    assert s.cooldown_until == T + 180  # a suppressed signal does not extend it
    s = run(g, now=T + 180)
    assert s.action == "BUY" and s.cooldown_until == T + 360


def test_reversal_passes_cooldown_with_equal_or_higher_strength() -> None:
    g = gen(smoothing_alpha=1.0)
    run(g)  # BUY4, cooldown to T + 180
    i, v = _sell()
    s = run(g, i=i, v=v, now=T + 20)
    assert (s.action, s.strength, s.cooldown_active) == ("SELL", 4, False)
    assert s.cooldown_until == T + 200  # the reversal starts its own cooldown
    s = run(g, now=T + 30)  # BUY4 after SELL4: a reversal again
    assert s.action == "BUY"


def test_weaker_reversal_and_disabled_reversal_are_suppressed() -> None:
    g = gen(smoothing_alpha=1.0)
    run(g, i=imb(e=95.0), v=vol(tape=TapeStats(large_net=20)))  # BUY5
    i, v = _sell()
    s = run(g, i=i, v=v, now=T + 20)  # SELL4 < 5
    assert (s.action, s.reason, s.raw_action, s.raw_strength) == ("HOLD", "cooldown", "SELL", 4)
    g2 = gen(smoothing_alpha=1.0, allow_reversal_during_cooldown=False)
    run(g2)
    assert run(g2, i=i, v=v, now=T + 20).reason == "cooldown"


def test_signal_below_cooldown_level_starts_no_cooldown() -> None:
    g = gen(smoothing_alpha=1.0, strong_cooldown_level=5)
    assert run(g).cooldown_until == 0.0
    assert run(g, now=T + 1).action == "BUY"


def test_holds_keep_their_own_reason_during_cooldown() -> None:
    g = gen(smoothing_alpha=1.0)
    run(g)
    s = run(g, v=vol(volatility=6.0), now=T + 5)
    assert (s.reason, s.cooldown_active) == ("volatility_too_high", False)


def test_summary_and_actionable() -> None:
    s = run(gen())
    assert s.summary() == f"BUY4 imb=80.0 mom=70.0 oh=7 S={C_BUY:.3f} th=0.40"
    assert s.actionable
    assert (s.range_pct, s.atr_pct, s.std_pct) == (1.0, 0.05, 1.0)


# ---------------------------------------------------------------------------------------------- end to end


def test_evaluate_end_to_end_buy_on_real_storage() -> None:
    """A book leaning to the bid and a buying tape produce a BUY through the real analyzers."""
    settings = Settings()
    clock = FixedClock(T)
    storage = DataStorage(settings, clock, [SYM])
    n = 0
    for k in range(120):  # 20 minutes of balanced background flow
        for j in range(3):
            n += 1
            storage.apply(Trade(SYM, T - 1200 + 10 * k + j, 100.0, 1.0, "Buy" if j % 2 else "Sell", f"b{n}"))
    now = T
    for j in range(30):  # the last 30 s: mostly buying, a few large prints
        n += 1
        side = "Sell" if j % 6 == 0 else "Buy"
        size = 60.0 if j in (10, 20, 25) else 2.0
        storage.apply(Trade(SYM, now - 29 + j, 100.0, size, side, f"b{n}"))  # type: ignore[arg-type]
    clock.set(now)
    storage.apply(BookSnapshot(SYM, now, [(99.9, 300.0), (99.8, 200.0)], [(100.1, 20.0), (100.2, 10.0)], 1))
    va = VolumeAnalyzer(settings, storage)
    ia = ImbalanceAnalyzer(settings, storage, InstrumentRegistry.bundled())
    sg = SignalGenerator(settings)
    sig = evaluate(SYM, now, storage, va, ia, sg)
    assert sig.dir == 1 and sig.effective_imbalance > 50 and sig.momentum_score > 50
    assert (sig.action, sig.reason) == ("BUY", "confirmed"), sig
    assert sig.strength >= 3
    # a stale book: no analyzer runs, nothing changes
    ema = sg.ema(SYM)
    stale = evaluate(SYM, now + 60, storage, va, ia, sg)
    assert (stale.action, stale.reason) == ("HOLD", "insufficient_data") and sg.ema(SYM) == ema


def test_signal_field_order_is_pinned() -> None:
    """generate() builds Signal positionally (cheaper than 31 keywords): a reordered field must fail here, not
    silently swap two values of the same type."""
    assert Signal.__struct_fields__ == (
        "symbol", "ts", "action", "strength", "raw_action", "raw_strength", "dir", "composite", "ema", "threshold",
        "reason", "cooldown_active", "cooldown_until", "ohara_score", "effective_imbalance", "momentum_score",
        "factors", "spread_bps", "volatility", "frequency_regime", "volume_z", "acceleration", "spike", "confirmation",
        "confirmation_direction", "bayesian_signal", "bayesian_p", "informed_direction", "range_pct", "atr_pct",
        "std_pct",
    )


def test_generate_fields_land_by_name() -> None:
    """Every Signal field generate() fills from its inputs carries the input it is named after."""
    v = vol(volatility=1.25, volume_z=-0.75, range_pct=1.5, atr_pct=0.07, std_pct=0.9,
            tape=TapeStats(large_buys=5, large_net=5, acceleration=1.3, spike=True))
    s = gen().generate(SYM, T + 1.0, imb(), v, 0.02)
    assert (s.symbol, s.ts, s.spread_bps, s.volatility, s.volume_z) == (SYM, T + 1.0, 0.02, 1.25, -0.75)
    assert (s.acceleration, s.spike, s.range_pct, s.atr_pct, s.std_pct) == (1.3, True, 1.5, 0.07, 0.9)
    assert (s.frequency_regime, s.confirmation, s.confirmation_direction) == (
        v.frequency.regime, v.confirmation.status, v.confirmation.direction)
    assert (s.informed_direction, s.bayesian_signal, s.bayesian_p) == (
        v.large_orders.direction, imb().bayesian.signal, imb().bayesian.p)
    assert s.ema == s.composite == pytest.approx(sum(wf for _, _, wf in s.factors.values()))
    assert list(s.factors) == ["imbalance", "momentum", "bayesian", "large_orders", "tape", "depth", "cluster"]
