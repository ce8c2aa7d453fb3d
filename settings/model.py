"""The one immutable settings object of a run (STRATEGY.md §2), its sections and its loaders.

Precedence (lowest → highest): defaults < TOML file < ``.env`` file < environment (``NAPORRR_`` prefix, ``__`` nesting)
< init kwargs. API secrets come only from the environment or ``.env``; they are excluded from every dump and repr.
An unknown ``NAPORRR_*`` environment variable is an error naming it (a typo would otherwise be ignored).

The root :class:`Settings` lives here; its sections are in :mod:`settings.sections` (one module per group) and
the sources (TOML, ``.env``, environment names) in :mod:`settings.sources`. Every name this module exported before
the split is still importable from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from settings.sections import (
    AdaptiveSettings,
    BacktestSettings,
    CalibrationSettings,
    DataRetentionSettings,
    ExecutionSettings,
    FeesSettings,
    ImbalanceSettings,
    OharaSettings,
    RiskSettings,
    SignalsSettings,
    SpreadSettings,
    TargetMetrics,
    TradingSettings,
    VolumeSettings,
    WebsocketSettings,
)
from settings.sources import (
    ENV_PREFIX,
    OTHER_ENV_NAMES,
    SECRET_FIELDS,
    TOML_PATH,
    OwnDotEnvLines,
    StrictTomlSource,
    UnknownEnvVarError,
    check_env_names,
    read_toml,
    toml_path,
)

__all__ = [
    "ENV_PREFIX",
    "OTHER_ENV_NAMES",
    "SECRET_FIELDS",
    "SECTION_NAMES",
    "AdaptiveSettings",
    "BacktestSettings",
    "CalibrationSettings",
    "DataRetentionSettings",
    "ExecutionSettings",
    "FeesSettings",
    "ImbalanceSettings",
    "OharaSettings",
    "RiskSettings",
    "Settings",
    "SignalsSettings",
    "SpreadSettings",
    "StrictTomlSource",
    "TargetMetrics",
    "TradingSettings",
    "UnknownEnvVarError",
    "VolumeSettings",
    "WebsocketSettings",
    "check_env_names",
    "load_settings",
    "read_toml",
]

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


# --------------------------------------------------------------------------------------------------------- root
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
        toml_file = TOML_PATH.get() or settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, OwnDotEnvLines(dotenv_settings)]
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
    with toml_path(toml):
        return Settings(**overrides)
