"""STRATEGY.md §2.4–§2.9: the signal analyzers' parameters (mostly OPTIMIZABLE)."""

from __future__ import annotations

from pydantic import BaseModel, field_validator, model_validator

from settings.fields import fixed, optimizable
from settings.sections.checks import SECTION_CONFIG, ascending, nonneg_weights, ordered

# --------------------------------------------------------------------------------------------------- 2.4 signals
_COMPOSITE_THRESHOLD_CHOICES: list[list[float]] = [
    [0.15, 0.30, 0.40, 0.65, 0.80],
    [0.10, 0.25, 0.35, 0.55, 0.75],
    [0.10, 0.20, 0.30, 0.50, 0.70],
    [0.15, 0.30, 0.40, 0.60, 0.75],
    [0.20, 0.35, 0.45, 0.70, 0.85],
]


class SignalsSettings(BaseModel):
    """§2.4: composite weights, strength bands, adaptive threshold θ, gates, whale check and cooldown."""

    model_config = SECTION_CONFIG

    weight_imbalance: float = optimizable(0.45, low=0.0, high=1.0, ge=0, le=1)
    weight_momentum: float = optimizable(0.20, low=0.0, high=0.5, ge=0, le=1)
    weight_ohara_bayesian: float = optimizable(0.12, low=0.0, high=0.4, ge=0, le=1)
    weight_ohara_large_orders: float = optimizable(0.08, low=0.0, high=0.3, ge=0, le=1)
    weight_tape: float = optimizable(0.15, low=0.0, high=0.4, ge=0, le=1)
    weight_depth: float = optimizable(0.10, low=0.0, high=0.3, ge=0, le=1)
    weight_cluster: float = optimizable(0.05, low=0.0, high=0.2, ge=0, le=1)
    smoothing_alpha: float = optimizable(0.75, low=0.3, high=1.0, gt=0, le=1)
    composite_thresholds: list[float] = optimizable(
        [0.15, 0.30, 0.40, 0.65, 0.80], choices=_COMPOSITE_THRESHOLD_CHOICES, min_length=5, max_length=5
    )
    min_strength_for_action: int = optimizable(3, low=1, high=5, ge=1, le=5)
    enable_adaptive_threshold: bool = optimizable(True)
    base_threshold: float = optimizable(0.40, low=0.35, high=0.45, gt=0)
    min_threshold: float = optimizable(0.32, low=0.20, high=0.35, gt=0)
    max_threshold: float = optimizable(0.50, low=0.45, high=0.65, gt=0)
    high_volatility_threshold_reduction: float = optimizable(0.05, low=0.0, high=0.10, ge=0)
    low_volatility_threshold_increase: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    volatility_high_level: float = optimizable(2.0, low=1.0, high=5.0, gt=0)
    volatility_low_level: float = optimizable(0.5, low=0.1, high=1.0, ge=0)
    high_liquidity_threshold_reduction: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    low_liquidity_threshold_increase: float = optimizable(0.05, low=0.0, high=0.10, ge=0)
    high_liquidity_zscore: float = optimizable(1.0, low=0.5, high=2.5)
    low_liquidity_zscore: float = optimizable(-0.5, low=-2.0, high=0.0)
    ohara_strong_score_threshold: int = optimizable(8, low=5, high=10, ge=0, le=10)
    ohara_threshold_reduction: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    spike_acceleration_pct: float = optimizable(50.0, low=20.0, high=200.0, gt=0)
    spike_threshold_reduction: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    enable_activity_gate: bool = optimizable(True)
    very_high_activity_min_abs: float = optimizable(0.50, low=0.30, high=0.80, ge=0)
    high_activity_threshold_increase: float = optimizable(0.02, low=0.0, high=0.10, ge=0)
    max_volatility_pct: float = optimizable(5.0, low=1.0, high=10.0, gt=0)
    min_imbalance_for_entry: float = optimizable(20.0, low=0.0, high=60.0, ge=0, le=100)
    min_ohara_for_entry: int = optimizable(5, low=0, high=10, ge=0, le=10)
    min_momentum_for_entry: float = optimizable(50.0, low=20.0, high=60.0, ge=-100, le=100)
    max_momentum_for_entry: float = optimizable(85.0, low=60.0, high=100.0, ge=-100, le=100)
    strong_cooldown_level: int = optimizable(3, low=1, high=5, ge=1, le=5)
    cooldown_seconds: float = optimizable(180.0, low=0.0, high=600.0, ge=0)
    allow_reversal_during_cooldown: bool = optimizable(True)

    @model_validator(mode="after")
    def _thresholds_consistent(self) -> SignalsSettings:
        """Strength bands must ascend and θ's start must lie inside its clamp (§2 load-time validation)."""
        if any(t <= 0 for t in self.composite_thresholds):
            raise ValueError(f"signals.composite_thresholds must be positive, got {self.composite_thresholds}")
        ascending(self.composite_thresholds, "signals.composite_thresholds")
        ordered(self.min_threshold, self.base_threshold, "signals.min_threshold", "signals.base_threshold")
        ordered(self.base_threshold, self.max_threshold, "signals.base_threshold", "signals.max_threshold")
        ordered(
            self.min_momentum_for_entry,
            self.max_momentum_for_entry,
            "signals.min_momentum_for_entry",
            "signals.max_momentum_for_entry",
        )
        ordered(
            self.volatility_low_level,
            self.volatility_high_level,
            "signals.volatility_low_level",
            "signals.volatility_high_level",
        )
        return self


# ------------------------------------------------------------------------------------------------- 2.5 imbalance
_LEVEL_WEIGHT_CHOICES: list[list[float]] = [
    [1.0, 0.8, 0.6, 0.4, 0.2],
    [1.0, 1.0, 1.0, 1.0, 1.0],
    [1.0, 0.5, 0.25, 0.125, 0.0625],
    [1.0, 0.9, 0.8, 0.7, 0.6],
]


class ImbalanceSettings(BaseModel):
    """§2.5: book imbalance depth, weighting, smoothing, spoof filter, large levels and clusters."""

    model_config = SECTION_CONFIG

    depth_limit_for_calc: int = optimizable(50, low=10, high=50, ge=1)
    depth_levels: int = optimizable(10, low=3, high=25, ge=1)
    weighted_levels_weights: list[float] = optimizable(
        [1.0, 0.8, 0.6, 0.4, 0.2], choices=_LEVEL_WEIGHT_CHOICES, min_length=5, max_length=5
    )
    smoothing_factor: float = optimizable(0.3, low=0.05, high=1.0, gt=0, le=1)
    universal_imbalance_cap: float = fixed(100.0, gt=0)
    min_volume_epsilon: float = fixed(1e-9, gt=0)
    enable_historical_imbalance: bool = optimizable(True)
    historical_samples: int = optimizable(10, low=3, high=50, ge=1)
    enable_spoof_filter: bool = optimizable(True)
    spoof_lifetime_ms: float = optimizable(3000.0, low=500.0, high=10000.0, gt=0)
    large_order_side_percent: float = optimizable(0.05, low=0.01, high=0.20, gt=0, le=1)
    large_order_min_notional_abs: float = optimizable(500.0, low=100.0, high=5000.0, log=True, ge=0)
    cluster_lookback_minutes: float = optimizable(15.0, low=5.0, high=60.0, ge=5, le=60)
    cluster_poc_distance_pct: float = optimizable(1.0, low=0.1, high=3.0, gt=0)

    @field_validator("weighted_levels_weights")
    @classmethod
    def _weights_ok(cls, v: list[float]) -> list[float]:
        """A weighted imbalance with negative or all-zero weights is undefined."""
        nonneg_weights(v, "imbalance.weighted_levels_weights")
        return v


# ---------------------------------------------------------------------------------------------------- 2.6 volume
_MOMENTUM_WINDOW_CHOICES: list[list[float]] = [
    [15.0, 30.0, 60.0, 120.0],
    [10.0, 20.0, 40.0, 80.0],
    [20.0, 45.0, 90.0, 180.0],
    [5.0, 15.0, 30.0, 60.0],
]
_MOMENTUM_WEIGHT_CHOICES: list[list[float]] = [
    [0.4, 0.3, 0.2, 0.1],
    [0.25, 0.25, 0.25, 0.25],
    [0.5, 0.25, 0.15, 0.1],
    [0.1, 0.2, 0.3, 0.4],
]


class VolumeSettings(BaseModel):
    """§2.6: trade-flow windows, momentum, tape, activity z-score, frequency regime and large-order flow."""

    model_config = SECTION_CONFIG

    short_window_sec: float = optimizable(30.0, low=10.0, high=120.0, gt=0)
    default_min_trades: int = optimizable(5, low=1, high=20, ge=1)
    volatility_window_sec: float = optimizable(3600.0, low=900.0, high=3600.0, gt=0)
    volatility_min_trades: int = optimizable(10, low=3, high=50, ge=1)
    enable_multi_timeframe_momentum: bool = optimizable(True)
    momentum_windows: list[float] = optimizable(
        [15.0, 30.0, 60.0, 120.0], choices=_MOMENTUM_WINDOW_CHOICES, min_length=1
    )
    momentum_weights: list[float] = optimizable([0.4, 0.3, 0.2, 0.1], choices=_MOMENTUM_WEIGHT_CHOICES, min_length=1)
    tape_large_trade_notional: float = optimizable(5000.0, low=1000.0, high=50000.0, log=True, gt=0)
    volume_bucket_sec: float = optimizable(30.0, low=10.0, high=120.0, gt=0)
    volume_lookback_periods: int = optimizable(96, low=60, high=288, ge=1)
    volume_min_samples: int = optimizable(20, low=5, high=60, ge=2)
    enable_trade_frequency_analysis: bool = optimizable(True)
    frequency_min_baseline_trades: int = optimizable(10, low=3, high=50, ge=1)
    frequency_baseline_window_sec: float = optimizable(300.0, low=120.0, high=900.0, gt=0)
    frequency_current_window_sec: float = optimizable(30.0, low=10.0, high=120.0, gt=0)
    frequency_very_high_multiplier: float = optimizable(5.0, low=3.0, high=10.0, gt=0)
    frequency_high_multiplier: float = optimizable(2.5, low=1.5, high=3.0, gt=0)
    frequency_very_low_multiplier: float = optimizable(0.3, low=0.1, high=0.8, gt=0)
    enable_volume_confirmation: bool = optimizable(True)
    volume_confirmation_trades: int = optimizable(10, low=3, high=50, ge=2)
    volume_confirmation_min_price_change_pct: float = optimizable(1.0, low=0.0, high=3.0, ge=0)
    volume_confirmation_zscore: float = optimizable(1.2, low=0.5, high=3.0)
    volume_weak_zscore: float = optimizable(-0.5, low=-2.0, high=0.0)
    enable_large_order_flow: bool = optimizable(True)
    large_order_flow_window_sec: float = optimizable(60.0, low=15.0, high=300.0, gt=0)
    large_order_lookback_periods: int = optimizable(2000, low=200, high=5000, ge=1)
    large_order_lookback_sec: float = optimizable(600.0, low=120.0, high=1800.0, gt=0)
    large_order_min_samples: int = optimizable(20, low=5, high=100, ge=2)
    large_trade_zscore: float = optimizable(1.0, low=0.5, high=3.0)

    @model_validator(mode="after")
    def _windows_consistent(self) -> VolumeSettings:
        """Momentum windows and weights pair up one-to-one; regime edges and z edges must be ordered."""
        if len(self.momentum_windows) != len(self.momentum_weights):
            raise ValueError(
                f"volume.momentum_windows ({len(self.momentum_windows)} items) and volume.momentum_weights "
                f"({len(self.momentum_weights)} items) must have equal length"
            )
        if any(w <= 0 for w in self.momentum_windows):
            raise ValueError(f"volume.momentum_windows must be positive, got {self.momentum_windows}")
        nonneg_weights(self.momentum_weights, "volume.momentum_weights")
        ordered(
            self.volume_min_samples,
            self.volume_lookback_periods,
            "volume.volume_min_samples",
            "volume.volume_lookback_periods",
        )
        ordered(
            self.frequency_very_low_multiplier,
            self.frequency_high_multiplier,
            "volume.frequency_very_low_multiplier",
            "volume.frequency_high_multiplier",
            strict=True,
        )
        ordered(
            self.frequency_high_multiplier,
            self.frequency_very_high_multiplier,
            "volume.frequency_high_multiplier",
            "volume.frequency_very_high_multiplier",
        )
        ordered(
            self.volume_weak_zscore,
            self.volume_confirmation_zscore,
            "volume.volume_weak_zscore",
            "volume.volume_confirmation_zscore",
            strict=True,
        )
        return self


# -------------------------------------------------------------------------------------------------- 2.7 adaptive
class AdaptiveSettings(BaseModel):
    """§2.7: volatility scaling of the analysis windows."""

    model_config = SECTION_CONFIG

    enable_adaptive_windows: bool = optimizable(True)
    base_volatility_threshold: float = optimizable(1.0, low=0.3, high=3.0, gt=0)
    low_volatility_multiplier: float = optimizable(1.5, low=1.0, high=3.0, gt=0)
    high_volatility_multiplier: float = optimizable(0.7, low=0.3, high=1.0, gt=0)
    max_window_expansion: float = optimizable(2.0, low=1.0, high=4.0, ge=1)
    min_window_reduction: float = optimizable(0.5, low=0.1, high=1.0, gt=0, le=1)


# ----------------------------------------------------------------------------------------------------- 2.8 ohara
class OharaSettings(BaseModel):
    """§2.8: Bayesian belief updating and the O'Hara entry gate."""

    model_config = SECTION_CONFIG

    enable_bayesian_updating: bool = optimizable(True)
    bayesian_update_step: float = optimizable(0.05, low=0.01, high=0.20, gt=0, lt=1)
    bayesian_decay_factor: float = optimizable(0.98, low=0.90, high=1.0, gt=0, le=1)
    bayesian_bullish_threshold: float = optimizable(0.65, low=0.55, high=0.85, ge=0, le=1)
    bayesian_bearish_threshold: float = optimizable(0.35, low=0.15, high=0.45, ge=0, le=1)
    bayesian_window_sec: float = optimizable(30.0, low=10.0, high=120.0, gt=0)
    bayesian_max_trades: int = optimizable(10, low=10, high=50, ge=1)
    bayesian_min_trades: int = optimizable(3, low=1, high=10, ge=1)
    min_ohara_score_for_trade: int = optimizable(4, low=0, high=10, ge=0, le=10)

    @model_validator(mode="after")
    def _bands_ordered(self) -> OharaSettings:
        """BEARISH must sit below BULLISH and the trade minimum below the cap."""
        ordered(
            self.bayesian_bearish_threshold,
            self.bayesian_bullish_threshold,
            "ohara.bayesian_bearish_threshold",
            "ohara.bayesian_bullish_threshold",
            strict=True,
        )
        ordered(
            self.bayesian_min_trades, self.bayesian_max_trades, "ohara.bayesian_min_trades", "ohara.bayesian_max_trades"
        )
        return self


# ---------------------------------------------------------------------------------------------------- 2.9 spread
class SpreadSettings(BaseModel):
    """§2.9: spread penalty, spread gate and the invalid-book limit."""

    model_config = SECTION_CONFIG

    max_spread_threshold_bps: float = optimizable(20.0, low=5.0, high=50.0, gt=0)
    spread_threshold_increase: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    spread_gate_multiplier: float = optimizable(2.0, low=1.0, high=5.0, ge=1)
    max_valid_spread_bps: float = fixed(1000.0, gt=0)
