"""The simulated Bybit (USDT linear perpetuals, one-way mode) behind :class:`bot.ports.Exchange`.

It is the exchange side of hftbacktest's two-processor design (STYLE.md §1): it keeps its OWN book (from the
market events handed to :meth:`SimExchange.on_market`), its own last trade price, orders, queue positions,
positions and wallet. The bot only learns what the delivered events and REST answers tell it.

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
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

from bot.adapters.simulated.book import SimBook
from bot.adapters.simulated.fees import FeeModel, TradingValueFees
from bot.adapters.simulated.latency import LatencyModel, latency_from_settings
from bot.adapters.simulated.ledger import ZERO, Ledger, net_fill
from bot.adapters.simulated.queue import QueueModel, RiskAverseQueue
from bot.adapters.simulated.tape_scan import Watch, rows_to_check, watch_of
from bot.clock import Clock
from bot.events import BookSnapshot, EventBatch, Trade, TradeBatch
from bot.instruments import Instrument, InstrumentRegistry, to_decimal
from bot.ports import (
    ALWAYS_UP,
    ERR_INSUFFICIENT_BALANCE,
    ERR_LEVERAGE_NOT_MODIFIED,
    ERR_NOT_MODIFIED,
    ERR_ORDER_NOT_EXISTS,
    ERR_PARAMS,
    ERR_QTY_TOO_SMALL,
    ERR_REDUCE_ONLY,
    ExchangeError,
    Execution,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionUpdate,
    PrivateEvent,
    StreamStatus,
    WalletUpdate,
)

ERR_DUPLICATE_LINK_ID = 110072   # Bybit: "OrderLinkedID is duplicate"
MAINTENANCE_MARGIN_RATE = Decimal("0.005")   # Bybit tier-1 MMR of BTC/ETH linear perps
DEFAULT_LEVERAGE = 10
_AVG_Q = Decimal("0.00000001")
_FINAL = frozenset(("Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected", "Deactivated"))

T = TypeVar("T")


@dataclass(slots=True)
class _Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    sign: int
    order_type: str
    price: Decimal
    ticks: int
    qty: Decimal
    tif: str
    reduce_only: bool
    seq: int
    cum: Decimal = ZERO
    cum_value: Decimal = ZERO
    status: str = "New"
    ahead: Decimal = ZERO
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    reject_reason: str = "EC_NoError"
    ts: float = 0.0

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum


@dataclass(slots=True)
class _Position:
    leverage: Decimal
    size: Decimal = ZERO      # signed
    cost: Decimal = ZERO      # Σ qty·price of the open position
    tp: Decimal = ZERO
    sl: Decimal = ZERO
    cum_realised: Decimal = ZERO
    liq_f: float = 0.0        # liquidation price as float, for the per-trade check

    @property
    def avg(self) -> Decimal:
        return (self.cost / abs(self.size)).quantize(_AVG_Q) if self.size else ZERO


class SimExchange:
    """Simulated Bybit; see the module docstring for the fill, trigger, liquidation and latency rules."""

    def __init__(self, settings: Any, clock: Clock, instruments: InstrumentRegistry, *, seed: int,
                 latency: LatencyModel | None = None, initial_balance: Decimal | None = None,
                 queue_model: QueueModel | None = None, fee_model: FeeModel | None = None) -> None:
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
        self.fills: list[Execution] = []                # every Trade/BustTrade fill, in engine order
        self.funding: list[Execution] = []              # every funding charge (execType Funding)
        self.events: asyncio.Queue[PrivateEvent] = asyncio.Queue()
        self._books: dict[str, SimBook] = {}
        self._last: dict[str, float] = {}
        self._orders: dict[str, _Order] = {}            # by orderLinkId (bot orders) / orderId (triggered ones)
        self._resting: dict[str, list[_Order]] = {}     # symbol -> working limit orders
        self._positions: dict[str, _Position] = {}
        self._active: set[str] = set()                  # symbols with resting orders or an open position
        self._leverage: dict[str, Decimal] = {}
        self._seq = 0
        self._exec_seq = 0
        self._epoch = 0                                 # bumped by every change to what _watch reads (tape_scan)
        self._watches: dict[str, tuple[int, Watch]] = {}  # per symbol: (_epoch it was made at, watch)
        self._pending: list[PrivateEvent] = []
        self._touched: set[str] = set()
        self._wallet_dirty = False
        self._outbox: deque[tuple[float, list[PrivateEvent]]] = deque()
        self._last_delivery = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._next_funding: float | None = None

    # ------------------------------------------------------------------ market side
    def on_market(self, batch: EventBatch) -> None:
        """Apply market events (in ts order) to the exchange's book and tape; fill, trigger and liquidate.
        ``Trade`` events and ``TradeBatch`` rows are the same prints to it (see the module docstring)."""
        now = self._clock.now()
        if self._next_funding is None:
            self._next_funding = self._funding_after(now)
        elif now >= self._next_funding:
            self._apply_funding()
        books, active = self._books, self._active
        for ev in batch:
            if type(ev) is Trade:
                self._last[ev.symbol] = ev.price
                if ev.symbol in active:
                    self._on_trade(ev)
                continue
            if type(ev) is TradeBatch:
                n = len(ev.price)
                if n:
                    if ev.symbol in active:
                        self._on_trade_batch(ev)
                    self._last[ev.symbol] = ev.price.item(n - 1)
                continue
            book = books.get(ev.symbol)
            if book is None:
                if ev.symbol not in self._instruments:
                    continue
                book = books[ev.symbol] = SimBook(self._instruments[ev.symbol].tick)
            if type(ev) is BookSnapshot:
                book.snapshot(ev.bids, ev.asks)
            else:
                book.delta(ev.bids, ev.asks)
        if self._pending or self._touched or self._wallet_dirty:
            self._dispatch(self._lat.response())

    def _on_trade(self, tr: Trade) -> None:
        sym = tr.symbol
        orders = self._resting.get(sym)
        if orders:
            self._match_trade(sym, tr, orders)
        pos = self._positions.get(sym)
        if pos is not None and pos.size:
            if pos.tp or pos.sl:
                self._check_tpsl(sym, pos, tr)
            if pos.size and (tr.price <= pos.liq_f if pos.size > 0 else tr.price >= pos.liq_f):
                self._liquidate(sym, pos, tr.ts)

    def _on_trade_batch(self, b: TradeBatch) -> None:
        """:meth:`_on_trade` for exactly the rows of ``b`` that can matter (:mod:`bot.adapters.simulated.tape_scan`), in
        order; the selection is recomputed after each row that changed the state (``_epoch`` moved)."""
        sym = b.symbol
        inst = self._instruments[sym]
        price, is_buy = b.price, b.is_buy
        start = 0
        while sym in self._active:
            book = self._books.get(sym)
            rows = rows_to_check(price, is_buy, start, self._watch(sym), None if book is None else book.inv_tick,
                                 inst.tick)
            if not len(rows):
                return
            epoch = self._epoch
            sides = ["Buy" if x else "Sell" for x in is_buy[rows].tolist()]
            for j, t, p, v, side in zip(rows.tolist(), b.ts[rows].tolist(), price[rows].tolist(),
                                        b.size[rows].tolist(), sides, strict=True):
                self._last[sym] = p
                self._on_trade(Trade(sym, t, p, v, side, ""))  # type: ignore[arg-type]
                if self._epoch != epoch:
                    start = j + 1
                    break
            else:
                return

    def _watch(self, sym: str) -> Watch:
        """The symbol's :class:`Watch`, rebuilt only when ``_epoch`` moved: every change to a resting order's side or
        price, to the resting set, or to a position's size, TP, SL or liquidation price bumps it (most batches of a
        position's life see the same watch)."""
        epoch = self._epoch
        cached = self._watches.get(sym)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        orders = [(o.sign, o.ticks) for o in self._resting.get(sym, ())]
        pos = self._positions.get(sym)
        if pos is None or not pos.size:
            w = watch_of(orders, 0.0, 0.0, 0.0, 0.0)
        else:
            w = watch_of(orders, float(pos.size), float(pos.tp), float(pos.sl), pos.liq_f)
        self._watches[sym] = (epoch, w)
        return w

    def _match_trade(self, sym: str, tr: Trade, orders: list[_Order]) -> None:
        book = self._books.get(sym)
        inst = self._instruments[sym]
        t_ticks = book.ticks(tr.price) if book is not None else round(tr.price / inst.tick)
        budget = to_decimal(tr.size)
        # price priority (best first), then time
        buys = sorted((o for o in orders if o.sign > 0 and o.ticks >= t_ticks), key=lambda o: (-o.ticks, o.seq))
        sells = sorted((o for o in orders if o.sign < 0 and o.ticks <= t_ticks), key=lambda o: (o.ticks, o.seq))
        for o in buys + sells:
            if o.status in _FINAL:
                continue
            if o.ticks != t_ticks:                       # traded through our price
                avail = budget
                o.ahead = ZERO
            elif (tr.side == "Sell") == (o.sign > 0):    # aggressor hit our side at our price
                o.ahead, excess = self._queue.on_trade_at_price(o.ahead, to_decimal(tr.size))
                avail = min(excess, budget)
            else:
                continue
            if avail < inst.qty_step:
                continue
            qty = min(o.leaves, inst.floor_step(avail))
            if o.reduce_only:
                qty = self._clamp_reduce(sym, o, qty)
                if o.status in _FINAL:
                    continue
            if qty <= 0:
                continue
            budget -= qty
            self._fill(o, o.price, qty, True, tr.ts)
        if any(o.status in _FINAL for o in orders):
            self._resting[sym] = [o for o in orders if o.status not in _FINAL]
            self._refresh_active(sym)

    def _check_tpsl(self, sym: str, pos: _Position, tr: Trade) -> None:
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
        o = self._new_order(sym, "Sell" if long else "Buy", "Market", abs(pos.size), "", None, "IOC", True, tr.ts,
                            create_type=f"CreateBy{kind}", stop_order_type=kind)
        self._take(o, tr.ts)
        self._finish_taker(o, tr.ts)
        if pos.size and (pos.size > 0) == long:          # book ran out: protection stays armed
            pos.tp, pos.sl = tp, sl
            self._epoch += 1
        self._touched.add(sym)

    def _liquidate(self, sym: str, pos: _Position, ts: float) -> None:
        for o in list(self._resting.get(sym, ())):
            self._cancel_now(o, ts, "EC_CancelForLiq")
        self._resting[sym] = []
        inst = self._instruments[sym]
        long = pos.size > 0
        price = self._bankruptcy(inst, pos)
        o = self._new_order(sym, "Sell" if long else "Buy", "Market", abs(pos.size), "", price, "IOC", True, ts,
                            create_type="CreateByLiq")
        self._fill(o, price, o.qty, False, ts, exec_type="BustTrade")
        self._refresh_active(sym)

    def _bankruptcy(self, inst: Instrument, pos: _Position) -> Decimal:
        e = pos.cost / abs(pos.size)
        if pos.size > 0:
            return max(inst.tick_size, _grid(e * (1 - 1 / pos.leverage), inst.tick_size, ROUND_FLOOR))
        return _grid(e * (1 + 1 / pos.leverage), inst.tick_size, ROUND_CEILING)

    def _update_liq(self, pos: _Position) -> None:
        self._epoch += 1
        if not pos.size:
            pos.liq_f = 0.0
            return
        e = pos.cost / abs(pos.size)
        inv = 1 / pos.leverage
        pos.liq_f = float(e * (1 - inv + MAINTENANCE_MARGIN_RATE) if pos.size > 0
                          else e * (1 + inv - MAINTENANCE_MARGIN_RATE))

    def liq_price(self, symbol: str) -> Decimal:
        """Liquidation price of the open position (0 when flat)."""
        pos = self._positions.get(symbol)
        if pos is None or not pos.size:
            return ZERO
        inst = self._instruments[symbol]
        return inst.round_tick(to_decimal(pos.liq_f))

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
            ex = Execution(symbol=sym, exec_id=self._next_exec_id(), order_id="", order_link_id="",
                           side="Buy" if pos.size > 0 else "Sell", exec_price=mark, exec_qty=abs(pos.size),
                           exec_fee=fee, fee_rate=self._funding_rate, is_maker=False, ts=ts, exec_type="Funding",
                           create_type="", order_type="Market")
            self.ledger.record_funding(ex)
            self.funding.append(ex)
            self._pending.append(ex)
            self._wallet_dirty = True

    # ------------------------------------------------------------------ engine (synchronous, at arrival time)
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
                raise ExchangeError(ERR_PARAMS, f"Price invalid: {req.price} is not a multiple of tickSize "
                                                f"{inst.tick_size}")
        sign = 1 if req.side == "Buy" else -1
        pos = self._pos(req.symbol)
        if req.reduce_only and (not pos.size or (pos.size > 0) == (sign > 0)):
            raise ExchangeError(ERR_REDUCE_ONLY, "current position is zero, cannot fix reduce-only order qty"
                                if not pos.size else "Reduce-only rule not satisfied")
        ref = req.price if not is_mkt else self._ref_price(req.symbol, sign)
        if ref is not None and not req.reduce_only and req.qty * ref < inst.min_notional:
            raise ExchangeError(ERR_QTY_TOO_SMALL, f"Order does not meet minimum order value {inst.min_notional}USDT")
        if ref is not None and not req.reduce_only:
            opening = self._opening_qty(req.symbol, sign, req.qty)
            need = opening * ref / pos.leverage + self._fees.amount(ref, opening, False)
            if need > 0 and need > self._available():
                raise ExchangeError(ERR_INSUFFICIENT_BALANCE, "ab not enough for new order")
        o = self._new_order(req.symbol, req.side, req.order_type, req.qty, req.order_link_id, req.price,
                            "IOC" if is_mkt else req.time_in_force, req.reduce_only, now)
        self._pending.append(self._order_event(o))
        self._execute_new(o, now)
        return OrderAck(order_id=o.order_id, order_link_id=o.link_id)

    def _execute_new(self, o: _Order, now: float) -> None:
        """Match an order that just arrived (or was re-priced): take what crosses, then rest / cancel the rest."""
        book = self._books.get(o.symbol)
        best = None if book is None else (book.best_ask() if o.sign > 0 else book.best_bid())
        crosses = best is not None and (o.order_type == "Market"
                                        or (best <= o.ticks if o.sign > 0 else best >= o.ticks))
        if o.tif == "PostOnly" and crosses:
            self._cancel_now(o, now, "EC_PostOnlyWillTakeLiquidity")
            return
        if o.tif == "FOK" and not self._can_fill_all(o):
            self._cancel_now(o, now, "EC_NoImmediateQtyToFill")
            return
        if crosses:
            self._take(o, now)
        if o.status in _FINAL:
            return
        if o.order_type == "Market" or o.tif in ("IOC", "FOK"):
            self._finish_taker(o, now)
            return
        self._rest(o)

    def _rest(self, o: _Order) -> None:
        book = self._books.get(o.symbol)
        displayed = to_decimal(book.size_at(o.sign > 0, o.ticks)) if book is not None else ZERO
        own = sum((x.leaves for x in self._resting.get(o.symbol, ()) if x is not o and x.sign == o.sign
                   and x.ticks == o.ticks), ZERO)
        o.ahead = self._queue.on_new(displayed + own)
        lst = self._resting.setdefault(o.symbol, [])
        if o not in lst:
            lst.append(o)
        self._epoch += 1
        self._active.add(o.symbol)

    def _can_fill_all(self, o: _Order) -> bool:
        book = self._books.get(o.symbol)
        if book is None:
            return False
        limit = None if o.order_type == "Market" else o.ticks
        inst = self._instruments[o.symbol]
        total = sum(inst.floor_step(s) for _, s in book.levels_to_take(o.sign > 0, limit))
        return total >= o.leaves

    def _take(self, o: _Order, ts: float) -> None:
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
                if o.status in _FINAL or want <= 0:
                    return
            qty = min(want, inst.floor_step(size))
            if qty <= 0:
                continue
            book.consume(o.sign > 0, ticks, float(qty))
            self._fill(o, _tick_price(inst, ticks), qty, False, ts)
            if o.leaves <= 0:
                return

    def _finish_taker(self, o: _Order, ts: float) -> None:
        if o.status not in _FINAL and o.leaves > 0:
            self._cancel_now(o, ts, "EC_NoImmediateQtyToFill")

    def _clamp_reduce(self, sym: str, o: _Order, qty: Decimal) -> Decimal:
        pos = self._positions.get(sym)
        if pos is None or not pos.size or (pos.size > 0) == (o.sign > 0):
            self._cancel_now(o, self._clock.now(), "EC_ReduceOnlySetButNotReducing")
            return ZERO
        return min(qty, abs(pos.size))

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
            raise ExchangeError(ERR_PARAMS, "The order remains unchanged as the parameters entered match the "
                                            "existing ones")
        if not o.reduce_only and new_qty * new_price < inst.min_notional:
            raise ExchangeError(ERR_QTY_TOO_SMALL, f"Order does not meet minimum order value {inst.min_notional}USDT")
        requeue = new_price != o.price or new_qty > o.qty
        o.qty = new_qty
        o.ts = now
        if requeue:                     # a price change or a size increase loses queue priority
            o.price, o.ticks = new_price, int(new_price / inst.tick_size)
            self._seq += 1
            o.seq = self._seq
            self._remove_resting(o)
            self._pending.append(self._order_event(o))
            self._execute_new(o, now)
        else:                           # a size decrease keeps it
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
                raise ExchangeError(ERR_PARAMS, f"TakeProfit:{tp} set for {side} position should be "
                                                f"{'higher' if long else 'lower'} than base_price:{base}??LastPrice")
            if sl and (sl >= base if long else sl <= base):
                raise ExchangeError(ERR_PARAMS, f"StopLoss:{sl} set for {side} position should be "
                                                f"{'lower' if long else 'higher'} than base_price:{base}??LastPrice")
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

    # ------------------------------------------------------------------ fills and account
    def _fill(self, o: _Order, price: Decimal, qty: Decimal, is_maker: bool, ts: float,
              exec_type: str = "Trade") -> None:
        sym = o.symbol
        pos = self._pos(sym)
        was_long = pos.size > 0
        size, cost, realised, closed = net_fill(pos.size, pos.cost, o.sign, qty, price)
        if size == 0 or (pos.size != 0 and (size > 0) != was_long):
            pos.tp = pos.sl = ZERO          # flat or flipped: the old protection no longer applies
        pos.size, pos.cost = size, cost
        pos.cum_realised += realised
        self._update_liq(pos)
        self._epoch += 1
        o.cum += qty
        o.cum_value += qty * price
        o.status = "Filled" if o.cum >= o.qty else "PartiallyFilled"
        o.ts = ts
        fee = self._fees.amount(price, qty, is_maker)
        ex = Execution(symbol=sym, exec_id=self._next_exec_id(), order_id=o.order_id, order_link_id=o.link_id,
                       side=o.side, exec_price=price, exec_qty=qty, exec_fee=fee,  # type: ignore[arg-type]
                       fee_rate=self._fees.rate(is_maker), is_maker=is_maker, ts=ts, exec_type=exec_type,
                       create_type=o.create_type, stop_order_type=o.stop_order_type,
                       order_type=o.order_type, leaves_qty=o.leaves, closed_size=closed)  # type: ignore[arg-type]
        self.ledger.record_fill(ex, realised)
        self.fills.append(ex)
        self._pending.append(ex)
        self._pending.append(self._order_event(o))
        self._touched.add(sym)
        self._wallet_dirty = True
        if o.status in _FINAL:
            self._remove_resting(o)
        if not size:
            for r in list(self._resting.get(sym, ())):
                if r.reduce_only and r is not o:
                    self._cancel_now(r, ts, "EC_ReduceOnlySetButNotReducing")
        self._refresh_active(sym)

    def _cancel_now(self, o: _Order, ts: float, reason: str) -> None:
        self._epoch += 1
        o.status = "Cancelled"
        o.reject_reason = reason
        o.ts = ts
        self._remove_resting(o)
        self._pending.append(self._order_event(o))

    def _remove_resting(self, o: _Order) -> None:
        self._epoch += 1  # also after an amend re-priced ``o`` (its ticks changed before this call)
        lst = self._resting.get(o.symbol)
        if lst and o in lst:
            lst.remove(o)
            self._refresh_active(o.symbol)

    def _refresh_active(self, sym: str) -> None:
        pos = self._positions.get(sym)
        if self._resting.get(sym) or (pos is not None and pos.size):
            self._active.add(sym)
        else:
            self._active.discard(sym)

    def _new_order(self, sym: str, side: str, order_type: str, qty: Decimal, link_id: str, price: Decimal | None,
                   tif: str, reduce_only: bool, ts: float, *, create_type: str = "CreateByUser",
                   stop_order_type: str = "") -> _Order:
        self._seq += 1
        inst = self._instruments[sym]
        p = price if price is not None else ZERO
        o = _Order(order_id=f"sim-{self._seq:010d}", link_id=link_id, symbol=sym, side=side,
                   sign=1 if side == "Buy" else -1, order_type=order_type, price=p,
                   ticks=int(p / inst.tick_size) if price is not None else 0, qty=qty, tif=tif,
                   reduce_only=reduce_only, seq=self._seq, create_type=create_type, stop_order_type=stop_order_type,
                   ts=ts)
        self._orders[link_id or o.order_id] = o
        return o

    def _next_exec_id(self) -> str:
        self._exec_seq += 1
        return f"simexec-{self._exec_seq:012d}"

    def _order_event(self, o: _Order) -> OrderUpdate:
        avg = (o.cum_value / o.cum).quantize(_AVG_Q) if o.cum else ZERO
        return OrderUpdate(symbol=o.symbol, order_id=o.order_id, order_link_id=o.link_id, side=o.side,  # type: ignore[arg-type]
                           order_type=o.order_type, price=o.price, qty=o.qty, cum_exec_qty=o.cum,  # type: ignore[arg-type]
                           avg_price=avg, status=o.status, time_in_force=o.tif, reduce_only=o.reduce_only,  # type: ignore[arg-type]
                           ts=o.ts, create_type=o.create_type, stop_order_type=o.stop_order_type,
                           reject_reason=o.reject_reason)

    def _position_event(self, sym: str) -> PositionUpdate:
        pos = self._pos(sym)
        last = self._last.get(sym)
        upnl = ZERO
        if pos.size and last is not None:
            upnl = pos.size * to_decimal(last) - (pos.cost if pos.size > 0 else -pos.cost)
        return PositionUpdate(symbol=sym, side="" if not pos.size else ("Buy" if pos.size > 0 else "Sell"),
                              size=abs(pos.size), avg_price=pos.avg, ts=self._clock.now(), take_profit=pos.tp,
                              stop_loss=pos.sl, liq_price=self.liq_price(sym), leverage=pos.leverage,
                              unrealised_pnl=upnl, cum_realised_pnl=pos.cum_realised)

    def _wallet_event(self) -> WalletUpdate:
        equity = self.ledger.balance + self._unrealised()
        return WalletUpdate(total_equity=equity, total_margin_balance=equity, available_balance=self._available(),
                            wallet_balance=self.ledger.balance, ts=self._clock.now())

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

    def _ref_price(self, sym: str, sign: int) -> Decimal | None:
        """Price a market order would see first (best opposite level), else the last trade."""
        inst = self._instruments[sym]
        book = self._books.get(sym)
        if sign and book is not None:
            best = book.best_ask() if sign > 0 else book.best_bid()
            if best is not None:
                return _tick_price(inst, best)
        last = self._last.get(sym)
        return inst.round_tick(last) if last is not None else None

    def _pos(self, sym: str) -> _Position:
        pos = self._positions.get(sym)
        if pos is None:
            pos = self._positions[sym] = _Position(leverage=self._default_leverage)
        return pos

    def _instrument(self, sym: str) -> Instrument:
        try:
            return self._instruments[sym]
        except KeyError:
            raise ExchangeError(ERR_PARAMS, f"params error: symbol invalid ({sym})") from None

    def _working(self, symbol: str, link_id: str) -> _Order:
        o = self._orders.get(link_id)
        if o is None or o.symbol != symbol or o.status in _FINAL:
            raise ExchangeError(ERR_ORDER_NOT_EXISTS, "order not exists or too late to cancel")
        return o

    # ------------------------------------------------------------------ delivery
    def _dispatch(self, delay: float) -> float:
        """Queue the events produced by one engine step for delivery after ``delay``; returns the delivery time."""
        loop = asyncio.get_running_loop()
        for sym in sorted(self._touched):
            self._pending.append(self._position_event(sym))
        if self._wallet_dirty:
            self._pending.append(self._wallet_event())
        self._touched.clear()
        self._wallet_dirty = False
        t = max(loop.time() + delay, self._last_delivery)
        self._last_delivery = t
        if self._pending:
            self._outbox.append((t, self._pending))
            self._pending = []
            if self._timer is None:
                self._timer = loop.call_at(t, self._flush)
        return t

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = None
        now = loop.time() + 1e-9
        while self._outbox and self._outbox[0][0] <= now:
            for ev in self._outbox.popleft()[1]:
                self.events.put_nowait(ev)
        if self._outbox:
            self._timer = loop.call_at(self._outbox[0][0], self._flush)

    async def _request(self, entry: float, fn: Callable[..., T], *args: Any) -> T:
        """Send ``fn(*args)`` to the engine: it runs after ``entry``; its answer returns one response leg later.

        The engine step is a loop timer, so a request that was sent is processed even if the caller is cancelled.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()

        def arrive() -> None:
            try:
                res: Any = fn(*args)
                err = None
            except ExchangeError as e:
                res, err = None, e
            t = self._dispatch(self._lat.response())
            loop.call_at(t, _resolve, fut, res, err)

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

    async def amend_order(self, symbol: str, order_link_id: str, *, price: Decimal | None = None,
                          qty: Decimal | None = None) -> OrderAck:
        return await self._request(self._lat.amend(), self._engine_amend, symbol, order_link_id, price, qty)

    async def cancel_order(self, symbol: str, order_link_id: str) -> OrderAck:
        return await self._request(self._lat.cancel(), self._engine_cancel, symbol, order_link_id)

    async def set_trading_stop(self, symbol: str, *, take_profit: Decimal | None, stop_loss: Decimal | None,
                               trigger_by: str = "LastPrice") -> None:
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
            return [self._order_event(o) for o in self._orders.values()
                    if o.status not in _FINAL and (symbol is None or o.symbol == symbol)]
        return await self._request(self._lat.entry(), query)

    async def get_order(self, symbol: str, order_link_id: str) -> OrderUpdate | None:
        def query() -> OrderUpdate | None:
            o = self._orders.get(order_link_id)
            return self._order_event(o) if o is not None and o.symbol == symbol else None
        return await self._request(self._lat.entry(), query)

    async def get_executions(self, symbol: str | None = None, since: float = 0.0) -> list[Execution]:
        def query() -> list[Execution]:
            return [e for e in self.ledger.entries if e.ts >= since and (symbol is None or e.symbol == symbol)]
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


def _grid(x: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round to the tick, written with the instrument's price decimals (tick "0.10" → "58800.0", as Bybit prints)."""
    units = (x / step).to_integral_value(rounding=rounding)
    return (units * step).quantize(_price_quantum(step))


def _price_quantum(step: Decimal) -> Decimal:
    exp = step.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(0, exp))  # type: ignore[arg-type]


def _tick_price(inst: Instrument, ticks: int) -> Decimal:
    return (Decimal(ticks) * inst.tick_size).quantize(_price_quantum(inst.tick_size))


def _resolve(fut: asyncio.Future[Any], res: Any, err: BaseException | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(res)
