"""Prices for the executor's log lines, written with the instrument's tick decimals."""

from __future__ import annotations

from decimal import Decimal

from bot.instruments import Instrument

VWAP_EXTRA_DECIMALS = 2


def fmt_px(inst: Instrument, x: Decimal | float | None, extra: int = 0) -> str:
    """A price for the log with the instrument's tick decimals (+``extra`` for VWAPs, which sit between ticks)."""
    return "-" if x is None else f"{x:.{inst.price_decimals + extra}f}"
