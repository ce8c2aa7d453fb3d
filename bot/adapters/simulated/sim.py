"""The simulated Bybit (USDT linear perpetuals, one-way mode) behind :class:`bot.ports.Exchange`.

It is the exchange side of hftbacktest's two-processor design (STYLE.md §1): it keeps its OWN book (from the
market events handed to :meth:`SimExchange.on_market`), its own last trade price, orders, queue positions,
positions and wallet. The bot only learns what the delivered events and REST answers tell it.

Layout (one job per module): this module is the request face (the Exchange port, each call one timed request) and
the rules; :mod:`.state` holds the shared state and its lookups; :mod:`.tape` takes market events; :mod:`.matching`
fills and triggers; :mod:`.margin` account figures and liquidation; :mod:`.funding` funding charges; :mod:`.engine`
the request handlers; :mod:`.delivery` the ordered private stream; :mod:`.orders` the order/position records.

Time. ``clock.now()`` is exchange time. A request reaches the matching engine after the model's entry latency
(``amend``/``cancel`` legs for those requests) and is processed against the state at that moment; the REST answer
and the private events it caused reach the bot after a response latency. Market-driven events (fills of resting
orders, TP/SL, liquidation, funding) also travel one response leg. Private events are delivered in the order they
were produced (one ordered stream, like one WS connection): a delivery time is never earlier than the previous
one (simplification: a fast draw queued behind a slow one waits for it). Because the engine works at arrival
time, a cancel that arrives after a fill loses the race (110001) and the fill event still arrives.

Fill conditions (resting orders fill from the public tape, in tape order; the book alone never fills them):

- Buy limit at P (sell mirrored):
  * a trade at price < P (through, either aggressor): fills min(leaves, trade size not already given to our
    better-priced orders); our order is then at the front of its level.
  * a Sell-aggressor trade at price == P: first consumes ``ahead`` (the displayed bid size at P when the order
    arrived, plus our own earlier orders at P; reduced by trades at P, never by cancels, see
    :class:`RiskAverseQueue`); the excess fills us, min(leaves, excess).
  * fills are floored to qtyStep; maker fee; price = P.
- Marketable limit (Buy P ≥ best ask) and Market orders: walk the exchange's ask levels best first (never a
  price better than the book; Market up to the last kept level), taker fee at each level's price, depleting our
  copy of the book until the next delta rewrites the level. A limit rests its remainder (GTC) with
  ``ahead`` = displayed size at P; Market/IOC cancel the remainder (EC_NoImmediateQtyToFill); FOK fills all or
  nothing; PostOnly that would take is Cancelled (EC_PostOnlyWillTakeLiquidity).
- Reduce-only: rejected (110017) if the position is flat or on the order's side; fills are clamped to the open
  size (never flip); resting reduce-only orders are cancelled when the position goes flat.
- Position TP/SL (tpslMode Full, market on trigger, trigger = last trade price; MarkPrice/IndexPrice are treated
  as last price): LONG TP when a trade ≥ TP, SL when a trade ≤ SL (SHORT mirrored). The trades of a batch are
  processed one by one in time order, so when a burst crosses both, the first trade that crosses decides. The
  trigger sends a reduce-only Market for the whole position (createType CreateByTakeProfit/CreateByStopLoss,
  stopOrderType TakeProfit/StopLoss), taker, walking the book. Both TP and SL are cleared when the position goes
  flat or flips.
- Liquidation (isolated-like, simple maintenance-margin model): with entry e, leverage L and maintenance margin
  rate m, LONG liq = e·(1 − 1/L + m), bankruptcy = e·(1 − 1/L) (SHORT: e·(1 + 1/L − m), e·(1 + 1/L)). Checked on
  every trade after TP/SL; a trade at or beyond liq closes the whole position at the bankruptcy price (rounded
  against us to the tick), execType BustTrade, createType CreateByLiq, taker fee; the symbol's orders are cancelled.
- Trades arrive as ``Trade`` events or as ``TradeBatch`` columns. A batch costs O(1) for a symbol with nothing
  resting and no position (the last price is its last row); otherwise numpy selects the rows that can fill, trigger
  or liquidate (:mod:`bot.adapters.simulated.tape_scan`) and exactly those run through the per-trade logic, in order, so
  the outcome is the same as for the same prints delivered one by one.
- Funding: at every multiple of ``funding_interval_hours`` (epoch-aligned, 00:00/08:00/16:00 UTC for 8 h) the first
  market batch at or after it charges |size|·last price·rate (longs pay a positive rate) as an Execution with
  execType Funding (execFee > 0 = paid).
- Margin (simple unified USDT account): equity = balance + unrealised PnL at last price; initial margin = entry
  value / leverage per position plus (price·opening qty / leverage) per resting order that opens exposure;
  available = equity − both. A new order needs its opening part's margin plus its taker fee available (110007).
  Amends and leverage changes are not margin-checked (simplification).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from bot.adapters.simulated.delivery import resolve
from bot.adapters.simulated.engine import ERR_DUPLICATE_LINK_ID, EngineMixin
from bot.adapters.simulated.funding import FundingMixin
from bot.adapters.simulated.ledger import ZERO
from bot.adapters.simulated.margin import MAINTENANCE_MARGIN_RATE, MarginMixin
from bot.adapters.simulated.matching import MatchingMixin
from bot.adapters.simulated.tape import TapeMixin
from bot.instruments import InstrumentRegistry
from bot.ports import (
    ALWAYS_UP,
    ExchangeError,
    Execution,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionUpdate,
    StreamStatus,
    WalletUpdate,
)

__all__ = ["ERR_DUPLICATE_LINK_ID", "MAINTENANCE_MARGIN_RATE", "SimExchange"]

T = TypeVar("T")


class SimExchange(TapeMixin, MatchingMixin, MarginMixin, FundingMixin, EngineMixin):
    """Simulated Bybit; see the module docstring for the fill, trigger, liquidation and latency rules.

    This class is the request face (the Exchange port: each call is one timed request to the engine) and the
    inspection API; the engine seams are its mixins over :class:`bot.adapters.simulated.state.SimState`
    (the constructor is there)."""

    _req_loop: asyncio.AbstractEventLoop | None = None  # see :meth:`_running_loop`

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """``asyncio.get_running_loop()``, remembered while that loop runs: the call checks the process id by a system
        call each time (~3 µs on a virtual machine; a replay day sends thousands of requests). The exchange lives on
        one loop at a time, so a loop that still runs is the running one."""
        loop = self._req_loop
        if loop is None or not loop.is_running():
            loop = self._req_loop = asyncio.get_running_loop()
        return loop

    # ------------------------------------------------------------------ delivery
    def _dispatch(self, delay: float) -> float:
        """Queue the events produced by one engine step for delivery after ``delay``; returns the delivery time."""
        for sym in sorted(self._touched):
            self._pending.append(self._position_event(sym))
        if self._wallet_dirty:
            self._pending.append(self._wallet_event())
        self._touched.clear()
        self._wallet_dirty = False
        batch, self._pending = self._pending, []
        return self._delivery.send(batch, delay)

    async def _request(self, entry: float, fn: Callable[..., T], *args: Any) -> T:
        """Send ``fn(*args)`` to the engine: it runs after ``entry``; its answer returns one response leg later.

        The engine step is a loop timer, so a request that was sent is processed even if the caller is cancelled.
        """
        loop = self._running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def arrive() -> None:
            try:
                res: Any = fn(*args)
                err = None
            except ExchangeError as e:
                res, err = None, e
            t = self._dispatch(self._lat.response())
            loop.call_at(t, resolve, fut, res, err)

        loop.call_later(entry, arrive)
        return await fut

    # ------------------------------------------------------------------ Exchange port
    def stream_status(self) -> StreamStatus:
        """Always up and lossless: events travel an in-process queue, so there is nothing to poll or reconcile."""
        return ALWAYS_UP

    async def server_time(self) -> float:
        return await self._request(self._lat.entry(), self._clock.now)

    async def get_instruments(self) -> InstrumentRegistry:
        return await self._request(self._lat.entry(), lambda: self._instruments)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._request(self._lat.entry(), self._engine_leverage, symbol, leverage)

    async def place_order(self, req: OrderRequest) -> OrderAck:
        return await self._request(self._lat.entry(), self._engine_place, req)

    async def amend_order(
        self, symbol: str, order_link_id: str, *, price: Decimal | None = None, qty: Decimal | None = None
    ) -> OrderAck:
        return await self._request(self._lat.amend(), self._engine_amend, symbol, order_link_id, price, qty)

    async def cancel_order(self, symbol: str, order_link_id: str) -> OrderAck:
        return await self._request(self._lat.cancel(), self._engine_cancel, symbol, order_link_id)

    async def set_trading_stop(
        self, symbol: str, *, take_profit: Decimal | None, stop_loss: Decimal | None, trigger_by: str = "LastPrice"
    ) -> None:
        await self._request(self._lat.entry(), self._engine_trading_stop, symbol, take_profit, stop_loss, trigger_by)

    async def get_positions(self, symbol: str | None = None) -> list[PositionUpdate]:
        def query() -> list[PositionUpdate]:
            if symbol is not None:
                self._instrument(symbol)
                return [self._position_event(symbol)]
            return [self._position_event(s) for s in sorted(self._positions) if self._positions[s].size]

        return await self._request(self._lat.entry(), query)

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        def query() -> list[OrderUpdate]:
            return [self._order_event(o) for o in self._open_orders() if symbol is None or o.symbol == symbol]

        return await self._request(self._lat.entry(), query)

    async def get_order(self, symbol: str, order_link_id: str) -> OrderUpdate | None:
        def query() -> OrderUpdate | None:
            o = self._orders.get(order_link_id)
            return self._order_event(o) if o is not None and o.symbol == symbol else None

        return await self._request(self._lat.entry(), query)

    async def get_executions(self, symbol: str | None = None, since: float = 0.0) -> list[Execution]:
        def query() -> list[Execution]:
            return [e for e in self.ledger.since(since) if symbol is None or e.symbol == symbol]

        return await self._request(self._lat.entry(), query)

    async def get_wallet(self) -> WalletUpdate:
        return await self._request(self._lat.entry(), self._wallet_event)

    # ------------------------------------------------------------------ inspection (tests, metrics)
    def position(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(signed size, average entry) right now, at exchange time."""
        pos = self._positions.get(symbol)
        return (pos.size, pos.avg) if pos is not None else (ZERO, ZERO)

    def protection(self, symbol: str) -> tuple[Decimal, Decimal]:
        pos = self._positions.get(symbol)
        return (pos.tp, pos.sl) if pos is not None else (ZERO, ZERO)

    def last_price(self, symbol: str) -> float | None:
        return self._last.get(symbol)
