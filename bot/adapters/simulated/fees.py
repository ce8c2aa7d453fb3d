"""Fee model: what one fill costs (STYLE.md §1; STRATEGY.md §2.12 maker 0.02% / taker 0.055%)."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable


@runtime_checkable
class FeeModel(Protocol):
    def rate(self, is_maker: bool) -> Decimal: ...
    def amount(self, price: Decimal, qty: Decimal, is_maker: bool) -> Decimal: ...


class TradingValueFees:
    """fee = qty·price·rate, exact in Decimal (no rounding: the ledger must reconcile to the fills exactly)."""

    def __init__(self, maker: Decimal, taker: Decimal) -> None:
        self.maker = maker
        self.taker = taker

    def rate(self, is_maker: bool) -> Decimal:
        return self.maker if is_maker else self.taker

    def amount(self, price: Decimal, qty: Decimal, is_maker: bool) -> Decimal:
        return qty * price * (self.maker if is_maker else self.taker)
