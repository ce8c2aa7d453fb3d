"""Margin and liquidation of the simulated account (simple unified USDT account, isolated-like liquidation).

Equity = balance + unrealised PnL at last price; available = equity − position margin − opening orders' margin.
Liquidation at e·(1 ∓ 1/L ± m), closed at the bankruptcy price. Rules in :mod:`bot.adapters.simulated.sim`.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from bot.adapters.simulated.ledger import ZERO
from bot.adapters.simulated.orders import SimPosition, grid
from bot.adapters.simulated.state import SimState
from bot.instruments import Instrument, to_decimal
from bot.ports import (
    PositionUpdate,
    WalletUpdate,
)

MAINTENANCE_MARGIN_RATE = Decimal("0.005")  # Bybit tier-1 MMR of BTC/ETH linear perps


class MarginMixin(SimState):
    """Account figures, liquidation and the position/wallet events built from them."""

    def _liquidate(self, sym: str, pos: SimPosition, ts: float) -> None:
        for o in list(self._resting.get(sym, ())):
            self._cancel_now(o, ts, "EC_CancelForLiq")
        self._resting[sym] = []
        inst = self._instruments[sym]
        long = pos.size > 0
        price = self._bankruptcy(inst, pos)
        o = self._new_order(
            sym,
            "Sell" if long else "Buy",
            "Market",
            abs(pos.size),
            "",
            price,
            "IOC",
            True,
            ts,
            create_type="CreateByLiq",
        )
        self._fill(o, price, o.qty, False, ts, exec_type="BustTrade")
        self._refresh_active(sym)

    def _bankruptcy(self, inst: Instrument, pos: SimPosition) -> Decimal:
        e = pos.cost / abs(pos.size)
        if pos.size > 0:
            return max(inst.tick_size, grid(e * (1 - 1 / pos.leverage), inst.tick_size, ROUND_FLOOR))
        return grid(e * (1 + 1 / pos.leverage), inst.tick_size, ROUND_CEILING)

    def _update_liq(self, pos: SimPosition) -> None:
        self._epoch += 1
        if not pos.size:
            pos.liq_f = 0.0
            return
        e = pos.cost / abs(pos.size)
        inv = 1 / pos.leverage
        pos.liq_f = float(
            e * (1 - inv + MAINTENANCE_MARGIN_RATE) if pos.size > 0 else e * (1 + inv - MAINTENANCE_MARGIN_RATE)
        )

    def liq_price(self, symbol: str) -> Decimal:
        """Liquidation price of the open position (0 when flat)."""
        pos = self._positions.get(symbol)
        if pos is None or not pos.size:
            return ZERO
        inst = self._instruments[symbol]
        return inst.round_tick(to_decimal(pos.liq_f))

    def _position_event(self, sym: str) -> PositionUpdate:
        pos = self._pos(sym)
        last = self._last.get(sym)
        upnl = ZERO
        if pos.size and last is not None:
            upnl = pos.size * to_decimal(last) - (pos.cost if pos.size > 0 else -pos.cost)
        return PositionUpdate(
            symbol=sym,
            side="" if not pos.size else ("Buy" if pos.size > 0 else "Sell"),
            size=abs(pos.size),
            avg_price=pos.avg,
            ts=self._clock.now(),
            take_profit=pos.tp,
            stop_loss=pos.sl,
            liq_price=self.liq_price(sym),
            leverage=pos.leverage,
            unrealised_pnl=upnl,
            cum_realised_pnl=pos.cum_realised,
        )

    def _wallet_event(self) -> WalletUpdate:
        equity = self.ledger.balance + self._unrealised()
        return WalletUpdate(
            total_equity=equity,
            total_margin_balance=equity,
            available_balance=self._available(),
            wallet_balance=self.ledger.balance,
            ts=self._clock.now(),
        )

    def equity(self) -> Decimal:
        """Mark-to-market equity at the last trade price (for equity curves; not part of the Exchange port)."""
        return self.ledger.balance + self._unrealised()

    def _unrealised(self) -> Decimal:
        total = ZERO
        for sym, pos in self._positions.items():
            last = self._last.get(sym)
            if pos.size and last is not None:
                total += pos.size * to_decimal(last) - (pos.cost if pos.size > 0 else -pos.cost)
        return total

    def _available(self) -> Decimal:
        used = ZERO
        for pos in self._positions.values():
            if pos.size:
                used += pos.cost / pos.leverage
        for sym, orders in self._resting.items():
            pos = self._pos(sym)
            for o in orders:
                if not o.reduce_only:
                    used += self._opening_qty(sym, o.sign, o.leaves) * o.price / pos.leverage
        return max(ZERO, self.ledger.balance + self._unrealised() - used)

    def _opening_qty(self, sym: str, sign: int, qty: Decimal) -> Decimal:
        pos = self._positions.get(sym)
        if pos is None or not pos.size or (pos.size > 0) == (sign > 0):
            return qty
        return max(ZERO, qty - abs(pos.size))
