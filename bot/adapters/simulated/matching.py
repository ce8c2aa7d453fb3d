"""Matching: resting orders filled from the tape, takers walking the book, position TP/SL triggers.

Each fill goes through :meth:`MatchingMixin._fill`, the one place that moves a position, the ledger and an order
together and queues the private events it caused. Rules in :mod:`bot.adapters.simulated.sim`.
"""

from __future__ import annotations

from decimal import Decimal

from bot.adapters.simulated.ledger import ZERO, net_fill
from bot.adapters.simulated.orders import FINAL, SimOrder, SimPosition, tick_price
from bot.adapters.simulated.state import SimState
from bot.events import Trade
from bot.instruments import to_decimal
from bot.ports import (
    Execution,
)


class MatchingMixin(SimState):
    """Fills, cancels and TP/SL triggers of the simulated engine."""

    def _match_trade(self, sym: str, tr: Trade, orders: list[SimOrder]) -> None:
        book = self._books.get(sym)
        inst = self._instruments[sym]
        t_ticks = book.ticks(tr.price) if book is not None else round(tr.price / inst.tick)
        budget = to_decimal(tr.size)
        # price priority (best first), then time
        buys = sorted((o for o in orders if o.sign > 0 and o.ticks >= t_ticks), key=lambda o: (-o.ticks, o.seq))
        sells = sorted((o for o in orders if o.sign < 0 and o.ticks <= t_ticks), key=lambda o: (o.ticks, o.seq))
        for o in buys + sells:
            if o.status in FINAL:
                continue
            if o.ticks != t_ticks:  # traded through our price
                avail = budget
                o.ahead = ZERO
            elif (tr.side == "Sell") == (o.sign > 0):  # aggressor hit our side at our price
                o.ahead, excess = self._queue.on_trade_at_price(o.ahead, to_decimal(tr.size))
                avail = min(excess, budget)
            else:
                continue
            if avail < inst.qty_step:
                continue
            qty = min(o.leaves, inst.floor_step(avail))
            if o.reduce_only:
                qty = self._clamp_reduce(sym, o, qty)
                if o.status in FINAL:
                    continue
            if qty <= 0:
                continue
            budget -= qty
            self._fill(o, o.price, qty, True, tr.ts)
        if any(o.status in FINAL for o in orders):
            self._resting[sym] = [o for o in orders if o.status not in FINAL]
            self._refresh_active(sym)

    def _check_tpsl(self, sym: str, pos: SimPosition, tr: Trade) -> None:
        p = to_decimal(tr.price)
        long = pos.size > 0
        if pos.tp and (p >= pos.tp if long else p <= pos.tp):
            kind = "TakeProfit"
        elif pos.sl and (p <= pos.sl if long else p >= pos.sl):
            kind = "StopLoss"
        else:
            return
        tp, sl = pos.tp, pos.sl
        pos.tp = pos.sl = ZERO
        self._epoch += 1
        o = self._new_order(
            sym,
            "Sell" if long else "Buy",
            "Market",
            abs(pos.size),
            "",
            None,
            "IOC",
            True,
            tr.ts,
            create_type=f"CreateBy{kind}",
            stop_order_type=kind,
        )
        self._take(o, tr.ts)
        self._finish_taker(o, tr.ts)
        if pos.size and (pos.size > 0) == long:  # book ran out: protection stays armed
            pos.tp, pos.sl = tp, sl
            self._epoch += 1
        self._touched.add(sym)

    def _execute_new(self, o: SimOrder, now: float) -> None:
        """Match an order that just arrived (or was re-priced): take what crosses, then rest / cancel the rest."""
        book = self._books.get(o.symbol)
        best = None if book is None else (book.best_ask() if o.sign > 0 else book.best_bid())
        crosses = best is not None and (
            o.order_type == "Market" or (best <= o.ticks if o.sign > 0 else best >= o.ticks)
        )
        if o.tif == "PostOnly" and crosses:
            self._cancel_now(o, now, "EC_PostOnlyWillTakeLiquidity")
            return
        if o.tif == "FOK" and not self._can_fill_all(o):
            self._cancel_now(o, now, "EC_NoImmediateQtyToFill")
            return
        if crosses:
            self._take(o, now)
        if o.status in FINAL:
            return
        if o.order_type == "Market" or o.tif in ("IOC", "FOK"):
            self._finish_taker(o, now)
            return
        self._rest(o)

    def _rest(self, o: SimOrder) -> None:
        book = self._books.get(o.symbol)
        displayed = to_decimal(book.size_at(o.sign > 0, o.ticks)) if book is not None else ZERO
        own = sum(
            (
                x.leaves
                for x in self._resting.get(o.symbol, ())
                if x is not o and x.sign == o.sign and x.ticks == o.ticks
            ),
            ZERO,
        )
        o.ahead = self._queue.on_new(displayed + own)
        lst = self._resting.setdefault(o.symbol, [])
        if o not in lst:
            lst.append(o)
        self._epoch += 1
        self._active.add(o.symbol)

    def _can_fill_all(self, o: SimOrder) -> bool:
        book = self._books.get(o.symbol)
        if book is None:
            return False
        limit = None if o.order_type == "Market" else o.ticks
        inst = self._instruments[o.symbol]
        total = sum(inst.floor_step(s) for _, s in book.levels_to_take(o.sign > 0, limit))
        return total >= o.leaves

    def _take(self, o: SimOrder, ts: float) -> None:
        """Walk the opposite levels of the exchange's book (taker fills at each level's price)."""
        book = self._books.get(o.symbol)
        if book is None:
            return
        inst = self._instruments[o.symbol]
        limit = None if o.order_type == "Market" else o.ticks
        for ticks, size in book.levels_to_take(o.sign > 0, limit):
            want = o.leaves
            if o.reduce_only:
                want = self._clamp_reduce(o.symbol, o, want)
                if o.status in FINAL or want <= 0:
                    return
            qty = min(want, inst.floor_step(size))
            if qty <= 0:
                continue
            book.consume(o.sign > 0, ticks, float(qty))
            self._fill(o, tick_price(inst, ticks), qty, False, ts)
            if o.leaves <= 0:
                return

    def _finish_taker(self, o: SimOrder, ts: float) -> None:
        if o.status not in FINAL and o.leaves > 0:
            self._cancel_now(o, ts, "EC_NoImmediateQtyToFill")

    def _clamp_reduce(self, sym: str, o: SimOrder, qty: Decimal) -> Decimal:
        pos = self._positions.get(sym)
        if pos is None or not pos.size or (pos.size > 0) == (o.sign > 0):
            self._cancel_now(o, self._clock.now(), "EC_ReduceOnlySetButNotReducing")
            return ZERO
        return min(qty, abs(pos.size))

    def _fill(
        self, o: SimOrder, price: Decimal, qty: Decimal, is_maker: bool, ts: float, exec_type: str = "Trade"
    ) -> None:
        sym = o.symbol
        pos = self._pos(sym)
        was_long = pos.size > 0
        size, cost, realised, closed = net_fill(pos.size, pos.cost, o.sign, qty, price)
        if size == 0 or (pos.size != 0 and (size > 0) != was_long):
            pos.tp = pos.sl = ZERO  # flat or flipped: the old protection no longer applies
        pos.size, pos.cost = size, cost
        pos.cum_realised += realised
        self._update_liq(pos)
        self._epoch += 1
        o.cum += qty
        o.cum_value += qty * price
        o.status = "Filled" if o.cum >= o.qty else "PartiallyFilled"
        o.ts = ts
        fee = self._fees.amount(price, qty, is_maker)
        ex = Execution(
            symbol=sym,
            exec_id=self._next_exec_id(),
            order_id=o.order_id,
            order_link_id=o.link_id,
            side=o.side,
            exec_price=price,
            exec_qty=qty,
            exec_fee=fee,  # type: ignore[arg-type]
            fee_rate=self._fees.rate(is_maker),
            is_maker=is_maker,
            ts=ts,
            exec_type=exec_type,
            create_type=o.create_type,
            stop_order_type=o.stop_order_type,
            order_type=o.order_type,
            leaves_qty=o.leaves,
            closed_size=closed,
        )  # type: ignore[arg-type]
        self.ledger.record_fill(ex, realised)
        self.fills.append(ex)
        self._pending.append(ex)
        self._pending.append(self._order_event(o))
        self._touched.add(sym)
        self._wallet_dirty = True
        if o.status in FINAL:
            self._remove_resting(o)
        if not size:
            for r in list(self._resting.get(sym, ())):
                if r.reduce_only and r is not o:
                    self._cancel_now(r, ts, "EC_ReduceOnlySetButNotReducing")
        self._refresh_active(sym)

    def _cancel_now(self, o: SimOrder, ts: float, reason: str) -> None:
        self._epoch += 1
        o.status = "Cancelled"
        o.reject_reason = reason
        o.ts = ts
        self._remove_resting(o)
        self._pending.append(self._order_event(o))

    def _remove_resting(self, o: SimOrder) -> None:
        self._epoch += 1  # also after an amend re-priced ``o`` (its ticks changed before this call)
        lst = self._resting.get(o.symbol)
        if lst and o in lst:
            lst.remove(o)
            self._refresh_active(o.symbol)
