"""Funding of the simulated account: epoch-aligned charges at every ``funding_interval_hours``.

The first market batch at or after a funding time charges |size|·last price·rate (longs pay a positive rate) as an
Execution with execType Funding (execFee > 0 = paid).
"""

from __future__ import annotations

import math

from bot.adapters.simulated.state import SimState
from bot.instruments import to_decimal
from bot.ports import (
    Execution,
)


class FundingMixin(SimState):
    """Charges funding on the open positions when a funding time has passed."""

    def _funding_after(self, now: float) -> float:
        """The first epoch-aligned funding time strictly after ``now``."""
        return (math.floor(now / self._funding_period) + 1) * self._funding_period

    def _apply_funding(self) -> None:
        assert self._next_funding is not None
        ts = self._next_funding
        self._next_funding = self._funding_after(self._clock.now())
        for sym, pos in self._positions.items():
            last = self._last.get(sym)
            if not pos.size or last is None:
                continue
            mark = to_decimal(last)
            value = abs(pos.size) * mark
            fee = value * self._funding_rate * (1 if pos.size > 0 else -1)
            ex = Execution(
                symbol=sym,
                exec_id=self._next_exec_id(),
                order_id="",
                order_link_id="",
                side="Buy" if pos.size > 0 else "Sell",
                exec_price=mark,
                exec_qty=abs(pos.size),
                exec_fee=fee,
                fee_rate=self._funding_rate,
                is_maker=False,
                ts=ts,
                exec_type="Funding",
                create_type="",
                order_type="Market",
            )
            self.ledger.record_funding(ex)
            self.funding.append(ex)
            self._pending.append(ex)
            self._wallet_dirty = True
