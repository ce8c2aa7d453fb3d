"""Queue-position models for resting limit orders (STYLE.md §1: hftbacktest's ``QueueModel``, reduced to what the
tape lets us know).

The exchange only sees the displayed size per price level and the public trades, never individual orders, so a
resting order's queue position is an estimate: ``ahead`` = base-coin quantity in front of it. Sizes are exact
``Decimal`` (from the feed's float repr) so that 0.5 − 0.3 − 0.2 is exactly zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

_ZERO = Decimal(0)


@runtime_checkable
class QueueModel(Protocol):
    def on_new(self, displayed_ahead: Decimal) -> Decimal:
        """Initial ``ahead`` for an order arriving behind ``displayed_ahead`` (displayed size + our own orders)."""
        ...

    def on_trade_at_price(self, ahead: Decimal, size: Decimal) -> tuple[Decimal, Decimal]:
        """A trade of ``size`` hit our price level: returns (new ``ahead``, size left over that reaches us)."""
        ...


class RiskAverseQueue:
    """Only trades at our price move us forward; cancels in front of us never do.

    We cannot tell a cancel ahead of us from one behind us, so we assume the worst (all behind). This fills later
    than reality, never earlier: a strategy that looks good here is not flattered by its queue assumption.
    """

    def on_new(self, displayed_ahead: Decimal) -> Decimal:
        return max(_ZERO, displayed_ahead)

    def on_trade_at_price(self, ahead: Decimal, size: Decimal) -> tuple[Decimal, Decimal]:
        left = ahead - size
        if left >= 0:
            return left, _ZERO
        return _ZERO, -left
