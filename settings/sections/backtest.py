"""The replay harness and its calibration: backtest, target metrics, calibration (FIXED)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from settings.fields import fixed
from settings.sections.checks import SECTION_CONFIG, ordered

# -------------------------------------------------------------------------------------------------- backtest
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


class TargetMetrics(BaseModel):
    """Acceptance bar a backtest/optimizer result must clear before it is reported as usable."""

    model_config = SECTION_CONFIG

    min_sharpe: float = fixed(1.0)
    min_win_rate: float = fixed(0.45, ge=0, le=1)
    min_profit_factor: float = fixed(1.2, ge=0)
    max_drawdown_pct: float = fixed(20.0, gt=0, le=100)
    min_trades: int = fixed(10, ge=0)


class BacktestSettings(BaseModel):
    """Replay/backtest/optimizer infrastructure (§2.13 placeholder); all FIXED so the optimizer cannot tune itself."""

    model_config = SECTION_CONFIG

    enable_backtest: bool = fixed(False)
    backtest_cycle_hrs: float = fixed(24.0, gt=0)
    backtest_start_time: str = fixed("02:00")
    data_source: Literal["rest_api", "bundled", "recorded"] = fixed("bundled")
    # days of 1m data a replay/optimize window or the in-bot cycle uses; fractional days allowed (0.25 = 6 hours)
    data_lookback_days: float = fixed(30.0, ge=1 / 1440)
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
    # the in-bot cycle (bot/cycle): webhook receiving its JSON notifications (None: log lines only; may hold a token,
    # so only its host is ever logged), the kline REST endpoint it downloads from (None: Bybit mainnet), the
    # optimizer's parallel jobs (0: CPU count) and the niceness of its processes (19: lowest priority)
    webhook_url: str | None = fixed(None, pattern=r"^https?://")
    webhook_timeout_sec: float = fixed(5.0, gt=0)
    kline_rest_url: str | None = fixed(None, pattern=r"^https?://")
    cycle_jobs: int = fixed(0, ge=0)
    cycle_nice: int = fixed(10, ge=0, le=19)
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
        ordered(
            self.walk_forward_step_days,
            self.walk_forward_window_days,
            "backtest.walk_forward_step_days",
            "backtest.walk_forward_window_days",
        )
        return self


class CalibrationSettings(BaseModel):
    """Live-capture calibration of the replay harness; infrastructure, all FIXED."""

    model_config = SECTION_CONFIG

    # the in-bot cycle (enable_backtest) records a session of calibration_ws_duration_min minutes of
    # calibration_ws_symbols before its backtest, then stats + fit (bot/cycle/calibrate.py); with
    # auto_correct_param its optimize replays on the fitted generator
    calibration_ws_enabled: bool = fixed(False)
    calibration_ws_duration_min: float = fixed(10.0, gt=0)  # fractions allowed (0.05 = 3 s)
    calibration_ws_symbols: list[str] = fixed(["BTCUSDT", "ETHUSDT"], min_length=1)
    disk_budget_gb: float = fixed(10.0, gt=0)
    auto_correct_param: bool = fixed(False)
    keep_raw_frames: bool = fixed(False)
    calibration_path: str = fixed("logs/calibration", min_length=1)
