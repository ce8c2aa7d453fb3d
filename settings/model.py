"""The one immutable settings object of a run (STRATEGY.md §2), its sections and its loaders.

Precedence (lowest → highest): defaults < TOML file < ``.env`` file < environment (``NAPORRR_`` prefix, ``__`` nesting)
< init kwargs. API secrets come only from the environment or ``.env``; they are excluded from every dump and repr.
An unknown ``NAPORRR_*`` environment variable is an error naming it (a typo would otherwise be ignored).
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from settings.fields import fixed, optimizable

ENV_PREFIX = "NAPORRR_"
SECRET_FIELDS: frozenset[str] = frozenset({"api_key", "api_secret"})
# NAPORRR_* variables read outside Settings (test tooling). Any other NAPORRR_* name must be a setting.
OTHER_ENV_NAMES: frozenset[str] = frozenset({"NAPORRR_UPDATE_GOLDEN"})
_SECRET_TOML_KEYS: frozenset[str] = SECRET_FIELDS | {"secrets"}

DEFAULT_TRADE_PAIRS: list[str] = [
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "ADAUSDT",
    "DOGEUSDT",
    "AVAXUSDT",
    "TRXUSDT",
    "AAVEUSDT",
    "STRKUSDT",
]
_SECTION_CONFIG = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _ascending(values: list[float], name: str, *, strict: bool = True) -> None:
    """Raise naming ``name`` unless ``values`` ascend (strictly by default)."""
    for a, b in itertools.pairwise(values):
        if (b <= a) if strict else (b < a):
            raise ValueError(f"{name} must be {'strictly ' if strict else ''}ascending, got {values}")


def _ordered(lo: float, hi: float, lo_name: str, hi_name: str, *, strict: bool = False) -> None:
    """Raise naming both fields unless ``lo <= hi`` (or ``lo < hi`` when strict)."""
    if (lo >= hi) if strict else (lo > hi):
        op = "<" if strict else "<="
        raise ValueError(f"{lo_name} ({lo}) must be {op} {hi_name} ({hi})")


def _nonneg_weights(values: list[float], name: str) -> None:
    """Weights must be non-negative and not all zero, else a weighted sum is meaningless."""
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{name} must be non-negative with a positive sum, got {values}")


# --------------------------------------------------------------------------------------------------- 2.1 trading
class TradingSettings(BaseModel):
    """§2.1: what is traded, how big, and how fast the orchestrator ticks."""

    model_config = _SECTION_CONFIG

    mode: Literal["DEMO", "LIVE"] = fixed("DEMO")
    trade_pairs: list[str] = fixed(DEFAULT_TRADE_PAIRS, min_length=1)
    leverage: int = fixed(10, ge=1, le=100)
    base_order_pct: float = fixed(0.1, gt=0, le=1)
    base_order_usdt: float = fixed(0.0, ge=0)
    max_orders_per_second: int = fixed(5, ge=1)
    max_orders_per_minute: int = fixed(100, ge=1)
    decision_interval_sec: float = fixed(2.0, gt=0)
    symbol_batch_size: int = fixed(3, ge=1)
    entry_signal_min_strength: int = optimizable(3, low=1, high=5, ge=1, le=5)
    close_on_opposite_strength: int = optimizable(5, low=1, high=5, ge=1, le=5)
    reverse_on_opposite: bool = optimizable(False)
    min_time_between_trades_sec: float = optimizable(15.0, low=0.0, high=60.0, ge=0)
    reopen_cooldown_sec: float = optimizable(10.0, low=0.0, high=60.0, ge=0)
    min_position_hold_time_sec: float = optimizable(30.0, low=0.0, high=120.0, ge=0)
    monitor_positions_interval_sec: float = fixed(5.0, gt=0)
    # Acting on closed candles (live: off; replay's strict no-repaint mode: on). Evaluations still run every tick, so
    # analyzer state advances exactly as live and every signal is logged; only the actions a signal triggers
    # (maybe_open / maybe_close / REVERSE) wait for the close of the candle the signal was computed in.
    act_on_closed_candles: bool = fixed(False)
    candle_sec: float = fixed(60.0, gt=0)

    @model_validator(mode="after")
    def _candle_on_tick_grid(self) -> TradingSettings:
        """Every candle close must be a tick time, or deferred actions would run after the close they belong to."""
        if self.act_on_closed_candles:
            ratio = self.candle_sec / self.decision_interval_sec
            if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"trading.candle_sec ({self.candle_sec}) must be a whole multiple of "
                                 f"trading.decision_interval_sec ({self.decision_interval_sec}) when "
                                 "trading.act_on_closed_candles is on")
        return self

    @field_validator("trade_pairs")
    @classmethod
    def _pairs_upper_unique(cls, v: list[str]) -> list[str]:
        """Symbols are exchange identifiers: uppercase, USDT-quoted, each once (order is evaluation order)."""
        bad = [s for s in v if not re.fullmatch(r"[A-Z0-9]+USDT", s)]
        if bad:
            raise ValueError(f"trading.trade_pairs must be uppercase USDT symbols, bad: {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"trading.trade_pairs contains duplicates: {v}")
        return v


# ------------------------------------------------------------------------------------------------------ 2.2 risk
class RiskSettings(BaseModel):
    """§2.2: position caps, lifetimes and SL/TP distances."""

    model_config = _SECTION_CONFIG

    max_open_positions: int = fixed(5, ge=1)
    max_position_notional_pct: float = fixed(1.0, gt=0)
    base_position_lifetime_minutes: int = optimizable(60, low=15, high=240, ge=1)
    enable_adaptive_lifetime: bool = optimizable(True)
    low_volatility_lifetime_multiplier: float = optimizable(1.5, low=1.0, high=3.0, gt=0)
    high_volatility_lifetime_multiplier: float = optimizable(0.7, low=0.3, high=1.0, gt=0)
    volatility_threshold_low: float = optimizable(0.5, low=0.1, high=1.0, ge=0)
    volatility_threshold_high: float = optimizable(2.0, low=1.0, high=5.0, gt=0)
    min_lifetime_sec: float = optimizable(300.0, low=60.0, high=900.0, gt=0)
    max_lifetime_sec: float = optimizable(7200.0, low=1800.0, high=14400.0, gt=0)
    enable_dynamic_tpsl: bool = optimizable(True)
    min_sl_pct: float = optimizable(0.002, low=0.001, high=0.003, gt=0, lt=1)
    max_sl_pct: float = optimizable(0.004, low=0.003, high=0.008, gt=0, lt=1)
    min_tp_pct: float = optimizable(0.010, low=0.004, high=0.012, gt=0, lt=1)
    max_tp_pct: float = optimizable(0.015, low=0.012, high=0.030, gt=0, lt=1)
    sl_vol_multiplier: float = optimizable(1.0, low=0.5, high=3.0, gt=0)
    tp_vol_multiplier: float = optimizable(2.5, low=1.0, high=5.0, gt=0)
    sl_atr_multiplier: float = optimizable(1.5, low=0.5, high=3.0, gt=0)
    tp_atr_multiplier: float = optimizable(3.0, low=1.0, high=6.0, gt=0)
    max_vol_used_pct: float = optimizable(5.0, low=1.0, high=10.0, gt=0)
    enable_dynamic_tpsl_ratio: bool = optimizable(True)
    winrate_high: float = optimizable(0.6, low=0.5, high=0.8, ge=0, le=1)
    winrate_low: float = optimizable(0.4, low=0.2, high=0.5, ge=0, le=1)
    tpsl_ratio_high_winrate: float = optimizable(5.0, low=1.0, high=10.0, gt=0)
    tpsl_ratio_medium_winrate: float = optimizable(6.0, low=1.0, high=10.0, gt=0)
    tpsl_ratio_low_winrate: float = optimizable(7.5, low=1.0, high=12.0, gt=0)
    position_history_size: int = optimizable(100, low=50, high=500, ge=1)
    min_history_for_adaptation: int = optimizable(20, low=5, high=50, ge=1)
    # the live kill switch (bot.monitor); not in STRATEGY.md §2: operator limits, never tuned
    kill_switch_daily_loss_pct: float = fixed(5.0, gt=0, le=100)
    kill_switch_max_errors: int = fixed(20, ge=1)
    kill_switch_error_window_sec: float = fixed(60.0, gt=0)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> RiskSettings:
        """Every min/max pair must be ordered, else clamping inverts."""
        _ordered(self.min_sl_pct, self.max_sl_pct, "risk.min_sl_pct", "risk.max_sl_pct")
        _ordered(self.min_tp_pct, self.max_tp_pct, "risk.min_tp_pct", "risk.max_tp_pct")
        _ordered(self.min_lifetime_sec, self.max_lifetime_sec, "risk.min_lifetime_sec", "risk.max_lifetime_sec")
        _ordered(
            self.volatility_threshold_low,
            self.volatility_threshold_high,
            "risk.volatility_threshold_low",
            "risk.volatility_threshold_high",
        )
        _ordered(self.winrate_low, self.winrate_high, "risk.winrate_low", "risk.winrate_high")
        _ordered(
            self.min_history_for_adaptation,
            self.position_history_size,
            "risk.min_history_for_adaptation",
            "risk.position_history_size",
        )
        return self


# ------------------------------------------------------------------------------------------------- 2.3 execution
class ExecutionSettings(BaseModel):
    """§2.3: passive entry, repricing, fallback, protection and REST plumbing."""

    model_config = _SECTION_CONFIG

    passive_improve_bps: float = optimizable(2.0, low=0.0, high=10.0, ge=0)
    reprice_every_sec: float = optimizable(3.0, low=1.0, high=10.0, gt=0)
    reprice_step_bps: float = optimizable(5.0, low=1.0, high=20.0, gt=0)
    max_reprice_attempts: int = optimizable(8, low=0, high=20, ge=0)
    reprice_stay_passive: bool = optimizable(True)
    require_full_fill: bool = optimizable(False)
    min_partial_pct: float = optimizable(0.8, low=0.5, high=1.0, gt=0, le=1)
    fallback_mode: Literal["market", "cancel"] = optimizable("market", choices=["market", "cancel"])
    fallback_after_sec: float = optimizable(30.0, low=10.0, high=120.0, gt=0)
    max_wait_sec: float = fixed(60.0, gt=0)
    order_poll_interval_sec: float = fixed(0.5, gt=0)
    sltp_trigger_by: Literal["LastPrice", "MarkPrice", "IndexPrice"] = fixed("LastPrice")
    sltp_max_retries: int = fixed(3, ge=0)
    sltp_retry_delay_sec: float = fixed(0.5, ge=0)
    close_confirm_timeout_sec: float = fixed(10.0, gt=0)
    reconcile_interval_sec: float = fixed(60.0, gt=0)
    order_link_prefix: str = fixed("nap", pattern=r"^[A-Za-z0-9_-]{1,12}$")
    rest_retry_attempts: int = fixed(3, ge=0)
    recv_window_ms: int = fixed(5000, ge=1)
    instrument_cache_ttl_sec: float = fixed(3600.0, gt=0)
    max_clock_skew_sec: float = fixed(5.0, gt=0)


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

    model_config = _SECTION_CONFIG

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
        _ascending(self.composite_thresholds, "signals.composite_thresholds")
        _ordered(self.min_threshold, self.base_threshold, "signals.min_threshold", "signals.base_threshold")
        _ordered(self.base_threshold, self.max_threshold, "signals.base_threshold", "signals.max_threshold")
        _ordered(
            self.min_momentum_for_entry,
            self.max_momentum_for_entry,
            "signals.min_momentum_for_entry",
            "signals.max_momentum_for_entry",
        )
        _ordered(
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

    model_config = _SECTION_CONFIG

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
        _nonneg_weights(v, "imbalance.weighted_levels_weights")
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

    model_config = _SECTION_CONFIG

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
        _nonneg_weights(self.momentum_weights, "volume.momentum_weights")
        _ordered(
            self.volume_min_samples,
            self.volume_lookback_periods,
            "volume.volume_min_samples",
            "volume.volume_lookback_periods",
        )
        _ordered(
            self.frequency_very_low_multiplier,
            self.frequency_high_multiplier,
            "volume.frequency_very_low_multiplier",
            "volume.frequency_high_multiplier",
            strict=True,
        )
        _ordered(
            self.frequency_high_multiplier,
            self.frequency_very_high_multiplier,
            "volume.frequency_high_multiplier",
            "volume.frequency_very_high_multiplier",
        )
        _ordered(
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

    model_config = _SECTION_CONFIG

    enable_adaptive_windows: bool = optimizable(True)
    base_volatility_threshold: float = optimizable(1.0, low=0.3, high=3.0, gt=0)
    low_volatility_multiplier: float = optimizable(1.5, low=1.0, high=3.0, gt=0)
    high_volatility_multiplier: float = optimizable(0.7, low=0.3, high=1.0, gt=0)
    max_window_expansion: float = optimizable(2.0, low=1.0, high=4.0, ge=1)
    min_window_reduction: float = optimizable(0.5, low=0.1, high=1.0, gt=0, le=1)


# ----------------------------------------------------------------------------------------------------- 2.8 ohara
class OharaSettings(BaseModel):
    """§2.8: Bayesian belief updating and the O'Hara entry gate."""

    model_config = _SECTION_CONFIG

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
        _ordered(
            self.bayesian_bearish_threshold,
            self.bayesian_bullish_threshold,
            "ohara.bayesian_bearish_threshold",
            "ohara.bayesian_bullish_threshold",
            strict=True,
        )
        _ordered(
            self.bayesian_min_trades, self.bayesian_max_trades, "ohara.bayesian_min_trades", "ohara.bayesian_max_trades"
        )
        return self


# ---------------------------------------------------------------------------------------------------- 2.9 spread
class SpreadSettings(BaseModel):
    """§2.9: spread penalty, spread gate and the invalid-book limit."""

    model_config = _SECTION_CONFIG

    max_spread_threshold_bps: float = optimizable(20.0, low=5.0, high=50.0, gt=0)
    spread_threshold_increase: float = optimizable(0.03, low=0.0, high=0.10, ge=0)
    spread_gate_multiplier: float = optimizable(2.0, low=1.0, high=5.0, ge=1)
    max_valid_spread_bps: float = fixed(1000.0, gt=0)


# ------------------------------------------------------------------------------------------------- 2.10 websocket
_WSS = r"^wss://\S+$"
_HTTPS = r"^https://\S+$"


class WebsocketSettings(BaseModel):
    """§2.10: endpoints, subscription depth, heartbeat and reconnect backoff."""

    model_config = _SECTION_CONFIG

    ws_public_linear: str = fixed("wss://stream.bybit.com/v5/public/linear", pattern=_WSS)
    ws_private_live: str = fixed("wss://stream.bybit.com/v5/private", pattern=_WSS)
    ws_private_demo: str = fixed("wss://stream-demo.bybit.com/v5/private", pattern=_WSS)
    rest_base_live: str = fixed("https://api.bybit.com", pattern=_HTTPS)
    rest_base_demo: str = fixed("https://api-demo.bybit.com", pattern=_HTTPS)
    subscription_depth: int = fixed(50)
    ping_interval_sec: float = fixed(20.0, gt=0)
    pong_timeout_sec: float = fixed(60.0, gt=0)
    reconnect_delay_seconds: float = fixed(5.0, gt=0)
    reconnect_max_delay_sec: float = fixed(60.0, gt=0)
    enable_private_ws: bool = fixed(True)
    book_stale_sec: float = fixed(10.0, gt=0)

    @field_validator("subscription_depth")
    @classmethod
    def _bybit_depth(cls, v: int) -> int:
        """Bybit linear order-book topics exist only at these depths."""
        if v not in (1, 50, 200, 500, 1000):
            raise ValueError(f"websocket.subscription_depth must be one of 1, 50, 200, 500, 1000, got {v}")
        return v

    @model_validator(mode="after")
    def _backoff_ordered(self) -> WebsocketSettings:
        """The backoff cap must not be below its first step."""
        _ordered(
            self.reconnect_delay_seconds,
            self.reconnect_max_delay_sec,
            "websocket.reconnect_delay_seconds",
            "websocket.reconnect_max_delay_sec",
        )
        return self


# -------------------------------------------------------------------------------------------- 2.11 data_retention
class DataRetentionSettings(BaseModel):
    """§2.11: pruning horizons and the log directory."""

    model_config = _SECTION_CONFIG

    trade_retention_sec: float = fixed(3600.0, gt=0)
    spoof_lookback_sec: float = optimizable(300.0, low=60.0, high=900.0, gt=0)
    log_dir: str = fixed("logs", min_length=1)


# ------------------------------------------------------------------------------------------------------ 2.12 fees
class FeesSettings(BaseModel):
    """§2.12: fee fractions; funding is kept out of strategy PnL."""

    model_config = _SECTION_CONFIG

    maker_fee_rate: float = fixed(0.0002, ge=0, lt=0.01)
    taker_fee_rate: float = fixed(0.00055, ge=0, lt=0.01)


# -------------------------------------------------------------------------------------------------- backtest
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class TargetMetrics(BaseModel):
    """Acceptance bar a backtest/optimizer result must clear before it is reported as usable."""

    model_config = _SECTION_CONFIG

    min_sharpe: float = fixed(1.0)
    min_win_rate: float = fixed(0.45, ge=0, le=1)
    min_profit_factor: float = fixed(1.2, ge=0)
    max_drawdown_pct: float = fixed(20.0, gt=0, le=100)
    min_trades: int = fixed(10, ge=0)


class BacktestSettings(BaseModel):
    """Replay/backtest/optimizer infrastructure (§2.13 placeholder); all FIXED so the optimizer cannot tune itself."""

    model_config = _SECTION_CONFIG

    enable_backtest: bool = fixed(False)
    backtest_cycle_hrs: float = fixed(24.0, gt=0)
    backtest_start_time: str = fixed("02:00")
    data_source: Literal["rest_api", "bundled", "recorded"] = fixed("bundled")
    data_lookback_days: int = fixed(30, ge=1)
    data_timeframe: str = fixed("1m", pattern=r"^\d+[smhdw]$")
    optimization_mode: Literal["grid", "random", "tpe"] = fixed("tpe")
    optimization_iterations: int = fixed(50, ge=1)
    optimize_per_symbol: bool = fixed(True)
    optimize_unified: bool = fixed(False)
    auto_apply_params: bool = fixed(False)
    auto_apply_threshold_improvement: float = fixed(0.10, ge=0)
    require_manual_approval: bool = fixed(True)
    validation_split: float = fixed(0.3, gt=0, lt=1)
    walk_forward_enabled: bool = fixed(False)
    walk_forward_window_days: int = fixed(7, ge=1)
    walk_forward_step_days: int = fixed(3, ge=1)
    strict_repainting_check: bool = fixed(True)
    intrabar_simulation: bool = fixed(True)
    intrabar_points_per_candle: int = fixed(12, ge=4, le=600)
    use_realistic_slippage: bool = fixed(True)
    slippage_model: Literal["adaptive", "fixed", "volume_based"] = fixed("adaptive")
    fixed_slippage_bps: float = fixed(1.0, ge=0)
    latency_model: Literal["constant", "lognormal"] = fixed("lognormal")
    latency_entry_ms: float = fixed(25.0, ge=0)
    latency_response_ms: float = fixed(25.0, ge=0)
    latency_amend_ms: float = fixed(25.0, ge=0)
    latency_cancel_ms: float = fixed(25.0, ge=0)
    latency_sigma: float = fixed(0.5, ge=0)
    maker_fee: float = fixed(0.0002, ge=0, lt=0.01)
    taker_fee: float = fixed(0.00055, ge=0, lt=0.01)
    funding_rate: float = fixed(0.0001)
    funding_interval_hours: float = fixed(8.0, gt=0)
    initial_balance_usdt: float = fixed(10000.0, gt=0)
    target_metrics: TargetMetrics = Field(default_factory=TargetMetrics)
    generate_html_report: bool = fixed(True)
    generate_plots: bool = fixed(True)
    save_equity_curve: bool = fixed(True)
    save_trade_log: bool = fixed(True)
    report_path: str = fixed("logs/backtest", min_length=1)
    notify_on_completion: bool = fixed(False)
    notify_on_better_params: bool = fixed(True)
    notify_threshold_improvement: float = fixed(0.05, ge=0)
    auto_cleanup: bool = fixed(True)
    keep_last_n_runs: int = fixed(20, ge=1)
    cleanup_interval_days: int = fixed(30, ge=1)
    max_memory_gb: float = fixed(4.0, gt=0)
    checkpoint_every_n_iterations: int = fixed(10, ge=1)
    enable_progress_bar: bool = fixed(True)
    debug_mode: bool = fixed(False)
    save_intermediate_results: bool = fixed(False)
    log_level_backtest: str = fixed("INFO")
    seed: int = fixed(42, ge=0)
    gap_policy: Literal["refuse", "split"] = fixed("refuse")
    generator_seeds: int = fixed(3, ge=1)

    @field_validator("backtest_start_time")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        """Scheduled start is a UTC wall-clock time; reject anything a scheduler would misread."""
        m = re.fullmatch(r"(\d{2}):(\d{2})", v)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise ValueError(f"backtest.backtest_start_time must be 'HH:MM' (UTC, 00:00-23:59), got {v!r}")
        return v

    @field_validator("log_level_backtest")
    @classmethod
    def _level(cls, v: str) -> str:
        """Normalise to an upper-case loguru level name so a typo fails at load, not at the first log call."""
        level = v.upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"backtest.log_level_backtest must be one of {_LOG_LEVELS}, got {v!r}")
        return level

    @model_validator(mode="after")
    def _walk_forward(self) -> BacktestSettings:
        """A walk-forward step longer than its window would skip data."""
        _ordered(
            self.walk_forward_step_days,
            self.walk_forward_window_days,
            "backtest.walk_forward_step_days",
            "backtest.walk_forward_window_days",
        )
        return self


class CalibrationSettings(BaseModel):
    """Live-capture calibration of the replay harness; infrastructure, all FIXED."""

    model_config = _SECTION_CONFIG

    calibration_ws_enabled: bool = fixed(False)
    calibration_ws_duration_min: float = fixed(10.0, gt=0)
    calibration_ws_symbols: list[str] = fixed(["BTCUSDT", "ETHUSDT"], min_length=1)
    disk_budget_gb: float = fixed(10.0, gt=0)
    auto_correct_param: bool = fixed(False)
    keep_raw_frames: bool = fixed(False)
    calibration_path: str = fixed("logs/calibration", min_length=1)


SECTION_NAMES: tuple[str, ...] = (
    "trading",
    "risk",
    "execution",
    "signals",
    "imbalance",
    "volume",
    "adaptive",
    "ohara",
    "spread",
    "websocket",
    "data_retention",
    "fees",
    "backtest",
    "calibration",
)


# --------------------------------------------------------------------------------------------------- TOML source
_TOML_PATH: ContextVar[Path | None] = ContextVar("naporrr_settings_toml_path", default=None)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a settings TOML file with errors that name the file, and refuse secrets in it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"settings TOML file not found: {p}")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"malformed settings TOML file {p}: {exc}") from exc
    leaked = sorted(k for k in data if k.lower() in _SECRET_TOML_KEYS)
    if leaked:
        raise ValueError(
            f"settings TOML file {p} contains {leaked}: API secrets must come from the environment "
            f"({ENV_PREFIX}API_KEY / {ENV_PREFIX}API_SECRET) or the git-ignored .env file, never from a config file"
        )
    return data


class StrictTomlSource(TomlConfigSettingsSource):
    """TOML source that fails loudly on a missing or malformed file and on secrets (the stock one skips/raises raw)."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path | None) -> None:
        if toml_file is not None and not Path(toml_file).is_file():
            raise FileNotFoundError(f"settings TOML file not found: {toml_file}")
        super().__init__(settings_cls, toml_file=toml_file)

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        return read_toml(file_path)


@contextmanager
def _toml_path(path: Path | None) -> Iterator[None]:
    """Scope the TOML path to one construction; a ContextVar keeps concurrent loads from seeing each other's file."""
    token = _TOML_PATH.set(path)
    try:
        yield
    finally:
        _TOML_PATH.reset(token)


# -------------------------------------------------------------------------------------------- environment names
class UnknownEnvVarError(ValueError):
    """A ``NAPORRR_*`` environment variable that names no setting (pydantic-settings would silently ignore it)."""


def check_env_names(environ: Mapping[str, str], settings_cls: type[BaseModel]) -> None:
    """Raise :class:`UnknownEnvVarError` naming every ``NAPORRR_*`` variable that is no setting of ``settings_cls``.

    Known: ``NAPORRR_<SECTION>`` and ``NAPORRR_<SECTION>__<FIELD...>`` for each section (a typo inside a section is
    pydantic's to report, with the field's name), the top-level fields (``NAPORRR_API_KEY``, ``NAPORRR_API_SECRET``)
    and :data:`OTHER_ENV_NAMES`. Only names are read and reported, never values (secrets live in these variables).
    """
    fields = settings_cls.model_fields
    sections = [n for n, f in fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]
    plain = [n for n in fields if n not in sections]
    unknown: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV_NAMES:
            continue
        top, sep, rest = upper[len(ENV_PREFIX):].lower().partition("__")
        if (top in sections and (rest or not sep)) or (top in plain and not sep):
            continue
        unknown.append((name, _guess_env_name(top, sep, rest, sections, plain)))
    if not unknown:
        return
    if len(unknown) == 1:
        name, guess = unknown[0]
        what = f"unknown environment variable {name}{f' (did you mean {guess}?)' if guess else ''}"
    else:
        what = "unknown environment variables " + ", ".join(
            f"{name}{f' (did you mean {guess}?)' if guess else ''}" for name, guess in unknown)
    raise UnknownEnvVarError(
        f"{what}: the known ones are {ENV_PREFIX}<SECTION>__<FIELD> with SECTION one of "
        f"{', '.join(s.upper() for s in sections)}, and {', '.join(ENV_PREFIX + p.upper() for p in plain)}")


def _guess_env_name(top: str, sep: str, rest: str, sections: list[str], plain: list[str]) -> str | None:
    """The known variable a mistyped name most likely meant, or None."""
    for sec in sorted(sections, key=len, reverse=True):  # NAPORRR_RISK_MIN_SL_PCT: one underscore short
        if not sep and top.startswith(sec + "_"):
            return f"{ENV_PREFIX}{sec.upper()}__{top[len(sec) + 1:].upper()}"
    match = difflib.get_close_matches(top, sections + plain, n=1, cutoff=0.75)
    if not match:
        return None
    if match[0] in sections:
        return f"{ENV_PREFIX}{match[0].upper()}{'__' + rest.upper() if rest else ''}"
    return f"{ENV_PREFIX}{match[0].upper()}"


# --------------------------------------------------------------------------------------------------------- root
class _OwnDotEnvLines(PydanticBaseSettingsSource):
    """The ``.env`` source minus lines meant for other readers of the same file (``BYBIT_API_KEY`` /
    ``BYBIT_API_SECRET`` for the trading adapter's ``load_credentials``): with ``extra="forbid"`` pydantic-settings
    would reject every non-``NAPORRR_`` line. A mistyped ``NAPORRR_*`` line is still an error."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.inner._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.inner._set_settings_sources_data(states)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        own = set(self.settings_cls.model_fields)
        return {k: v for k, v in self.inner().items() if k in own or k.upper().startswith(ENV_PREFIX)}


class Settings(BaseSettings):
    """Root settings: one frozen section per concern, plus API secrets that never leave the process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
        hide_input_in_errors=True,  # a root-level error would otherwise echo the whole input, secrets included
        toml_file=None,
    )

    trading: TradingSettings = Field(default_factory=TradingSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    signals: SignalsSettings = Field(default_factory=SignalsSettings)
    imbalance: ImbalanceSettings = Field(default_factory=ImbalanceSettings)
    volume: VolumeSettings = Field(default_factory=VolumeSettings)
    adaptive: AdaptiveSettings = Field(default_factory=AdaptiveSettings)
    ohara: OharaSettings = Field(default_factory=OharaSettings)
    spread: SpreadSettings = Field(default_factory=SpreadSettings)
    websocket: WebsocketSettings = Field(default_factory=WebsocketSettings)
    data_retention: DataRetentionSettings = Field(default_factory=DataRetentionSettings)
    fees: FeesSettings = Field(default_factory=FeesSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)

    # Secrets: excluded from dumps and repr; SecretStr also masks them in str()/logs.
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    api_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Priority: init kwargs > environment > .env > TOML > defaults. An unknown ``NAPORRR_*`` variable raises."""
        check_env_names(os.environ, settings_cls)
        toml_file = _TOML_PATH.get() or settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, _OwnDotEnvLines(dotenv_settings)]
        if toml_file is not None:
            sources.append(StrictTomlSource(settings_cls, Path(toml_file)))  # type: ignore[arg-type]
        return tuple(sources)

    @model_validator(mode="after")
    def _cross_section(self) -> Settings:
        """Constraints spanning sections (§2 load-time validation)."""
        if self.imbalance.depth_limit_for_calc > self.websocket.subscription_depth:
            raise ValueError(
                f"imbalance.depth_limit_for_calc ({self.imbalance.depth_limit_for_calc}) must be <= "
                f"websocket.subscription_depth ({self.websocket.subscription_depth})"
            )
        if self.imbalance.depth_levels > self.websocket.subscription_depth:
            raise ValueError(
                f"imbalance.depth_levels ({self.imbalance.depth_levels}) must be <= "
                f"websocket.subscription_depth ({self.websocket.subscription_depth})"
            )
        needed = {
            "volume.volatility_window_sec": self.volume.volatility_window_sec,
            "3600": 3600.0,
            "volume.frequency_baseline_window_sec": self.volume.frequency_baseline_window_sec,
            "volume.large_order_lookback_sec": self.volume.large_order_lookback_sec,
        }
        worst = max(needed, key=lambda k: needed[k])
        if self.data_retention.trade_retention_sec < needed[worst]:
            raise ValueError(
                f"data_retention.trade_retention_sec ({self.data_retention.trade_retention_sec}) must be >= "
                f"max(volatility_window_sec, 3600, frequency_baseline_window_sec, large_order_lookback_sec) "
                f"= {needed[worst]} (from {worst})"
            )
        return self

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Settings:
        """Load from a TOML file; environment variables still override it, init kwargs override both."""
        return load_settings(path, **overrides)

    def snapshot_dict(self) -> dict[str, Any]:
        """JSON-ready dump of every non-secret field, used for hashing, snapshots and run logs."""
        return self.model_dump(mode="json", exclude=set(SECRET_FIELDS))

    def __str__(self) -> str:
        """Same as repr: never anything that could leak a secret."""
        return repr(self)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the run's Settings: defaults < TOML ``path`` < .env < environment < ``overrides``.

    ``overrides`` are init kwargs (e.g. ``risk={"min_sl_pct": 0.003}``) and may include pydantic-settings runtime
    options such as ``_env_file=None``. A missing or malformed TOML raises naming the file.
    """
    toml = Path(path) if path is not None else None
    if toml is not None:
        read_toml(toml)  # fail early and clearly (missing / malformed / secrets) before pydantic wraps anything
    with _toml_path(toml):
        return Settings(**overrides)
