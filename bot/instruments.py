"""Instrument filters and grid rounding.

Prices and quantities sent to an exchange live on the instrument's tick/step grid. Rounding is done in
``Decimal`` from the exchange's own strings, never with binary floats or hard-coded decimals (STRATEGY.md
conventions), so ``0.1 + 0.2`` style errors can never reach an order.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_INSTRUMENTS = DATA_DIR / "rest" / "bybit-v5-instruments-info-linear-2026-08-09.json.gz"


def to_decimal(x: float | int | str | Decimal) -> Decimal:
    """Exact decimal of the shortest repr of ``x`` (``0.1`` → ``Decimal('0.1')``, not its binary expansion)."""
    if isinstance(x, Decimal):
        return x
    return Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def _grid(x: float | str | Decimal, step: Decimal, rounding: str) -> Decimal:
    units = (to_decimal(x) / step).to_integral_value(rounding=rounding)
    return (units * step).quantize(step)


@dataclass(frozen=True, slots=True)
class Instrument:
    """The filters of one linear perpetual, as Bybit's instruments-info states them."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_mkt_order_qty: Decimal
    min_notional: Decimal
    max_leverage: Decimal
    funding_interval_min: int
    status: str = "Trading"

    @property
    def tick(self) -> float:
        return float(self.tick_size)

    @property
    def step(self) -> float:
        return float(self.qty_step)

    @property
    def price_decimals(self) -> int:
        return max(0, -self.tick_size.normalize().as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_decimals(self) -> int:
        return max(0, -self.qty_step.normalize().as_tuple().exponent)  # type: ignore[operator]

    def floor_tick(self, p: float | str | Decimal) -> Decimal:
        return _grid(p, self.tick_size, ROUND_FLOOR)

    def ceil_tick(self, p: float | str | Decimal) -> Decimal:
        return _grid(p, self.tick_size, ROUND_CEILING)

    def round_tick(self, p: float | str | Decimal) -> Decimal:
        return _grid(p, self.tick_size, ROUND_HALF_UP)

    def floor_step(self, q: float | str | Decimal) -> Decimal:
        return _grid(q, self.qty_step, ROUND_FLOOR)

    def ceil_step(self, q: float | str | Decimal) -> Decimal:
        return _grid(q, self.qty_step, ROUND_CEILING)

    def on_tick(self, p: Decimal) -> bool:
        return p > 0 and (p / self.tick_size) == (p / self.tick_size).to_integral_value()

    def on_step(self, q: Decimal) -> bool:
        return q > 0 and (q / self.qty_step) == (q / self.qty_step).to_integral_value()

    def fmt_price(self, p: float | Decimal) -> str:
        return f"{float(p):.{self.price_decimals}f}"

    def fmt_qty(self, q: float | Decimal) -> str:
        return f"{float(q):.{self.qty_decimals}f}"

    @classmethod
    def from_bybit(cls, row: Mapping[str, Any]) -> Instrument:
        """Build from one ``result.list`` row of ``GET /v5/market/instruments-info``."""
        lot, price, lev = row["lotSizeFilter"], row["priceFilter"], row["leverageFilter"]
        return cls(
            symbol=row["symbol"],
            tick_size=Decimal(price["tickSize"]),
            qty_step=Decimal(lot["qtyStep"]),
            min_order_qty=Decimal(lot["minOrderQty"]),
            max_order_qty=Decimal(lot["maxOrderQty"]),
            max_mkt_order_qty=Decimal(lot.get("maxMktOrderQty") or lot["maxOrderQty"]),
            min_notional=Decimal(lot.get("minNotionalValue") or "0"),
            max_leverage=Decimal(lev["maxLeverage"]),
            funding_interval_min=int(row.get("fundingInterval") or 480),
            status=row.get("status", "Trading"),
        )


class InstrumentRegistry(Mapping[str, Instrument]):
    """Symbol → :class:`Instrument`; unknown symbols raise a ``KeyError`` that says what is known."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_symbol = {i.symbol: i for i in instruments}

    def __getitem__(self, symbol: str) -> Instrument:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}: not in the instrument registry "
                           f"({len(self._by_symbol)} linear instruments known)") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_symbol)

    def __len__(self) -> int:
        return len(self._by_symbol)

    @classmethod
    def from_bybit_response(cls, response: Mapping[str, Any]) -> InstrumentRegistry:
        if response.get("retCode", 0) != 0:
            raise ValueError(f"instruments-info failed: retCode={response.get('retCode')} {response.get('retMsg')}")
        rows = response["result"]["list"]
        perps = (r for r in rows if r.get("contractType", "LinearPerpetual") == "LinearPerpetual")
        return cls(Instrument.from_bybit(r) for r in perps)

    @classmethod
    def bundled(cls, path: Path = BUNDLED_INSTRUMENTS) -> InstrumentRegistry:
        """The real instruments-info response shipped with the project (2026-08-09, 800 linear symbols)."""
        with gzip.open(path, "rt") as f:
            return cls.from_bybit_response(json.load(f))
