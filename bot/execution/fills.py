"""One fill of one of our positions, with its origin fields (STRATEGY.md §8.1) and the fee our model charges (§8.6).

The fee is computed from settings' maker/taker rates, never taken from the exchange: the exchange-reported
``exec_fee`` is kept beside it for reconciliation only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from bot.ports import Execution


@dataclass(frozen=True, slots=True)
class Fill:
    exec_id: str
    qty: Decimal
    price: Decimal
    is_maker: bool
    fee: Decimal
    ts: float
    order_link_id: str = ""
    create_type: str = ""
    stop_order_type: str = ""
    exec_type: str = "Trade"
    order_id: str = ""
    exchange_fee: Decimal = Decimal(0)
    origin_known: bool = True

    @property
    def notional(self) -> Decimal:
        return self.qty * self.price

    @classmethod
    def from_execution(cls, ex: Execution, maker_fee_rate: Decimal, taker_fee_rate: Decimal) -> Fill:
        rate = maker_fee_rate if ex.is_maker else taker_fee_rate
        return cls(exec_id=ex.exec_id, qty=ex.exec_qty, price=ex.exec_price, is_maker=ex.is_maker,
                   fee=ex.exec_qty * ex.exec_price * rate, ts=ex.ts, order_link_id=ex.order_link_id,
                   create_type=ex.create_type, stop_order_type=ex.stop_order_type, exec_type=ex.exec_type,
                   order_id=ex.order_id, exchange_fee=ex.exec_fee)


def total_qty(fills: Iterable[Fill]) -> Decimal:
    return sum((f.qty for f in fills), Decimal(0))


def vwap(fills: Iterable[Fill]) -> Decimal | None:
    """Quantity-weighted average price, or None without fills."""
    q = n = Decimal(0)
    for f in fills:
        q += f.qty
        n += f.qty * f.price
    return n / q if q > 0 else None
