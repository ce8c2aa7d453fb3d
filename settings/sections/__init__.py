"""The settings sections (STRATEGY.md §2), one module per group; each section is a frozen, strict model."""

from settings.sections.backtest import BacktestSettings, CalibrationSettings, TargetMetrics
from settings.sections.connection import DataRetentionSettings, FeesSettings, WebsocketSettings
from settings.sections.signals import (
    AdaptiveSettings,
    ImbalanceSettings,
    OharaSettings,
    SignalsSettings,
    SpreadSettings,
    VolumeSettings,
)
from settings.sections.trading import DEFAULT_TRADE_PAIRS, ExecutionSettings, RiskSettings, TradingSettings

__all__ = [
    "DEFAULT_TRADE_PAIRS",
    "AdaptiveSettings",
    "BacktestSettings",
    "CalibrationSettings",
    "DataRetentionSettings",
    "ExecutionSettings",
    "FeesSettings",
    "ImbalanceSettings",
    "OharaSettings",
    "RiskSettings",
    "SignalsSettings",
    "SpreadSettings",
    "TargetMetrics",
    "TradingSettings",
    "VolumeSettings",
    "WebsocketSettings",
]
