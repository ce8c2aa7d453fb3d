"""Settings package: one immutable, validated settings object per run (STRATEGY.md §2)."""

from settings.fields import FIXED, OPTIMIZABLE, ParamSpec, fixed, optimizable
from settings.model import (
    AdaptiveSettings,
    BacktestSettings,
    CalibrationSettings,
    DataRetentionSettings,
    ExecutionSettings,
    FeesSettings,
    ImbalanceSettings,
    OharaSettings,
    RiskSettings,
    Settings,
    SignalsSettings,
    SpreadSettings,
    TargetMetrics,
    TradingSettings,
    VolumeSettings,
    WebsocketSettings,
    load_settings,
)
from settings.search import apply_optimizer_params, fixed_fields, search_space, with_overrides
from settings.snapshot import BacktestConfig

__all__ = [
    "FIXED",
    "OPTIMIZABLE",
    "AdaptiveSettings",
    "BacktestConfig",
    "BacktestSettings",
    "CalibrationSettings",
    "DataRetentionSettings",
    "ExecutionSettings",
    "FeesSettings",
    "ImbalanceSettings",
    "OharaSettings",
    "ParamSpec",
    "RiskSettings",
    "Settings",
    "SignalsSettings",
    "SpreadSettings",
    "TargetMetrics",
    "TradingSettings",
    "VolumeSettings",
    "WebsocketSettings",
    "apply_optimizer_params",
    "fixed",
    "fixed_fields",
    "load_settings",
    "optimizable",
    "search_space",
    "with_overrides",
]
