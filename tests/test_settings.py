"""Tests for the settings package: STRATEGY.md §2 defaults/markers, sources, validation, optimizer safety, secrets."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from settings import (
    FIXED,
    OPTIMIZABLE,
    BacktestConfig,
    ParamSpec,
    Settings,
    apply_optimizer_params,
    fixed_fields,
    load_settings,
    search_space,
    with_overrides,
)
from settings.fields import tunable_of
from settings.model import SECTION_NAMES
from settings.search import iter_fields

STRATEGY_MD = Path(__file__).resolve().parents[2] / "shared" / "docs" / "STRATEGY.md"  # ../shared beside the repo

SECTIONS = SECTION_NAMES

# Every OPTIMIZABLE field of STRATEGY.md §2 (hand-copied so the test does not depend on the doc being present).
STRATEGY_OPTIMIZABLE: dict[str, list[str]] = {
    "trading": [
        "entry_signal_min_strength",
        "close_on_opposite_strength",
        "reverse_on_opposite",
        "min_time_between_trades_sec",
        "reopen_cooldown_sec",
        "min_position_hold_time_sec",
    ],
    "risk": [
        "base_position_lifetime_minutes",
        "enable_adaptive_lifetime",
        "low_volatility_lifetime_multiplier",
        "high_volatility_lifetime_multiplier",
        "volatility_threshold_low",
        "volatility_threshold_high",
        "min_lifetime_sec",
        "max_lifetime_sec",
        "enable_dynamic_tpsl",
        "min_sl_pct",
        "max_sl_pct",
        "min_tp_pct",
        "max_tp_pct",
        "sl_vol_multiplier",
        "tp_vol_multiplier",
        "sl_atr_multiplier",
        "tp_atr_multiplier",
        "max_vol_used_pct",
        "enable_dynamic_tpsl_ratio",
        "winrate_high",
        "winrate_low",
        "tpsl_ratio_high_winrate",
        "tpsl_ratio_medium_winrate",
        "tpsl_ratio_low_winrate",
        "position_history_size",
        "min_history_for_adaptation",
    ],
    "execution": [
        "passive_improve_bps",
        "reprice_every_sec",
        "reprice_step_bps",
        "max_reprice_attempts",
        "reprice_stay_passive",
        "require_full_fill",
        "min_partial_pct",
        "fallback_mode",
        "fallback_after_sec",
    ],
    "signals": [
        "weight_imbalance",
        "weight_momentum",
        "weight_ohara_bayesian",
        "weight_ohara_large_orders",
        "weight_tape",
        "weight_depth",
        "weight_cluster",
        "smoothing_alpha",
        "composite_thresholds",
        "min_strength_for_action",
        "enable_adaptive_threshold",
        "base_threshold",
        "min_threshold",
        "max_threshold",
        "high_volatility_threshold_reduction",
        "low_volatility_threshold_increase",
        "volatility_high_level",
        "volatility_low_level",
        "high_liquidity_threshold_reduction",
        "low_liquidity_threshold_increase",
        "high_liquidity_zscore",
        "low_liquidity_zscore",
        "ohara_strong_score_threshold",
        "ohara_threshold_reduction",
        "spike_acceleration_pct",
        "spike_threshold_reduction",
        "enable_activity_gate",
        "very_high_activity_min_abs",
        "high_activity_threshold_increase",
        "max_volatility_pct",
        "min_imbalance_for_entry",
        "min_ohara_for_entry",
        "min_momentum_for_entry",
        "max_momentum_for_entry",
        "strong_cooldown_level",
        "cooldown_seconds",
        "allow_reversal_during_cooldown",
    ],
    "imbalance": [
        "depth_limit_for_calc",
        "depth_levels",
        "weighted_levels_weights",
        "smoothing_factor",
        "enable_historical_imbalance",
        "historical_samples",
        "enable_spoof_filter",
        "spoof_lifetime_ms",
        "large_order_side_percent",
        "large_order_min_notional_abs",
        "cluster_lookback_minutes",
        "cluster_poc_distance_pct",
    ],
    "volume": [
        "short_window_sec",
        "default_min_trades",
        "volatility_window_sec",
        "volatility_min_trades",
        "enable_multi_timeframe_momentum",
        "momentum_windows",
        "momentum_weights",
        "tape_large_trade_notional",
        "volume_bucket_sec",
        "volume_lookback_periods",
        "volume_min_samples",
        "enable_trade_frequency_analysis",
        "frequency_min_baseline_trades",
        "frequency_baseline_window_sec",
        "frequency_current_window_sec",
        "frequency_very_high_multiplier",
        "frequency_high_multiplier",
        "frequency_very_low_multiplier",
        "enable_volume_confirmation",
        "volume_confirmation_trades",
        "volume_confirmation_min_price_change_pct",
        "volume_confirmation_zscore",
        "volume_weak_zscore",
        "enable_large_order_flow",
        "large_order_flow_window_sec",
        "large_order_lookback_periods",
        "large_order_lookback_sec",
        "large_order_min_samples",
        "large_trade_zscore",
    ],
    "adaptive": [
        "enable_adaptive_windows",
        "base_volatility_threshold",
        "low_volatility_multiplier",
        "high_volatility_multiplier",
        "max_window_expansion",
        "min_window_reduction",
    ],
    "ohara": [
        "enable_bayesian_updating",
        "bayesian_update_step",
        "bayesian_decay_factor",
        "bayesian_bullish_threshold",
        "bayesian_bearish_threshold",
        "bayesian_window_sec",
        "bayesian_max_trades",
        "bayesian_min_trades",
        "min_ohara_score_for_trade",
    ],
    "spread": ["max_spread_threshold_bps", "spread_threshold_increase", "spread_gate_multiplier"],
    "data_retention": ["spoof_lookback_sec"],
}
ALL_OPTIMIZABLE = {f"{sec}.{name}" for sec, names in STRATEGY_OPTIMIZABLE.items() for name in names}
SIZING_FIXED = ("trading.base_order_pct", "trading.base_order_usdt", "trading.leverage", "risk.max_open_positions")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer NAPORRR_* variables or .env file may leak into a test."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("NAPORRR_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------- defaults
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("trading.mode", "DEMO"),
        ("trading.leverage", 10),
        ("trading.base_order_pct", 0.1),
        ("trading.base_order_usdt", 0.0),
        ("trading.max_orders_per_second", 5),
        ("trading.max_orders_per_minute", 100),
        ("trading.decision_interval_sec", 2.0),
        ("trading.symbol_batch_size", 3),
        ("trading.entry_signal_min_strength", 3),
        ("trading.close_on_opposite_strength", 5),
        ("trading.reverse_on_opposite", False),
        ("trading.min_position_hold_time_sec", 30.0),
        ("trading.monitor_positions_interval_sec", 5.0),
        ("risk.max_open_positions", 5),
        ("risk.max_position_notional_pct", 1.0),
        ("risk.base_position_lifetime_minutes", 60),
        ("risk.min_sl_pct", 0.002),
        ("risk.max_sl_pct", 0.004),
        ("risk.min_tp_pct", 0.010),
        ("risk.max_tp_pct", 0.015),
        ("risk.tp_atr_multiplier", 3.0),
        ("risk.tpsl_ratio_medium_winrate", 6.0),
        ("risk.tpsl_ratio_low_winrate", 7.5),
        ("risk.min_history_for_adaptation", 20),
        ("execution.passive_improve_bps", 2.0),
        ("execution.max_reprice_attempts", 8),
        ("execution.min_partial_pct", 0.8),
        ("execution.fallback_mode", "market"),
        ("execution.sltp_trigger_by", "LastPrice"),
        ("execution.order_link_prefix", "nap"),
        ("execution.recv_window_ms", 5000),
        ("execution.instrument_cache_ttl_sec", 3600.0),
        ("signals.weight_imbalance", 0.45),
        ("signals.weight_ohara_large_orders", 0.08),
        ("signals.weight_cluster", 0.05),
        ("signals.smoothing_alpha", 0.75),
        ("signals.composite_thresholds", [0.15, 0.30, 0.40, 0.65, 0.80]),
        ("signals.base_threshold", 0.40),
        ("signals.min_threshold", 0.32),
        ("signals.max_threshold", 0.50),
        ("signals.low_liquidity_zscore", -0.5),
        ("signals.ohara_strong_score_threshold", 8),
        ("signals.spike_acceleration_pct", 50.0),
        ("signals.max_momentum_for_entry", 85.0),
        ("signals.cooldown_seconds", 180.0),
        ("signals.allow_reversal_during_cooldown", True),
        ("imbalance.depth_limit_for_calc", 50),
        ("imbalance.depth_levels", 10),
        ("imbalance.weighted_levels_weights", [1.0, 0.8, 0.6, 0.4, 0.2]),
        ("imbalance.min_volume_epsilon", 1e-9),
        ("imbalance.spoof_lifetime_ms", 3000.0),
        ("imbalance.large_order_min_notional_abs", 500.0),
        ("volume.volatility_window_sec", 3600.0),
        ("volume.momentum_windows", [15, 30, 60, 120]),
        ("volume.momentum_weights", [0.4, 0.3, 0.2, 0.1]),
        ("volume.tape_large_trade_notional", 5000.0),
        ("volume.volume_lookback_periods", 96),
        ("volume.frequency_very_low_multiplier", 0.3),
        ("volume.volume_weak_zscore", -0.5),
        ("volume.large_order_lookback_periods", 2000),
        ("volume.large_order_lookback_sec", 600.0),
        ("adaptive.low_volatility_multiplier", 1.5),
        ("adaptive.min_window_reduction", 0.5),
        ("ohara.bayesian_decay_factor", 0.98),
        ("ohara.bayesian_bearish_threshold", 0.35),
        ("ohara.bayesian_max_trades", 10),
        ("ohara.min_ohara_score_for_trade", 4),
        ("spread.max_spread_threshold_bps", 20.0),
        ("spread.max_valid_spread_bps", 1000.0),
        ("websocket.ws_public_linear", "wss://stream.bybit.com/v5/public/linear"),
        ("websocket.ws_private_demo", "wss://stream-demo.bybit.com/v5/private"),
        ("websocket.rest_base_live", "https://api.bybit.com"),
        ("websocket.subscription_depth", 50),
        ("websocket.pong_timeout_sec", 60.0),
        ("websocket.book_stale_sec", 10.0),
        ("data_retention.trade_retention_sec", 3600.0),
        ("data_retention.spoof_lookback_sec", 300.0),
        ("data_retention.log_dir", "logs"),
        ("fees.maker_fee_rate", 0.0002),
        ("fees.taker_fee_rate", 0.00055),
        ("backtest.enable_backtest", False),
        ("backtest.backtest_start_time", "02:00"),
        ("backtest.data_source", "bundled"),
        ("backtest.optimization_mode", "tpe"),
        ("backtest.validation_split", 0.3),
        ("backtest.latency_model", "lognormal"),
        ("backtest.latency_sigma", 0.5),
        ("backtest.taker_fee", 0.00055),
        ("backtest.initial_balance_usdt", 10000.0),
        ("backtest.target_metrics.min_profit_factor", 1.2),
        ("backtest.target_metrics.min_trades", 10),
        ("backtest.seed", 42),
        ("backtest.gap_policy", "refuse"),
        ("backtest.generator_seeds", 3),
        ("backtest.log_level_backtest", "INFO"),
        ("calibration.calibration_ws_symbols", ["BTCUSDT", "ETHUSDT"]),
        ("calibration.disk_budget_gb", 10.0),
        ("calibration.calibration_path", "logs/calibration"),
    ],
)
def test_defaults_match_strategy(path: str, expected: Any) -> None:
    value: Any = Settings(_env_file=None)
    for part in path.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected) or isinstance(expected, list)


def test_trade_pairs_default_is_the_universe_in_order() -> None:
    pairs = Settings(_env_file=None).trading.trade_pairs
    assert pairs == [f"{b}USDT" for b in ["BTC", "ETH", "BNB", "SOL", "ADA", "DOGE", "AVAX", "TRX", "AAVE", "STRK"]]


def test_sections_present_and_frozen() -> None:
    s = Settings(_env_file=None)
    assert tuple(Settings.model_fields)[: len(SECTIONS)] == SECTIONS
    for name in SECTIONS:
        section = getattr(s, name)
        assert isinstance(section, BaseModel)
        assert section.model_config.get("frozen") is True
        assert section.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError):
        s.risk.min_sl_pct = 0.5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.risk = s.risk  # type: ignore[misc]
    assert s.risk.min_sl_pct == 0.002


def test_every_leaf_field_is_tagged_and_infrastructure_is_fixed() -> None:
    for path, info in iter_fields(Settings):
        if path in ("api_key", "api_secret"):
            assert tunable_of(info) is None
            continue
        assert tunable_of(info) in (OPTIMIZABLE, FIXED), path
        if path.split(".")[0] in ("backtest", "calibration", "websocket", "fees"):
            assert tunable_of(info) == FIXED, path


def test_markers_match_hand_copied_strategy_table() -> None:
    tagged = {p: tunable_of(i) for p, i in iter_fields(Settings) if tunable_of(i) is not None}
    assert {p for p, t in tagged.items() if t == OPTIMIZABLE} == ALL_OPTIMIZABLE


# --------------------------------------------------------------------------- STRATEGY.md parsing (if the doc exists)
def _parse_strategy_tables(text: str) -> dict[str, tuple[str, str]]:
    """Map dotted field → (marker, default text) from the §2.1–2.12 tables, expanding `a / _b` abbreviations."""
    out: dict[str, tuple[str, str]] = {}
    section = None
    for line in text.splitlines():
        m = re.match(r"^### 2\.\d+ (\w+)", line)
        if m:
            section = m.group(1) if m.group(1) in SECTIONS else None
            continue
        if line.startswith("## 3."):
            break
        if section is None or not line.startswith("| ") or line.startswith("| field") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = [n.strip() for n in cells[0].split(" / ")]
        defaults = [d.strip() for d in cells[2].split(" / ")] if " / " in cells[2] else [cells[2]]
        marker = cells[3]
        first = names[0]
        abbrevs = [n for n in names[1:] if n.startswith("_")]
        if abbrevs:
            depth = max(n.count("_") for n in abbrevs)
            prefix = "_".join(first.split("_")[:-depth])
            names = [first] + [prefix + n if n.startswith("_") else n for n in names[1:]]
        for i, name in enumerate(names):
            default = defaults[i] if len(defaults) == len(names) else cells[2]
            out[f"{section}.{name}"] = (marker, default)
    return out


def _parse_default(text: str) -> Any:
    text = text.replace("−", "-").strip()
    if text in ("True", "False"):
        return text == "True"
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if text.startswith(("wss://", "https://")):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


@pytest.mark.skipif(not STRATEGY_MD.is_file(), reason="STRATEGY.md not available")
def test_every_strategy_field_exists_with_marker_and_default() -> None:
    table = _parse_strategy_tables(STRATEGY_MD.read_text(encoding="utf-8"))
    assert len(table) > 150
    tagged = {p: i for p, i in iter_fields(Settings)}
    defaults = Settings(_env_file=None)
    for path, (marker, default_text) in table.items():
        assert path in tagged, f"{path} missing from Settings"
        assert tunable_of(tagged[path]) == marker, path
        expected = _parse_default(default_text)
        if expected is None:
            continue
        value: Any = defaults
        for part in path.split("."):
            value = getattr(value, part)
        assert value == expected, f"{path}: {value!r} != {expected!r}"
    # and nothing OPTIMIZABLE outside the document
    assert set(search_space()) == {p for p, (m, _) in table.items() if m == OPTIMIZABLE}


# --------------------------------------------------------------------------------------------------------- sources
def test_toml_loading(tmp_path: Path) -> None:
    path = write(
        tmp_path / "run.toml",
        """
[trading]
mode = "LIVE"
trade_pairs = ["BTCUSDT", "ETHUSDT"]

[risk]
min_sl_pct = 0.0025

[signals]
composite_thresholds = [0.1, 0.2, 0.3, 0.5, 0.7]

[backtest]
seed = 11
backtest_start_time = "23:59"

[backtest.target_metrics]
min_sharpe = 1.5
""",
    )
    for s in (load_settings(path), Settings.from_toml(path), load_settings(str(path))):
        assert s.trading.mode == "LIVE"
        assert s.trading.trade_pairs == ["BTCUSDT", "ETHUSDT"]
        assert s.risk.min_sl_pct == 0.0025
        assert s.risk.max_sl_pct == 0.004  # untouched default
        assert s.signals.composite_thresholds == [0.1, 0.2, 0.3, 0.5, 0.7]
        assert s.backtest.seed == 11
        assert s.backtest.target_metrics.min_sharpe == 1.5
        assert s.backtest.target_metrics.min_trades == 10


def test_env_beats_toml_and_init_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "run.toml", "[risk]\nmin_sl_pct = 0.0025\nmax_sl_pct = 0.005\n")
    monkeypatch.setenv("NAPORRR_RISK__MIN_SL_PCT", "0.003")
    monkeypatch.setenv("NAPORRR_BACKTEST__SEED", "7")
    s = load_settings(path)
    assert s.risk.min_sl_pct == 0.003
    assert s.risk.max_sl_pct == 0.005  # from TOML
    assert s.backtest.seed == 7
    s2 = load_settings(path, risk={"min_sl_pct": 0.001})
    assert s2.risk.min_sl_pct == 0.001
    assert s2.risk.max_sl_pct == 0.005  # deep merge keeps the TOML sibling


def test_env_without_toml_and_nested_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_SIGNALS__COMPOSITE_THRESHOLDS", "[0.1, 0.2, 0.3, 0.4, 0.5]")
    monkeypatch.setenv("NAPORRR_BACKTEST__TARGET_METRICS__MIN_TRADES", "25")
    s = load_settings()
    assert s.signals.composite_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert s.backtest.target_metrics.min_trades == 25


def test_invalid_env_value_names_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_RISK__MIN_SL_PCT", "abc")
    with pytest.raises(ValidationError, match=r"risk\.min_sl_pct"):
        load_settings()


def test_missing_toml_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        Settings.from_toml(missing)


def test_malformed_toml_names_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "broken.toml", "[risk\nmin_sl_pct = ")
    with pytest.raises(ValueError, match=r"broken\.toml"):
        load_settings(bad)


def test_unknown_field_in_toml_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.toml", "[risk]\nmin_sl_pc = 0.003\n")
    with pytest.raises(ValidationError, match=r"min_sl_pc"):
        load_settings(path)


# ------------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"risk": {"min_sl_pct": -0.001}}, "risk.min_sl_pct"),
        ({"risk": {"min_sl_pct": 0.005, "max_sl_pct": 0.004}}, "risk.min_sl_pct"),
        ({"signals": {"composite_thresholds": [0.8, 0.65, 0.4, 0.3, 0.15]}}, "signals.composite_thresholds"),
        ({"signals": {"composite_thresholds": [0.15, 0.30, 0.30, 0.65, 0.80]}}, "signals.composite_thresholds"),
        ({"signals": {"min_threshold": 0.45}}, "signals.min_threshold"),
        ({"signals": {"max_threshold": 0.35}}, "signals.max_threshold"),
        ({"volume": {"momentum_windows": [15, 30, 60]}}, "volume.momentum_windows"),
        ({"volume": {"momentum_weights": [0.5, 0.5]}}, "volume.momentum_weights"),
        ({"imbalance": {"depth_limit_for_calc": 200}}, "imbalance.depth_limit_for_calc"),
        ({"volume": {"volatility_window_sec": 7200}}, "data_retention.trade_retention_sec"),
        ({"volume": {"large_order_lookback_sec": 4000}}, "data_retention.trade_retention_sec"),
        ({"data_retention": {"trade_retention_sec": 1800}}, "data_retention.trade_retention_sec"),
        ({"backtest": {"backtest_start_time": "25:00"}}, "backtest.backtest_start_time"),
        ({"backtest": {"backtest_start_time": "2:00"}}, "backtest.backtest_start_time"),
        ({"backtest": {"validation_split": 1.0}}, "backtest.validation_split"),
        ({"backtest": {"log_level_backtest": "LOUD"}}, "backtest.log_level_backtest"),
        ({"backtest": {"data_source": "ftp"}}, "backtest.data_source"),
        ({"trading": {"mode": "PAPER"}}, "trading.mode"),
        ({"trading": {"decision_interval_sec": 0}}, "trading.decision_interval_sec"),
        ({"fees": {"maker_fee_rate": -0.0001}}, "fees.maker_fee_rate"),
        ({"ohara": {"bayesian_decay_factor": 1.5}}, "ohara.bayesian_decay_factor"),
        ({"websocket": {"subscription_depth": 33}}, "websocket.subscription_depth"),
        ({"risk": {"unknown_knob": 1}}, "risk.unknown_knob"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Settings(_env_file=None, **kwargs)
    assert field in str(exc.value)


def test_deeper_depth_subscription_allows_larger_calc_depth() -> None:
    s = Settings(_env_file=None, imbalance={"depth_limit_for_calc": 200}, websocket={"subscription_depth": 200})
    assert s.imbalance.depth_limit_for_calc == 200


def test_trade_retention_can_grow_with_windows() -> None:
    s = Settings(_env_file=None, volume={"volatility_window_sec": 7200}, data_retention={"trade_retention_sec": 7200})
    assert s.volume.volatility_window_sec == 7200


# ------------------------------------------------------------------------------------------------ optimizer safety
def test_search_space_has_all_optimizable_and_no_fixed() -> None:
    space = search_space()
    assert set(space) == ALL_OPTIMIZABLE
    for path in SIZING_FIXED:
        assert path in fixed_fields()
        assert path not in space
    assert not any(p.startswith(("backtest.", "calibration.", "websocket.", "fees.")) for p in space)
    assert not set(space) & fixed_fields()


def test_param_specs_are_sane() -> None:
    defaults = Settings(_env_file=None)
    for path, spec in search_space().items():
        assert isinstance(spec, ParamSpec)
        assert spec.path == path
        value: Any = defaults
        for part in path.split("."):
            value = getattr(value, part)
        if spec.kind in ("float", "int"):
            assert spec.low is not None and spec.high is not None and spec.low < spec.high, path
            assert spec.low <= value <= spec.high, path
        else:
            assert spec.choices and len(spec.choices) >= 2, path
            frozen = tuple(value) if isinstance(value, list) else value
            assert frozen in spec.choices, path
    space = search_space()
    assert space["risk.enable_dynamic_tpsl"].kind == "bool"
    assert space["risk.position_history_size"].kind == "int"
    assert space["risk.min_sl_pct"].kind == "float"
    assert space["execution.fallback_mode"].kind == "categorical"
    assert space["execution.fallback_mode"].choices == ("market", "cancel")
    assert space["signals.composite_thresholds"].kind == "categorical"
    with pytest.raises(dataclasses.FrozenInstanceError):
        space["risk.min_sl_pct"].low = 0.0  # type: ignore[misc]


def test_search_space_corners_are_loadable() -> None:
    """Sampling every dimension at its low (or high / each choice) must still validate, so a sampler never dies."""
    base = Settings(_env_file=None)
    space = search_space()
    for pick in ("low", "high"):
        params = {
            p: (getattr(s, pick) if s.kind in ("float", "int") else s.choices[0 if pick == "low" else -1])  # type: ignore[index]
            for p, s in space.items()
        }
        assert apply_optimizer_params(base, params) is not base
    for path, spec in space.items():
        for choice in spec.choices or ():
            assert apply_optimizer_params(base, {path: choice})


@pytest.mark.parametrize(
    "path", [*SIZING_FIXED, "backtest.seed", "websocket.subscription_depth", "fees.taker_fee_rate"]
)
def test_optimizer_rejects_fixed_fields(path: str) -> None:
    s = Settings(_env_file=None)
    with pytest.raises(ValueError, match=re.escape(path)):
        apply_optimizer_params(s, {"risk.min_sl_pct": 0.003, path: 1})
    with pytest.raises(ValueError, match=re.escape(path)):
        with_overrides(s, {path: 1}, optimizer=True)


def test_with_overrides_returns_new_validated_settings() -> None:
    s = Settings(_env_file=None)
    s2 = with_overrides(s, {"risk.min_sl_pct": 0.003, "trading.leverage": 5, "backtest.target_metrics.min_sharpe": 2})
    assert s2.risk.min_sl_pct == 0.003 and s2.trading.leverage == 5
    assert s2.backtest.target_metrics.min_sharpe == 2.0
    assert s.risk.min_sl_pct == 0.002 and s.trading.leverage == 10
    s3 = apply_optimizer_params(s, {"signals.composite_thresholds": (0.1, 0.2, 0.3, 0.5, 0.7)})
    assert s3.signals.composite_thresholds == [0.1, 0.2, 0.3, 0.5, 0.7]
    with pytest.raises(ValidationError, match=r"risk\.min_sl_pct"):
        with_overrides(s, {"risk.min_sl_pct": -1.0})
    with pytest.raises(ValidationError, match=r"signals\.composite_thresholds"):
        apply_optimizer_params(s, {"signals.composite_thresholds": [0.5, 0.4, 0.3, 0.2, 0.1]})
    with pytest.raises(ValueError, match=r"risk\.nope"):
        with_overrides(s, {"risk.nope": 1})
    with pytest.raises(ValueError, match="api_key"):
        with_overrides(s, {"api_key": "x"})


def test_with_overrides_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    monkeypatch.setenv("NAPORRR_RISK__MAX_SL_PCT", "0.007")
    s2 = with_overrides(s, {"risk.min_sl_pct": 0.003})
    assert s2.risk.max_sl_pct == 0.004


# --------------------------------------------------------------------------------------------------------- secrets
def test_secrets_from_env_never_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_API_KEY", "key-AAAA1111")
    monkeypatch.setenv("NAPORRR_API_SECRET", "secret-BBBB2222")
    s = load_settings()
    assert s.api_key is not None and s.api_key.get_secret_value() == "key-AAAA1111"
    assert s.api_secret is not None and s.api_secret.get_secret_value() == "secret-BBBB2222"
    texts = [repr(s), str(s), s.model_dump_json(), json.dumps(s.snapshot_dict()), str(s.model_dump())]
    for text in texts:
        assert "AAAA1111" not in text and "BBBB2222" not in text
        assert "api_key" not in text and "api_secret" not in text
    # overrides keep the secrets (the optimizer must not drop them), still hidden
    s2 = with_overrides(s, {"risk.min_sl_pct": 0.003})
    assert s2.api_key is not None and s2.api_key.get_secret_value() == "key-AAAA1111"


def test_secret_not_echoed_in_validation_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_API_SECRET", "secret-CCCC3333")
    with pytest.raises(ValidationError) as exc:
        load_settings(imbalance={"depth_limit_for_calc": 200})
    assert "CCCC3333" not in str(exc.value)


def test_secrets_from_dotenv(tmp_path: Path) -> None:
    write(tmp_path / ".env", "NAPORRR_API_KEY=dotenv-key\nNAPORRR_API_SECRET=dotenv-secret\n")
    s = load_settings()  # cwd is tmp_path (autouse fixture)
    assert s.api_key is not None and s.api_key.get_secret_value() == "dotenv-key"
    assert "dotenv-key" not in repr(s)


@pytest.mark.parametrize("text", ['api_key = "abc"\n', 'API_SECRET = "abc"\n', '[secrets]\napi_key = "abc"\n'])
def test_secrets_in_toml_rejected(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "leak.toml", text)
    with pytest.raises(ValueError, match="environment") as exc:
        load_settings(path)
    assert "abc" not in str(exc.value)


# -------------------------------------------------------------------------------------------------------- snapshot
def _config(settings: Settings, **kw: Any) -> BacktestConfig:
    return BacktestConfig.from_settings(
        settings, symbols=kw.pop("symbols", ["BTCUSDT", "ETHUSDT"]), start_ms=1_000, end_ms=2_000, **kw
    )


def test_backtest_config_frozen_and_hash_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _config(Settings(_env_file=None))
    b = _config(Settings(_env_file=None))
    assert a.settings_hash == b.settings_hash
    assert re.fullmatch(r"[0-9a-f]{64}", a.settings_hash)
    assert a == b and hash(a) == hash(b)
    assert a.to_json() == b.to_json()
    assert a.symbols == ("BTCUSDT", "ETHUSDT")
    assert a.seed == 42
    assert _config(Settings(_env_file=None), seed=7).seed == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.settings_json = "{}"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.params["risk"]["min_sl_pct"] = 1.0  # type: ignore[index]
    # mutating a list handed out by .settings cannot change the snapshot
    a.settings.signals.composite_thresholds.append(9.9)
    assert a.settings.signals.composite_thresholds == [0.15, 0.30, 0.40, 0.65, 0.80]
    assert a.settings_hash == b.settings_hash
    # secrets never enter the snapshot or its hash
    monkeypatch.setenv("NAPORRR_API_KEY", "snap-key-XYZ")
    c = _config(load_settings())
    assert c.settings_hash == a.settings_hash
    assert "snap-key-XYZ" not in c.to_json()


def test_backtest_config_hash_changes_with_any_field() -> None:
    base = Settings(_env_file=None)
    h0 = _config(base).settings_hash
    assert _config(with_overrides(base, {"risk.min_sl_pct": 0.0021})).settings_hash != h0
    assert _config(with_overrides(base, {"backtest.latency_sigma": 0.6})).settings_hash != h0
    assert _config(with_overrides(base, {"backtest.target_metrics.min_trades": 11})).settings_hash != h0


def test_backtest_config_roundtrip_and_validation() -> None:
    s = with_overrides(Settings(_env_file=None), {"risk.min_sl_pct": 0.003})
    cfg = _config(s, seed=5)
    back = BacktestConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.settings == s
    assert json.loads(cfg.to_json())["settings"]["risk"]["min_sl_pct"] == 0.003
    with pytest.raises(ValueError, match="start_ms"):
        BacktestConfig.from_settings(s, symbols=["BTCUSDT"], start_ms=2_000, end_ms=1_000)
    with pytest.raises(ValueError, match="symbols"):
        BacktestConfig.from_settings(s, symbols=[], start_ms=1, end_ms=2)
