"""One-way position netting and the account ledger, both in exact ``Decimal``.

``net_fill`` is the single netting rule; the exchange applies it fill by fill and :meth:`Ledger.reconcile` re-applies
it to the recorded executions, so the balance can be re-derived from the fill list alone.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from bot.ports import Execution

ZERO = Decimal(0)


def net_fill(size: Decimal, cost: Decimal, sign: int, qty: Decimal, price: Decimal
             ) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Apply a fill of ``sign``·``qty`` at ``price`` to a one-way position.

    ``size`` is signed, ``cost`` = Σ qty·price of the open position (unsigned, average-cost basis). Returns
    (new size, new cost, realised PnL, closed qty). A fill larger than the position flips it: the excess opens the
    other side at ``price``.
    """
    if size == 0 or (size > 0) == (sign > 0):
        return size + sign * qty, cost + qty * price, ZERO, ZERO
    held = abs(size)
    closed = min(qty, held)
    d = 1 if size > 0 else -1
    if closed == held:
        realised = d * (closed * price - cost)
        rest = qty - closed
        return Decimal(sign) * rest, rest * price, realised, closed
    removed = cost * closed / held
    realised = d * (closed * price - removed)
    return size + sign * closed, cost - removed, realised, closed


class Ledger:
    """USDT wallet of the simulated account: balance = start + realised PnL − fees − funding paid."""

    def __init__(self, start: Decimal) -> None:
        self.start = start
        self.balance = start
        self.realised_pnl = ZERO
        self.fees = ZERO
        self.funding = ZERO          # net funding paid (negative = received)
        self.entries: list[Execution] = []
        self._ts_max: list[float] = []  # running max of entries[:i + 1].ts (nondecreasing: bisectable)

    def since(self, ts: float) -> list[Execution]:
        """``[e for e in entries if e.ts >= ts]``, in order, without visiting the old prefix: fills are stamped with
        their trade or request time, so ``entries`` is only nearly sorted, but no entry before the first whose
        running max reaches ``ts`` can qualify. The bot asks every minute for the last few."""
        entries, ts_max = self.entries, self._ts_max
        if len(ts_max) != len(entries):  # appended to directly (tests): rebuild
            ts_max.clear()
            for e in entries:
                ts_max.append(e.ts if not ts_max or e.ts > ts_max[-1] else ts_max[-1])
        return [e for e in entries[bisect_left(ts_max, ts):] if e.ts >= ts]

    def _append(self, ex: Execution) -> None:
        self.entries.append(ex)
        if len(self._ts_max) == len(self.entries) - 1:
            m = self._ts_max
            m.append(ex.ts if not m or ex.ts > m[-1] else m[-1])

    def record_fill(self, ex: Execution, realised: Decimal) -> None:
        self.realised_pnl += realised
        self.fees += ex.exec_fee
        self.balance += realised - ex.exec_fee
        self._append(ex)

    def record_funding(self, ex: Execution) -> None:
        self.funding += ex.exec_fee
        self.balance -= ex.exec_fee
        self._append(ex)

    def rederive(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(balance, realised, fees, funding) recomputed from ``entries`` alone."""
        pos: dict[str, tuple[Decimal, Decimal]] = {}
        realised = fees = funding = ZERO
        balance = self.start
        for ex in self.entries:       # same operations in the same order as the live updates: exact equality
            if ex.exec_type == "Funding":
                funding += ex.exec_fee
                balance -= ex.exec_fee
                continue
            size, cost = pos.get(ex.symbol, (ZERO, ZERO))
            size, cost, r, _ = net_fill(size, cost, 1 if ex.side == "Buy" else -1, ex.exec_qty, ex.exec_price)
            pos[ex.symbol] = (size, cost)
            realised += r
            fees += ex.exec_fee
            balance += r - ex.exec_fee
        return balance, realised, fees, funding

    def reconcile(self) -> bool:
        """True when the running balance and totals equal the ones re-derived from the executions, and the
        balance equals start + realised − fees − funding to the cent (Decimal rounds at 28 digits per step)."""
        derived = self.rederive()
        identity = self.start + self.realised_pnl - self.fees - self.funding
        return derived == (self.balance, self.realised_pnl, self.fees, self.funding) and \
            abs(self.balance - identity) < Decimal("0.01")
