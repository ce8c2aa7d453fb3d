"""Request handlers of the simulated engine: place, amend, cancel, trading-stop, leverage.

They run synchronously at the request's arrival time (after its entry latency) and raise ``ExchangeError`` with
Bybit's retCodes, as the live API answers. Rules in :mod:`bot.adapters.simulated.sim`.
"""

from __future__ import annotations

from decimal import Decimal

from bot.adapters.simulated.state import SimState
from bot.ports import (
    ERR_DUPLICATE_LINK_ID,
    ERR_INSUFFICIENT_BALANCE,
    ERR_LEVERAGE_NOT_MODIFIED,
    ERR_NOT_MODIFIED,
    ERR_PARAMS,
    ERR_QTY_TOO_SMALL,
    ERR_REDUCE_ONLY,
    ExchangeError,
    OrderAck,
    OrderRequest,
)


class EngineMixin(SimState):
    """Validates a request like Bybit and applies it to the engine state."""

    def _engine_place(self, req: OrderRequest) -> OrderAck:
        now = self._clock.now()
        inst = self._instrument(req.symbol)
        if req.order_link_id and req.order_link_id in self._orders:
            raise ExchangeError(ERR_DUPLICATE_LINK_ID, "OrderLinkedID is duplicate")
        is_mkt = req.order_type == "Market"
        if not inst.on_step(req.qty):
            raise ExchangeError(ERR_PARAMS, f"Qty invalid: {req.qty} is not a multiple of qtyStep {inst.qty_step}")
        if req.qty < inst.min_order_qty:
            raise ExchangeError(ERR_PARAMS, f"The number of contracts below min limit allowed ({inst.min_order_qty})")
        max_qty = inst.max_mkt_order_qty if is_mkt else inst.max_order_qty
        if req.qty > max_qty:
            raise ExchangeError(ERR_PARAMS, f"The number of contracts exceeds maximum limit allowed ({max_qty})")
        if not is_mkt:
            if req.price is None or req.price <= 0:
                raise ExchangeError(ERR_PARAMS, "price is required for a Limit order")
            if not inst.on_tick(req.price):
                raise ExchangeError(
                    ERR_PARAMS, f"Price invalid: {req.price} is not a multiple of tickSize {inst.tick_size}"
                )
        sign = 1 if req.side == "Buy" else -1
        pos = self._pos(req.symbol)
        if req.reduce_only and (not pos.size or (pos.size > 0) == (sign > 0)):
            raise ExchangeError(
                ERR_REDUCE_ONLY,
                "current position is zero, cannot fix reduce-only order qty"
                if not pos.size
                else "Reduce-only rule not satisfied",
            )
        ref = req.price if not is_mkt else self._ref_price(req.symbol, sign)
        if ref is not None and not req.reduce_only and req.qty * ref < inst.min_notional:
            raise ExchangeError(ERR_QTY_TOO_SMALL, f"Order does not meet minimum order value {inst.min_notional}USDT")
        if ref is not None and not req.reduce_only:
            opening = self._opening_qty(req.symbol, sign, req.qty)
            need = opening * ref / pos.leverage + self._fees.amount(ref, opening, False)
            if need > 0 and need > self._available():
                raise ExchangeError(ERR_INSUFFICIENT_BALANCE, "ab not enough for new order")
        o = self._new_order(
            req.symbol,
            req.side,
            req.order_type,
            req.qty,
            req.order_link_id,
            req.price,
            "IOC" if is_mkt else req.time_in_force,
            req.reduce_only,
            now,
        )
        self._pending.append(self._order_event(o))
        self._execute_new(o, now)
        return OrderAck(order_id=o.order_id, order_link_id=o.link_id)

    def _engine_amend(self, symbol: str, link_id: str, price: Decimal | None, qty: Decimal | None) -> OrderAck:
        now = self._clock.now()
        o = self._working(symbol, link_id)
        inst = self._instruments[symbol]
        if price is not None and not inst.on_tick(price):
            raise ExchangeError(ERR_PARAMS, f"Price invalid: {price} is not a multiple of tickSize {inst.tick_size}")
        if qty is not None:
            if not inst.on_step(qty):
                raise ExchangeError(ERR_PARAMS, f"Qty invalid: {qty} is not a multiple of qtyStep {inst.qty_step}")
            if qty < inst.min_order_qty or qty > inst.max_order_qty:
                raise ExchangeError(ERR_PARAMS, "Qty invalid: outside [minOrderQty, maxOrderQty]")
            if qty <= o.cum:
                raise ExchangeError(ERR_PARAMS, "Qty invalid: new qty must exceed the filled qty")
        new_price = o.price if price is None else price
        new_qty = o.qty if qty is None else qty
        if new_price == o.price and new_qty == o.qty:
            raise ExchangeError(
                ERR_PARAMS, "The order remains unchanged as the parameters entered match the existing ones"
            )
        if not o.reduce_only and new_qty * new_price < inst.min_notional:
            raise ExchangeError(ERR_QTY_TOO_SMALL, f"Order does not meet minimum order value {inst.min_notional}USDT")
        requeue = new_price != o.price or new_qty > o.qty
        o.qty = new_qty
        o.ts = now
        if requeue:  # a price change or a size increase loses queue priority
            o.price, o.ticks = new_price, int(new_price / inst.tick_size)
            self._seq += 1
            o.seq = self._seq
            self._remove_resting(o)
            self._pending.append(self._order_event(o))
            self._execute_new(o, now)
        else:  # a size decrease keeps it
            self._pending.append(self._order_event(o))
        return OrderAck(order_id=o.order_id, order_link_id=o.link_id)

    def _engine_cancel(self, symbol: str, link_id: str) -> OrderAck:
        o = self._working(symbol, link_id)
        self._cancel_now(o, self._clock.now(), "EC_PerCancelRequest")
        return OrderAck(order_id=o.order_id, order_link_id=o.link_id)

    def _engine_trading_stop(self, symbol: str, tp: Decimal | None, sl: Decimal | None, trigger_by: str) -> None:
        inst = self._instrument(symbol)
        if trigger_by not in ("LastPrice", "MarkPrice", "IndexPrice"):
            raise ExchangeError(ERR_PARAMS, f"tpTriggerBy invalid: {trigger_by}")
        pos = self._positions.get(symbol)
        if pos is None or not pos.size:
            raise ExchangeError(ERR_PARAMS, "can not set tp/sl/ts for zero position")
        for name, v in (("takeProfit", tp), ("stopLoss", sl)):
            if v is not None and (v < 0 or (v > 0 and not inst.on_tick(v))):
                raise ExchangeError(ERR_PARAMS, f"{name} invalid: {v} is not a multiple of tickSize {inst.tick_size}")
        base = self._ref_price(symbol, 0)
        long = pos.size > 0
        side = "Buy" if long else "Sell"
        if base is not None:
            if tp and (tp <= base if long else tp >= base):
                raise ExchangeError(
                    ERR_PARAMS,
                    f"TakeProfit:{tp} set for {side} position should be "
                    f"{'higher' if long else 'lower'} than base_price:{base}??LastPrice",
                )
            if sl and (sl >= base if long else sl <= base):
                raise ExchangeError(
                    ERR_PARAMS,
                    f"StopLoss:{sl} set for {side} position should be "
                    f"{'lower' if long else 'higher'} than base_price:{base}??LastPrice",
                )
        new_tp = pos.tp if tp is None else tp
        new_sl = pos.sl if sl is None else sl
        if new_tp == pos.tp and new_sl == pos.sl:
            raise ExchangeError(ERR_NOT_MODIFIED, "not modified")
        pos.tp, pos.sl = new_tp, new_sl
        self._epoch += 1
        self._touched.add(symbol)

    def _engine_leverage(self, symbol: str, leverage: int) -> None:
        inst = self._instrument(symbol)
        lev = Decimal(leverage)
        if lev < 1 or lev > inst.max_leverage:
            raise ExchangeError(ERR_PARAMS, f"leverage invalid: must be in [1, {inst.max_leverage}]")
        pos = self._pos(symbol)
        if pos.leverage == lev:
            raise ExchangeError(ERR_LEVERAGE_NOT_MODIFIED, "leverage not modified")
        pos.leverage = lev
        self._update_liq(pos)
        self._touched.add(symbol)
        self._wallet_dirty = True
