"""STRATEGY.md §2.1–§2.3: what is traded, the risk limits and how orders are executed."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, field_validator, model_validator

from settings.fields import fixed, optimizable
from settings.sections.checks import SECTION_CONFIG, ordered

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


# --------------------------------------------------------------------------------------------------- 2.1 trading
class TradingSettings(BaseModel):
    """§2.1: what is traded, how big, and how fast the orchestrator ticks."""

    model_config = SECTION_CONFIG

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
                raise ValueError(
                    f"trading.candle_sec ({self.candle_sec}) must be a whole multiple of "
                    f"trading.decision_interval_sec ({self.decision_interval_sec}) when "
                    "trading.act_on_closed_candles is on"
                )
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

    model_config = SECTION_CONFIG

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
        ordered(self.min_sl_pct, self.max_sl_pct, "risk.min_sl_pct", "risk.max_sl_pct")
        ordered(self.min_tp_pct, self.max_tp_pct, "risk.min_tp_pct", "risk.max_tp_pct")
        ordered(self.min_lifetime_sec, self.max_lifetime_sec, "risk.min_lifetime_sec", "risk.max_lifetime_sec")
        ordered(
            self.volatility_threshold_low,
            self.volatility_threshold_high,
            "risk.volatility_threshold_low",
            "risk.volatility_threshold_high",
        )
        ordered(self.winrate_low, self.winrate_high, "risk.winrate_low", "risk.winrate_high")
        ordered(
            self.min_history_for_adaptation,
            self.position_history_size,
            "risk.min_history_for_adaptation",
            "risk.position_history_size",
        )
        return self


# ------------------------------------------------------------------------------------------------- 2.3 execution
class ExecutionSettings(BaseModel):
    """§2.3: passive entry, repricing, fallback, protection and REST plumbing."""

    model_config = SECTION_CONFIG

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
