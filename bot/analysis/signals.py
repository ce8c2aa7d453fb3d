"""SignalGenerator (STRATEGY.md §6): one BUY/SELL/HOLD decision per evaluation.

Only the seven directional factors of §6.1 enter the signed composite; spread, volatility, activity, the volume z-score,
the spike and the volume confirmation act through gates and the adaptive threshold θ only (defect §12.9). The composite
EMA advances exactly once per evaluation that passes the data check (§12.11), and the O'Hara score and whale check are
direction-aware (§12.10). Per-symbol state: S, last_action, last_strength, cooldown_until.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from bot.analysis.results import (
    BEARISH,
    BULLISH,
    CONFIRMED,
    HIGH,
    MEDIUM_BUY,
    MEDIUM_SELL,
    MODERATE,
    NEUTRAL,
    NORMAL,
    STRONG_BUY,
    STRONG_SELL,
    VERY_HIGH,
    VERY_LOW,
    ImbalanceResult,
    VolumeResult,
)

BUY: Final = "BUY"
SELL: Final = "SELL"
HOLD: Final = "HOLD"

# reasons (first rule that fires, §6.7/§6.8)
INSUFFICIENT_DATA: Final = "insufficient_data"
NEUTRAL_REASON: Final = "neutral"
SPREAD_TOO_WIDE: Final = "spread_too_wide"
VOLATILITY_TOO_HIGH: Final = "volatility_too_high"
VERY_LOW_ACTIVITY: Final = "very_low_activity"
VERY_HIGH_ACTIVITY: Final = "very_high_activity"
BELOW_THRESHOLD: Final = "below_threshold"
WEAK_SIGNAL: Final = "weak_signal"
IMBALANCE_AGAINST: Final = "imbalance_against"
IMBALANCE_TOO_LOW: Final = "imbalance_too_low"
MOMENTUM_AGAINST: Final = "momentum_against"
MOMENTUM_TOO_LOW: Final = "momentum_too_low"
MOMENTUM_TOO_HIGH: Final = "momentum_too_high"
OHARA_TOO_LOW: Final = "ohara_too_low"
LARGE_ORDERS_AGAINST: Final = "large_orders_against"
CONFIRMED_REASON: Final = "confirmed"
COOLDOWN: Final = "cooldown"

FACTOR_NAMES: Final = ("imbalance", "momentum", "bayesian", "large_orders", "tape", "depth", "cluster")

_LARGE_ORDER_FACTOR: Final = {STRONG_BUY: 0.5, MEDIUM_BUY: 0.25, MEDIUM_SELL: -0.25, STRONG_SELL: -0.5}


def strength_of(a: float, bands: tuple[float, ...]) -> int:
    """§6.3: max{k : a ≥ s_k}, 0 below s1 (bands ascend)."""
    k = 0
    for s in bands:
        if a >= s:
            k += 1
        else:
            break
    return k


def ohara_score(
    dir_: int, bayesian_signal: str, informed: str, regime: str, confirmation: str, confirmation_dir: int
) -> int:
    """§6.5: 0–10 points, each only when the evidence points toward ``dir_``."""
    if dir_ == 0:
        return 0
    score = 0
    if (dir_ > 0 and bayesian_signal == BULLISH) or (dir_ < 0 and bayesian_signal == BEARISH):
        score += 2
    if dir_ > 0:
        score += 3 if informed == STRONG_BUY else 2 if informed == MEDIUM_BUY else 0
    else:
        score += 3 if informed == STRONG_SELL else 2 if informed == MEDIUM_SELL else 0
    score += 2 if regime == NORMAL else 1 if regime == HIGH else 0
    if confirmation_dir == dir_:
        score += 2 if confirmation == CONFIRMED else 1 if confirmation == MODERATE else 0
    return 10 if score > 10 else score


class Signal(msgspec.Struct, frozen=True):
    """§6.9: the decision and everything that explains it (one signals.csv row; the RiskManager reads the
    volatility block ``range_pct, atr_pct, std_pct``)."""

    symbol: str
    ts: float
    action: str
    strength: int
    raw_action: str
    raw_strength: int
    dir: int
    composite: float
    ema: float
    threshold: float
    reason: str
    cooldown_active: bool
    cooldown_until: float
    ohara_score: int
    effective_imbalance: float
    momentum_score: float
    factors: dict[str, tuple[float, float, float]]
    spread_bps: float | None
    volatility: float
    frequency_regime: str
    volume_z: float | None
    acceleration: float
    spike: bool
    confirmation: str
    confirmation_direction: int
    bayesian_signal: str
    bayesian_p: float
    informed_direction: str
    range_pct: float
    atr_pct: float
    std_pct: float

    @property
    def actionable(self) -> bool:
        return self.action == BUY or self.action == SELL

    def summary(self) -> str:
        """Compact form for trades.csv, e.g. ``BUY3 imb=31.4 mom=65.7 oh=5 S=0.634 th=0.40``."""
        return (
            f"{self.action}{self.strength} imb={self.effective_imbalance:.1f} mom={self.momentum_score:.1f} "
            f"oh={self.ohara_score} S={self.ema:.3f} th={self.threshold:.2f}"
        )


class _SymbolState:
    __slots__ = ("cooldown_until", "ema", "last_action", "last_strength")

    def __init__(self) -> None:
        self.ema: float | None = None
        self.last_action: str | None = None
        self.last_strength = 0
        self.cooldown_until = 0.0


class SignalGenerator:
    """§6 decision sequence; owns the composite EMA and the cooldown per symbol."""

    def __init__(self, settings: Any) -> None:
        s = settings.signals
        sp = settings.spread
        self._w = (
            float(s.weight_imbalance),
            float(s.weight_momentum),
            float(s.weight_ohara_bayesian),
            float(s.weight_ohara_large_orders),
            float(s.weight_tape),
            float(s.weight_depth),
            float(s.weight_cluster),
        )
        self._alpha = float(s.smoothing_alpha)
        self._bands = tuple(float(x) for x in s.composite_thresholds)
        self._min_strength = int(s.min_strength_for_action)
        self._adaptive = bool(s.enable_adaptive_threshold)
        self._theta0 = float(s.base_threshold)
        self._theta_min = float(s.min_threshold)
        self._theta_max = float(s.max_threshold)
        self._theta_fixed = self._bands[2]
        self._hv_red = float(s.high_volatility_threshold_reduction)
        self._lv_inc = float(s.low_volatility_threshold_increase)
        self._hv_level = float(s.volatility_high_level)
        self._lv_level = float(s.volatility_low_level)
        self._hl_red = float(s.high_liquidity_threshold_reduction)
        self._ll_inc = float(s.low_liquidity_threshold_increase)
        self._hl_z = float(s.high_liquidity_zscore)
        self._ll_z = float(s.low_liquidity_zscore)
        self._oh_strong = int(s.ohara_strong_score_threshold)
        self._oh_red = float(s.ohara_threshold_reduction)
        self._spike_red = float(s.spike_threshold_reduction)
        self._activity_gate = bool(s.enable_activity_gate)
        self._vh_min_abs = float(s.very_high_activity_min_abs)
        self._high_act_inc = float(s.high_activity_threshold_increase)
        self._max_vol = float(s.max_volatility_pct)
        self._min_imb = float(s.min_imbalance_for_entry)
        self._min_oh = int(s.min_ohara_for_entry)
        self._min_mom = float(s.min_momentum_for_entry)
        self._max_mom = float(s.max_momentum_for_entry)
        self._cd_level = int(s.strong_cooldown_level)
        self._cd_sec = float(s.cooldown_seconds)
        self._allow_rev = bool(s.allow_reversal_during_cooldown)
        self._cluster_dist = float(settings.imbalance.cluster_poc_distance_pct)
        self._max_spread = float(sp.max_spread_threshold_bps)
        self._spread_inc = float(sp.spread_threshold_increase)
        self._spread_gate = float(sp.spread_gate_multiplier) * self._max_spread
        self._state: dict[str, _SymbolState] = {}

    def _sym_state(self, sym: str) -> _SymbolState:
        st = self._state.get(sym)
        if st is None:
            st = self._state[sym] = _SymbolState()
        return st

    def ema(self, sym: str) -> float | None:
        """Current composite EMA S of ``sym`` (None before its first sufficient evaluation)."""
        st = self._state.get(sym)
        return None if st is None else st.ema

    # ------------------------------------------------------------------ pure parts
    def factors(self, imb: ImbalanceResult, vol: VolumeResult) -> tuple[float, ...]:
        """§6.1 factor values f ∈ [−1, 1] in :data:`FACTOR_NAMES` order."""
        bay = imb.bayesian
        f_bay = 0.0
        if bay.signal == BULLISH:
            f_bay = 0.5 * bay.confidence
        elif bay.signal == BEARISH:
            f_bay = -0.5 * bay.confidence
        tape = vol.tape
        f_tape = 0.4 * tape.large_net / 5.0
        if tape.absorb_bull:
            f_tape += 0.2
        if tape.absorb_bear:
            f_tape -= 0.2
        cl = imb.cluster.poc_distance_pct
        f_cl = -0.3 if cl > self._cluster_dist else 0.3 if cl < -self._cluster_dist else 0.0
        # each clipped to [−1, 1] inline: a helper call per factor was a measurable share of generate()
        f_imb = imb.effective_imbalance / 100.0
        f_mom = vol.momentum_score / 100.0
        f_dep = 1.5 * imb.depth.d / 100.0
        return (
            -1.0 if f_imb < -1.0 else 1.0 if f_imb > 1.0 else f_imb,
            -1.0 if f_mom < -1.0 else 1.0 if f_mom > 1.0 else f_mom,
            f_bay,
            _LARGE_ORDER_FACTOR.get(vol.large_orders.direction, 0.0),
            -1.0 if f_tape < -1.0 else 1.0 if f_tape > 1.0 else f_tape,
            -1.0 if f_dep < -1.0 else 1.0 if f_dep > 1.0 else f_dep,
            f_cl,
        )

    def threshold(self, spread_bps: float, vol: VolumeResult, oh_score: int) -> float:
        """§6.6 adaptive θ (θ = s3 when the adaptive threshold is off)."""
        if not self._adaptive:
            return self._theta_fixed
        th = self._theta0
        if spread_bps > self._max_spread:
            th += self._spread_inc
        v = vol.volatility
        if v >= self._hv_level:
            th -= self._hv_red
        if v <= self._lv_level:
            th += self._lv_inc
        if vol.frequency.regime == HIGH:
            th += self._high_act_inc
        z = vol.volume_z
        if z is not None:
            if z > self._hl_z:
                th -= self._hl_red
            if z < self._ll_z:
                th += self._ll_inc
        if vol.tape.spike:
            th -= self._spike_red
        if oh_score >= self._oh_strong:
            th -= self._oh_red
        return self._theta_min if th < self._theta_min else self._theta_max if th > self._theta_max else th

    # ------------------------------------------------------------------ decision
    def insufficient(
        self,
        sym: str,
        now: float,
        imb: ImbalanceResult | None = None,
        vol: VolumeResult | None = None,
        spread_bps: float | None = None,
    ) -> Signal:
        """HOLD insufficient_data: strength 0 and no state change (the EMA is reported, not advanced)."""
        st = self._state.get(sym)
        ema = 0.0 if st is None or st.ema is None else st.ema
        cd = 0.0 if st is None else st.cooldown_until
        return Signal(
            symbol=sym,
            ts=now,
            action=HOLD,
            strength=0,
            raw_action=HOLD,
            raw_strength=0,
            dir=0,
            composite=0.0,
            ema=ema,
            threshold=0.0,
            reason=INSUFFICIENT_DATA,
            cooldown_active=False,
            cooldown_until=cd,
            ohara_score=0,
            effective_imbalance=0.0 if imb is None else imb.effective_imbalance,
            momentum_score=0.0 if vol is None else vol.momentum_score,
            factors={},
            spread_bps=spread_bps,
            volatility=0.0 if vol is None else vol.volatility,
            frequency_regime="UNKNOWN" if vol is None else vol.frequency.regime,
            volume_z=None if vol is None else vol.volume_z,
            acceleration=0.0 if vol is None else vol.tape.acceleration,
            spike=False if vol is None else vol.tape.spike,
            confirmation=NEUTRAL if vol is None else vol.confirmation.status,
            confirmation_direction=0 if vol is None else vol.confirmation.direction,
            bayesian_signal=NEUTRAL if imb is None else imb.bayesian.signal,
            bayesian_p=0.5 if imb is None else imb.bayesian.p,
            informed_direction=NEUTRAL if vol is None else vol.large_orders.direction,
            range_pct=0.0 if vol is None else vol.range_pct,
            atr_pct=0.0 if vol is None else vol.atr_pct,
            std_pct=0.0 if vol is None else vol.std_pct,
        )

    def generate(
        self,
        sym: str,
        now: float,
        imb: ImbalanceResult,
        vol: VolumeResult,
        spread_bps: float | None,
        book_valid: bool = True,
    ) -> Signal:
        # 1. data check: no state change at all on insufficient data
        if not book_valid or not vol.data_ok or not imb.valid or spread_bps is None:
            return self.insufficient(sym, now, imb, vol, spread_bps)
        st = self._state.get(sym)
        if st is None:
            st = self._sym_state(sym)

        # 2. factors, composite, EMA (exactly once here); the products w·f are formed once and reused for the
        # factors dict, and summed left to right from 0.0 exactly as ``c += w_i·f_i`` in a loop would
        f0, f1, f2, f3, f4, f5, f6 = self.factors(imb, vol)
        w0, w1, w2, w3, w4, w5, w6 = self._w
        p0, p1, p2, p3, p4, p5, p6 = w0 * f0, w1 * f1, w2 * f2, w3 * f3, w4 * f4, w5 * f5, w6 * f6
        c = 0.0 + p0 + p1 + p2 + p3 + p4 + p5 + p6
        c = -1.0 if c < -1.0 else 1.0 if c > 1.0 else c
        s_prev = st.ema
        s = c if s_prev is None else self._alpha * c + (1.0 - self._alpha) * s_prev
        st.ema = s
        dir_ = 1 if s > 0 else -1 if s < 0 else 0
        a = s if s >= 0 else -s
        strength = strength_of(a, self._bands)

        bay = imb.bayesian.signal
        informed = vol.large_orders.direction
        regime = vol.frequency.regime
        conf = vol.confirmation
        oh = ohara_score(dir_, bay, informed, regime, conf.status, conf.direction)
        theta = self.threshold(spread_bps, vol, oh)
        e = imb.effective_imbalance
        mom = vol.momentum_score

        reason: str | None = None
        raw_strength = strength
        if dir_ == 0:
            reason, strength = NEUTRAL_REASON, 0
        # 3. gates
        elif spread_bps > self._spread_gate:
            reason = SPREAD_TOO_WIDE
        elif vol.volatility > self._max_vol:
            reason = VOLATILITY_TOO_HIGH
        elif self._activity_gate and regime == VERY_LOW:
            reason = VERY_LOW_ACTIVITY
        elif self._activity_gate and regime == VERY_HIGH and a < self._vh_min_abs:
            reason = VERY_HIGH_ACTIVITY
        # 4. threshold and strength
        elif a < theta:
            reason = BELOW_THRESHOLD
        elif strength < self._min_strength:
            reason = WEAK_SIGNAL
        else:
            # 5. whale check
            reason = self._whale(dir_, e, mom, oh, informed)
            if reason is not None:
                strength = 0

        raw_action = HOLD
        action = HOLD
        cooldown_active = False
        if reason is None:
            # 6. confirmed, then the cooldown
            raw_action = BUY if dir_ > 0 else SELL
            reason = CONFIRMED_REASON
            action = raw_action
            if now < st.cooldown_until and not (
                self._allow_rev
                and st.last_action is not None
                and raw_action != st.last_action
                and raw_strength >= st.last_strength
            ):
                action, reason, cooldown_active, strength = HOLD, COOLDOWN, True, 0
            elif raw_strength >= self._cd_level:
                st.cooldown_until = now + self._cd_sec
                st.last_action = raw_action
                st.last_strength = raw_strength

        # positional, in Signal's field order (tests/test_signals.py pins that order): msgspec's keyword matching
        # of 31 names cost more than the rest of the construction
        return Signal(
            sym,  # symbol
            now,  # ts
            action,
            strength,
            raw_action,
            raw_strength,
            dir_,  # dir
            c,  # composite
            s,  # ema
            theta,  # threshold
            reason,
            cooldown_active,
            st.cooldown_until,
            oh,  # ohara_score
            e,  # effective_imbalance
            mom,  # momentum_score
            {  # factors: name -> (f, w, w·f), in FACTOR_NAMES order (a literal: no zip and dict() per call)
                "imbalance": (f0, w0, p0),
                "momentum": (f1, w1, p1),
                "bayesian": (f2, w2, p2),
                "large_orders": (f3, w3, p3),
                "tape": (f4, w4, p4),
                "depth": (f5, w5, p5),
                "cluster": (f6, w6, p6),
            },
            spread_bps,
            vol.volatility,
            regime,  # frequency_regime
            vol.volume_z,
            vol.tape.acceleration,
            vol.tape.spike,
            conf.status,  # confirmation
            conf.direction,  # confirmation_direction
            bay,  # bayesian_signal
            imb.bayesian.p,  # bayesian_p
            informed,  # informed_direction
            vol.range_pct,
            vol.atr_pct,
            vol.std_pct,
        )

    def _whale(self, dir_: int, e: float, mom: float, oh: int, informed: str) -> str | None:
        """§6.7 step 5: the first failing check's reason, None when all hold."""
        ed = e * dir_
        if ed < self._min_imb:
            return IMBALANCE_AGAINST if ed < 0 else IMBALANCE_TOO_LOW
        md = mom * dir_
        if md < self._min_mom:
            return MOMENTUM_AGAINST if md < 0 else MOMENTUM_TOO_LOW
        if md > self._max_mom:
            return MOMENTUM_TOO_HIGH
        if oh < self._min_oh:
            return OHARA_TOO_LOW
        if (dir_ > 0 and informed == STRONG_SELL) or (dir_ < 0 and informed == STRONG_BUY):
            return LARGE_ORDERS_AGAINST
        return None
