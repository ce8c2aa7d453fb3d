"""STRATEGY.md §2.10–§2.12: exchange endpoints and streams, data retention, fees."""

from __future__ import annotations

from pydantic import BaseModel, field_validator, model_validator

from settings.fields import fixed, optimizable
from settings.sections.checks import SECTION_CONFIG, ordered

# ------------------------------------------------------------------------------------------------- 2.10 websocket
_WSS = r"^wss://\S+$"
_HTTPS = r"^https://\S+$"


class WebsocketSettings(BaseModel):
    """§2.10: endpoints, subscription depth, heartbeat and reconnect backoff."""

    model_config = SECTION_CONFIG

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
        ordered(
            self.reconnect_delay_seconds,
            self.reconnect_max_delay_sec,
            "websocket.reconnect_delay_seconds",
            "websocket.reconnect_max_delay_sec",
        )
        return self


# -------------------------------------------------------------------------------------------- 2.11 data_retention
class DataRetentionSettings(BaseModel):
    """§2.11: pruning horizons and the log directory."""

    model_config = SECTION_CONFIG

    trade_retention_sec: float = fixed(3600.0, gt=0)
    spoof_lookback_sec: float = optimizable(300.0, low=60.0, high=900.0, gt=0)
    log_dir: str = fixed("logs", min_length=1)


# ------------------------------------------------------------------------------------------------------ 2.12 fees
class FeesSettings(BaseModel):
    """§2.12: fee fractions; funding is kept out of strategy PnL."""

    model_config = SECTION_CONFIG

    maker_fee_rate: float = fixed(0.0002, ge=0, lt=0.01)
    taker_fee_rate: float = fixed(0.00055, ge=0, lt=0.01)
