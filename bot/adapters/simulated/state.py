"""The simulated exchange's state, shared by its engine modules, and the small lookups they all use.

:class:`SimState` is the base of :class:`bot.adapters.simulated.sim.SimExchange`; the engine seams are mixins over it
(:mod:`.tape` market input, :mod:`.matching` fills, :mod:`.margin` account and liquidation, :mod:`.funding`,
:mod:`.engine` request handlers). They share this one state on purpose: one engine step changes orders, positions
and the wallet together, and the hot tape path must not pay an indirection per access. Private event delivery is
its own object (:class:`.delivery.Delivery`).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from bot.adapters.simulated.book import SimBook
from bot.adapters.simulated.delivery import Delivery
from bot.adapters.simulated.fees import FeeModel, TradingValueFees
from bot.adapters.simulated.latency import LatencyModel, latency_from_settings
from bot.adapters.simulated.ledger import ZERO, Ledger
from bot.adapters.simulated.orders import AVG_Q, DEFAULT_LEVERAGE, FINAL, SimOrder, SimPosition, tick_price
from bot.adapters.simulated.queue import QueueModel, RiskAverseQueue
from bot.adapters.simulated.tape_scan import Bounds, Watch
from bot.clock import Clock
from bot.instruments import Instrument, InstrumentRegistry, to_decimal
from bot.ports import ERR_ORDER_NOT_EXISTS, ERR_PARAMS, ExchangeError, Execution, OrderUpdate, PrivateEvent


class SimState:
    """Books, tape, orders, positions, wallet and the pending private events of one simulated account."""

    def __init__(
        self,
        settings: Any,
        clock: Clock,
        instruments: InstrumentRegistry,
        *,
        seed: int,
        latency: LatencyModel | None = None,
        initial_balance: Decimal | None = None,
        queue_model: QueueModel | None = None,
        fee_model: FeeModel | None = None,
    ) -> None:
        bt = settings.backtest
        self._clock = clock
        self._instruments = instruments
        self._lat = latency if latency is not None else latency_from_settings(bt, seed)
        self._queue = queue_model or RiskAverseQueue()
        self._fees = fee_model or TradingValueFees(to_decimal(bt.maker_fee), to_decimal(bt.taker_fee))
        self._funding_rate = to_decimal(bt.funding_rate)
        self._funding_period = float(bt.funding_interval_hours) * 3600.0
        start = initial_balance if initial_balance is not None else to_decimal(bt.initial_balance_usdt)
        trading = getattr(settings, "trading", None)
        self._default_leverage = Decimal(int(getattr(trading, "leverage", DEFAULT_LEVERAGE)))
        self.ledger = Ledger(start)
        self.fills: list[Execution] = []  # every Trade/BustTrade fill, in engine order
        self.funding: list[Execution] = []  # every funding charge (execType Funding)
        self._delivery = Delivery()  # the ordered private stream (timed release)
        self.events: asyncio.Queue[PrivateEvent] = self._delivery.events
        self._books: dict[str, SimBook] = {}
        self._last: dict[str, float] = {}
        self._orders: dict[str, SimOrder] = {}  # by orderLinkId (bot orders) / orderId (triggered ones)
        self._live: dict[str, SimOrder] = {}  # _orders not yet seen final, same keys and order (see _open_orders)
        self._resting: dict[str, list[SimOrder]] = {}  # symbol -> working limit orders
        self._positions: dict[str, SimPosition] = {}
        self._active: set[str] = set()  # symbols with resting orders or an open position
        self._leverage: dict[str, Decimal] = {}
        self._seq = 0
        self._exec_seq = 0
        self._epoch = 0  # bumped by every change to what _watch reads (tape_scan)
        self._watches: dict[str, tuple[int, Watch, Bounds]] = {}  # per symbol: (_epoch it was made at, watch, bounds)
        self._pending: list[PrivateEvent] = []
        self._touched: set[str] = set()
        self._wallet_dirty = False
        self._next_funding: float | None = None

    def _refresh_active(self, sym: str) -> None:
        pos = self._positions.get(sym)
        if self._resting.get(sym) or (pos is not None and pos.size):
            self._active.add(sym)
        else:
            self._active.discard(sym)

    def _new_order(
        self,
        sym: str,
        side: str,
        order_type: str,
        qty: Decimal,
        link_id: str,
        price: Decimal | None,
        tif: str,
        reduce_only: bool,
        ts: float,
        *,
        create_type: str = "CreateByUser",
        stop_order_type: str = "",
    ) -> SimOrder:
        self._seq += 1
        inst = self._instruments[sym]
        p = price if price is not None else ZERO
        o = SimOrder(
            order_id=f"sim-{self._seq:010d}",
            link_id=link_id,
            symbol=sym,
            side=side,
            sign=1 if side == "Buy" else -1,
            order_type=order_type,
            price=p,
            ticks=int(p / inst.tick_size) if price is not None else 0,
            qty=qty,
            tif=tif,
            reduce_only=reduce_only,
            seq=self._seq,
            create_type=create_type,
            stop_order_type=stop_order_type,
            ts=ts,
        )
        self._orders[link_id or o.order_id] = o
        self._live[link_id or o.order_id] = o
        return o

    def _open_orders(self) -> list[SimOrder]:
        """``[o for o in _orders.values() if o.status not in FINAL]`` without walking every order of the run: keys
        are never reused and a final status is never left, so ``_live`` (inserted with ``_orders``, pruned here)
        holds the same open orders in the same order."""
        live = self._live
        for key in [k for k, o in live.items() if o.status in FINAL]:
            del live[key]
        return list(live.values())

    def _next_exec_id(self) -> str:
        self._exec_seq += 1
        return f"simexec-{self._exec_seq:012d}"

    def _order_event(self, o: SimOrder) -> OrderUpdate:
        avg = (o.cum_value / o.cum).quantize(AVG_Q) if o.cum else ZERO
        return OrderUpdate(
            symbol=o.symbol,
            order_id=o.order_id,
            order_link_id=o.link_id,
            side=o.side,  # type: ignore[arg-type]
            order_type=o.order_type,
            price=o.price,
            qty=o.qty,
            cum_exec_qty=o.cum,  # type: ignore[arg-type]
            avg_price=avg,
            status=o.status,
            time_in_force=o.tif,
            reduce_only=o.reduce_only,  # type: ignore[arg-type]
            ts=o.ts,
            create_type=o.create_type,
            stop_order_type=o.stop_order_type,
            reject_reason=o.reject_reason,
        )

    def _ref_price(self, sym: str, sign: int) -> Decimal | None:
        """Price a market order would see first (best opposite level), else the last trade."""
        inst = self._instruments[sym]
        book = self._books.get(sym)
        if sign and book is not None:
            best = book.best_ask() if sign > 0 else book.best_bid()
            if best is not None:
                return tick_price(inst, best)
        last = self._last.get(sym)
        return inst.round_tick(last) if last is not None else None

    def _pos(self, sym: str) -> SimPosition:
        pos = self._positions.get(sym)
        if pos is None:
            pos = self._positions[sym] = SimPosition(leverage=self._default_leverage)
        return pos

    def _instrument(self, sym: str) -> Instrument:
        try:
            return self._instruments[sym]
        except KeyError:
            raise ExchangeError(ERR_PARAMS, f"params error: symbol invalid ({sym})") from None

    def _working(self, symbol: str, link_id: str) -> SimOrder:
        o = self._orders.get(link_id)
        if o is None or o.symbol != symbol or o.status in FINAL:
            raise ExchangeError(ERR_ORDER_NOT_EXISTS, "order not exists or too late to cancel")
        return o
