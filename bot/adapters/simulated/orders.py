"""What the simulated exchange keeps per order and per position, and its price-grid helpers.

Plain records: every rule that changes them lives in the engine modules (:mod:`.matching`, :mod:`.margin`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.adapters.simulated.ledger import ZERO
from bot.instruments import Instrument

DEFAULT_LEVERAGE = 10
AVG_Q = Decimal("0.00000001")
FINAL = frozenset(("Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected", "Deactivated"))


@dataclass(slots=True)
class SimOrder:
    """One order on the simulated exchange (bot orders by orderLinkId, TP/SL/liquidation ones by orderId)."""

    order_id: str
    link_id: str
    symbol: str
    side: str
    sign: int
    order_type: str
    price: Decimal
    ticks: int
    qty: Decimal
    tif: str
    reduce_only: bool
    seq: int
    cum: Decimal = ZERO
    cum_value: Decimal = ZERO
    status: str = "New"
    ahead: Decimal = ZERO
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    reject_reason: str = "EC_NoError"
    ts: float = 0.0

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum


@dataclass(slots=True)
class SimPosition:
    """The one-way position of a symbol, with its exchange-side TP/SL and liquidation price."""

    leverage: Decimal
    size: Decimal = ZERO  # signed
    cost: Decimal = ZERO  # Σ qty·price of the open position
    tp: Decimal = ZERO
    sl: Decimal = ZERO
    cum_realised: Decimal = ZERO
    liq_f: float = 0.0  # liquidation price as float, for the per-trade check

    @property
    def avg(self) -> Decimal:
        return (self.cost / abs(self.size)).quantize(AVG_Q) if self.size else ZERO


def grid(x: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round to the tick, written with the instrument's price decimals (tick "0.10" → "58800.0", as Bybit prints)."""
    units = (x / step).to_integral_value(rounding=rounding)
    return (units * step).quantize(price_quantum(step))


def price_quantum(step: Decimal) -> Decimal:
    exp = step.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(0, exp))  # type: ignore[arg-type]


def tick_price(inst: Instrument, ticks: int) -> Decimal:
    return (Decimal(ticks) * inst.tick_size).quantize(price_quantum(inst.tick_size))
