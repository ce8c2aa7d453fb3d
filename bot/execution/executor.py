"""The Executor (STRATEGY.md §8): the position book, entries, protection, monitor, closes and reconciliation.

It only talks to the ``Exchange`` port and reads time from the injected clock, so the same object trades live, on
paper and in replay. Private events are consumed by one task and applied synchronously to the book; the entry,
protection and close tasks wait on a record's change signal. Every order-mutating request passes the token buckets.

Collaborators get the executor as :class:`bot.execution.host.ExecutorHost` (its public surface) and never import
this module: :mod:`.entry` (passive chase), :mod:`.protection` (TP/SL), :mod:`.closing` (close and finalize),
:mod:`.reconcile` (REST reconciliation), :mod:`.stream_watch`, :mod:`.routing` (which record an event belongs to);
the shared sync state is :class:`.sync.AccountSync`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from bot.clock import Clock
from bot.execution import closing, reconcile
from bot.execution.close_reasons import CloseReasonDetector
from bot.execution.entry import run_entry
from bot.execution.fills import Fill
from bot.execution.host import SignalLike, StorageLike
from bot.execution.logfmt import VWAP_EXTRA_DECIMALS, fmt_px
from bot.execution.order_ids import CLOSE_TAGS, make_position_id
from bot.execution.periodic import run_periodic
from bot.execution.positions import (
    ZERO,
    PositionBook,
    PositionRecord,
    PositionState,
    Protection,
)
from bot.execution.protection import protect
from bot.execution.rate_limit import OrderRateLimiter
from bot.execution.retrying import send_with_retries
from bot.execution.routing import record_for_execution, record_for_order
from bot.execution.stream_watch import StreamWatch
from bot.execution.sync import AccountSync
from bot.execution.trade_log import TradeLog
from bot.instruments import InstrumentRegistry, to_decimal
from bot.ports import (
    ERR_LEVERAGE_NOT_MODIFIED,
    Exchange,
    ExchangeError,
    Execution,
    OrderUpdate,
    PositionUpdate,
    PrivateEvent,
    WalletUpdate,
)
from bot.risk import RiskManager, side_dir

if TYPE_CHECKING:
    from settings import Settings

T = TypeVar("T")
ADOPT_EXEC_LOOKBACK_SEC = 86_400.0


class Executor:
    """Owns the only position book and every order state machine (§8)."""

    def __init__(self, settings: Settings, clock: Clock, exchange: Exchange, storage: StorageLike, risk: RiskManager,
                 instruments: InstrumentRegistry, trade_log: TradeLog | None,
                 on_closed: Callable[[PositionRecord], None] | None = None,
                 symbols: Sequence[str] | None = None) -> None:
        """``symbols``: the symbols the bot trades (leverage is set for them at start); default ``trade_pairs``."""
        self.settings = settings
        self.symbols = tuple(symbols) if symbols is not None else tuple(settings.trading.trade_pairs)
        self.xs = settings.execution
        self.clock = clock
        self.exchange = exchange
        self.storage = storage
        self.risk = risk
        self.instruments = instruments
        self.trade_log = trade_log
        self.on_closed = on_closed
        self.prefix = self.xs.order_link_prefix
        self.maker_rate = to_decimal(settings.fees.maker_fee_rate)
        self.taker_rate = to_decimal(settings.fees.taker_fee_rate)
        self.book = PositionBook()
        self.detector = CloseReasonDetector(self.prefix)
        self.closed: list[PositionRecord] = []
        self.dropped: list[PositionRecord] = []
        self.refusals: list[tuple[float, str, str]] = []      # (ts, symbol, reason) of open() refusals
        self.orphans: list[Execution] = []                    # fills we could not attribute to a record
        self.task_errors: list[BaseException] = []
        self.requests: Counter[str] = Counter()
        self.equity = ZERO
        self.available = ZERO
        self.limiter: OrderRateLimiter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._entry_tasks: dict[str, asyncio.Task[Any]] = {}
        self._close_tasks: dict[str, asyncio.Task[Any]] = {}
        self._protecting: set[str] = set()
        self._resolving: set[str] = set()
        self._bg: list[asyncio.Task[Any]] = []
        self.sync = AccountSync()  # lock, applied-fill fence and REST sweep times (shared with reconcile.py)
        self._seq = 0
        self._started = False
        self._stopping = False
        self.last_event_at = 0.0
        self.stream_watch: StreamWatch | None = None  # only for an exchange whose private stream can fail

    # ================================================================================================ API
    async def start(self) -> None:
        """Clock check, instruments, leverage, wallet, history, reconcile; then the event consumer and monitor."""
        now = self.clock.now()
        skew = await self.exchange.server_time() - now
        if abs(skew) > self.xs.max_clock_skew_sec:
            raise RuntimeError(f"clock skew {skew:+.3f}s against the exchange exceeds "
                               f"max_clock_skew_sec={self.xs.max_clock_skew_sec}; refusing to start")
        self.limiter = OrderRateLimiter(self.clock, self.settings.trading.max_orders_per_second,
                                        self.settings.trading.max_orders_per_minute)
        live_filters = await self.exchange.get_instruments()
        pairs = self.symbols
        missing = [s for s in pairs if s not in live_filters or s not in self.instruments]
        if missing:
            raise RuntimeError(f"traded symbols unknown to the exchange or the registry: {missing}")
        for sym in pairs:
            try:
                await self.exchange.set_leverage(sym, int(self.risk.leverage(sym)))
            except ExchangeError as e:
                if e.code != ERR_LEVERAGE_NOT_MODIFIED:
                    logger.warning("set_leverage {} failed: {}", sym, e)
        self.apply_wallet(await self.exchange.get_wallet())
        if self.trade_log is not None and self.trade_log.path is not None:
            n = self.risk.rebuild_from_trades_csv(self.trade_log.path)
            logger.info("risk history rebuilt from {} CLOSE rows", n)
        self.sync.last_exec_ts = now - ADOPT_EXEC_LOOKBACK_SEC
        status = getattr(self.exchange, "stream_status", None)
        seen = status() if status is not None else None  # before reconciling: a connect after it is news
        await self.reconcile()
        self._started = True
        self._bg = [asyncio.create_task(self._consume(), name="executor-events"),
                    asyncio.create_task(self._monitor(), name="executor-monitor")]
        if status is not None and seen is not None and not seen.lossless:
            self.stream_watch = StreamWatch(self, status, seen.connects)
            self._bg.append(asyncio.create_task(self.stream_watch.run(), name="executor-stream-watch"))

    async def stop(self) -> None:
        """Stop opening; finish working entries (a partial fill gets protection); leave OPEN positions as they are."""
        self._stopping = True
        for rec in self.book.live_records():
            if rec.state == PositionState.OPENING:
                rec.abort = True
                rec.notify()
        pending = [t for t in (*self._entry_tasks.values(), *self._close_tasks.values()) if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.xs.max_wait_sec)
        for t in [*self._bg, *self._tasks]:
            t.cancel()
        await asyncio.gather(*self._bg, *self._tasks, return_exceptions=True)
        self._bg = []

    def record(self, sym: str) -> PositionRecord | None:
        return self.book.live(sym)

    def live_count(self) -> int:
        return self.book.live_count()

    def open(self, sym: str, direction: int, signal: SignalLike) -> bool:
        """Reserve the slot synchronously and spawn the entry (§8.2); False (and a logged refusal) if refused."""
        now = self.clock.now()
        d = side_dir(direction)
        reason = self._open_refusal(sym, now)
        if reason is None:
            top = self.storage.best(sym)
            inst = self.instruments[sym]
            bps = to_decimal(self.xs.passive_improve_bps) / Decimal(10_000)
            if d == 1:
                p0 = inst.floor_tick(to_decimal(top.best_bid) * (1 - bps))
            else:
                p0 = inst.ceil_tick(to_decimal(top.best_ask) * (1 + bps))
            decision = self.risk.size(sym, p0, self.equity, self.available)
            if not decision.ok:
                reason = f"sizing:{decision.reason}"
        if reason is not None:
            self.refusals.append((now, sym, reason))
            logger.info("open {} {} refused: {}", sym, "BUY" if d == 1 else "SELL", reason)
            return False
        try:
            sl_pct, tp_pct = self.risk.distances(sym, float(signal.range_pct), float(signal.atr_pct))
            lifetime = self.risk.lifetime(float(signal.std_pct))
        except ValueError as e:  # a signal without a usable volatility block never trades
            self.refusals.append((now, sym, "bad_signal"))
            logger.warning("open {} refused: {}", sym, e)
            return False
        rec = PositionRecord(
            symbol=sym, position_id=make_position_id(now, self._seq), side=d, state=PositionState.OPENING,
            target_qty=decision.qty, created_at=now, sl_pct=sl_pct, tp_pct=tp_pct,
            max_lifetime_sec=lifetime, signal=signal,
            signal_ts=getattr(signal, "ts", None), signal_summary=_summary(signal),
            decision_mid=(top.best_bid + top.best_ask) / 2.0)
        self._seq += 1
        self.book.add(rec)
        self._entry_tasks[rec.position_id] = self.spawn(self._run_entry(rec, p0), f"entry-{rec.position_id}")
        inst = self.instruments[sym]
        logger.info("open {} {} q={} P0={} pid={}", sym, rec.side_name, inst.fmt_qty(decision.qty), fmt_px(inst, p0),
                    rec.position_id)
        return True

    def close(self, sym: str, reason: str, *, reenter_signal: SignalLike | None = None) -> bool:
        """Close an OPEN position at market, reduce-only (§8.5); False unless the record is OPEN."""
        if reason not in CLOSE_TAGS:
            raise ValueError(f"close reason {reason!r} not in {CLOSE_TAGS}")
        rec = self.book.live(sym)
        if rec is None or rec.state != PositionState.OPEN:
            return False
        self.begin_close(rec, reason, reenter_signal)
        return True

    # ============================================================================================ internals
    async def _run_entry(self, rec: PositionRecord, p0: Decimal) -> None:
        try:
            await run_entry(self, rec, p0)
        finally:
            self._entry_tasks.pop(rec.position_id, None)

    def new_position_id(self, now: float) -> str:
        pid = make_position_id(now, self._seq)
        self._seq += 1
        return pid

    @property
    def _last_reconcile(self) -> float:
        """When the last full reconciliation started (kept for the scenario tests; the state is ``sync``)."""
        return self.sync.last_reconcile

    def _open_refusal(self, sym: str, now: float) -> str | None:
        if not self._started or self._stopping:
            return "executor_not_running"
        if self.stream_watch is not None and self.stream_watch.blocked:
            return "private_stream_down"
        if sym not in self.instruments:
            return "unknown_symbol"
        if self.book.live(sym) is not None:
            return "position_exists"
        if self.book.live_count() >= self.settings.risk.max_open_positions:
            return "max_open_positions"
        if not self.storage.book_valid(sym, now) or self.storage.best(sym) is None:
            return "book_invalid"
        return None

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            if isinstance(exc, KeyboardInterrupt | SystemExit):  # a stop signal landed in this task: not its failure
                return
            self.task_errors.append(exc)
            logger.opt(exception=exc).error("executor task {} failed", task.get_name())

    async def send(self, name: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """An order-mutating request: token buckets, then retries on rate-limit codes and timeouts."""
        assert self.limiter is not None, "Executor.start() first"
        return await send_with_retries(self.limiter, self.xs.rest_retry_attempts, self.requests, name, fn, *args, **kw)

    # ------------------------------------------------------------------------------------------ events
    async def _consume(self) -> None:
        while True:
            ev = await self.exchange.events.get()
            async with self.sync.lock:  # events arriving during a reconciliation are applied after it
                self.apply_event(ev)

    def apply_event(self, ev: PrivateEvent) -> None:
        self.last_event_at = self.clock.now()
        if isinstance(ev, Execution):
            self.apply_execution(ev)
        elif isinstance(ev, OrderUpdate):
            self.apply_order(ev)
        elif isinstance(ev, PositionUpdate):
            self.apply_position(ev)
        elif isinstance(ev, WalletUpdate):
            self.apply_wallet(ev)

    def apply_wallet(self, w: WalletUpdate) -> None:
        self.equity = w.total_margin_balance if w.total_margin_balance > 0 else w.total_equity
        self.available = w.available_balance

    def apply_order(self, u: OrderUpdate) -> None:
        rec = record_for_order(self.book, self.prefix, u.symbol, u.order_link_id)
        if rec is None:
            return
        key = u.order_link_id or u.order_id
        prev = rec.orders.get(key)
        if prev is not None and prev.is_final and not u.is_final:
            return  # a stale non-final update after the final one
        rec.orders[key] = u
        if u.status == "Rejected":
            logger.warning("{} order {} rejected: {}", u.symbol, key, u.reject_reason)
        rec.notify()

    def apply_execution(self, ex: Execution) -> None:
        if not self.book.first_seen(ex.exec_id):  # book-wide: a fill (WS or REST copy) is attributed at most once
            return
        self.sync.last_exec_ts = max(self.sync.last_exec_ts, ex.ts)
        if ex.exec_type != "Funding":
            self.sync.advance_fence(ex.symbol, ex.ts)
        rec = record_for_execution(self.book, self.prefix, ex)
        if rec is None or not rec.live:
            if ex.exec_type != "Funding":
                self.orphans.append(ex)
                logger.warning("{} fill {} ({} {} @ {}) matches no live record", ex.symbol, ex.exec_id, ex.side,
                               ex.exec_qty, ex.exec_price)
            return
        if ex.exec_type == "Funding":
            rec.funding += ex.exec_fee
            return
        fill = Fill.from_execution(ex, self.maker_rate, self.taker_rate)
        if side_dir(ex.side) == rec.side:
            rec.entry_fills.append(fill)
            rec.qty += ex.exec_qty
            if rec.exchange_since is None or ex.ts < rec.exchange_since:
                rec.exchange_since = ex.ts
            if rec.state != PositionState.OPENING:
                rec.avg_entry = rec.entry_vwap()
                rec.meta["note"] = "entry fill after OPEN"
                logger.warning("{} entry-side fill {} while {}", rec.symbol, ex.exec_id, rec.state)
        else:
            rec.exit_fills.append(fill)
            rec.qty -= ex.exec_qty
            if rec.qty < 0:
                logger.error("{} position {} flipped by an exit fill ({})", rec.symbol, rec.position_id, rec.qty)
                rec.meta["note"] = f"flipped:{rec.qty}"
        rec.notify()
        if rec.qty <= 0 and rec.state in (PositionState.OPEN, PositionState.CLOSING) and rec.exit_fills:
            closing.finalize_close(self, rec)

    def apply_position(self, p: PositionUpdate) -> None:
        rec = self.book.live(p.symbol)
        if rec is None:
            return
        if self.sync.older(p):
            return  # older than fills already applied (REST ran ahead of the stream): a past state, not news
        rec.exchange_position = p
        if rec.first_cum_realised is None:
            rec.first_cum_realised = p.cum_realised_pnl
        rec.notify()
        if rec.state == PositionState.OPEN and p.size > 0 and rec.protection == Protection.SET \
                and p.ts >= rec.protection_sent_at and (p.take_profit != rec.tp or p.stop_loss != rec.sl):
            inst = self.instruments[p.symbol]
            logger.warning("{} exchange TP/SL {}/{} differ from the book {}/{}: re-applying", p.symbol,
                           fmt_px(inst, p.take_profit), fmt_px(inst, p.stop_loss), fmt_px(inst, rec.tp),
                           fmt_px(inst, rec.sl))
            rec.protection = Protection.PENDING
            self.spawn_protection(rec)
        if p.size == 0 and rec.state in (PositionState.OPEN, PositionState.CLOSING) and rec.qty > 0 \
                and rec.position_id not in self._resolving:
            self._resolving.add(rec.position_id)
            self.spawn(self._resolve_flat(rec), f"flat-{rec.position_id}")

    async def _resolve_flat(self, rec: PositionRecord) -> None:
        """The exchange says flat but our fills do not (yet): wait for the executions, else fetch them."""
        try:
            if not await rec.wait_until(lambda: not rec.live, self.xs.close_confirm_timeout_sec):
                await self.reconcile_symbol(rec.symbol)
        finally:
            self._resolving.discard(rec.position_id)

    # ------------------------------------------------------------------------------------------ OPEN
    async def mark_open(self, rec: PositionRecord, entry_reason: str) -> None:
        """§8.2.7: e = VWAP of all entry fills, SL/TP from e, protection, then the OPEN row."""
        inst = self.instruments[rec.symbol]
        rec.state = PositionState.OPEN
        rec.entry_reason = entry_reason
        rec.avg_entry = rec.entry_vwap()
        rec.opened_at = min(f.ts for f in rec.entry_fills)
        assert rec.avg_entry is not None
        rec.sl, rec.tp = self.risk.sltp_prices(rec.symbol, rec.side, rec.avg_entry, rec.sl_pct, rec.tp_pct)
        rec.dust = rec.qty < inst.min_order_qty
        logger.info("{} OPEN {} {} @ {} ({}) SL={} TP={}", rec.symbol, rec.side_name, inst.fmt_qty(rec.qty),
                    fmt_px(inst, rec.avg_entry, VWAP_EXTRA_DECIMALS), entry_reason, fmt_px(inst, rec.sl),
                    fmt_px(inst, rec.tp))
        if rec.dust:
            self.begin_close(rec, "PROTECTION_FAILED")
            rec.meta["note"] = "dust"
        else:
            await self._ensure_protection(rec)
        self.write_open(rec, self.clock.now())

    def write_open(self, rec: PositionRecord, ts: float) -> None:
        if rec.open_logged:
            return
        rec.open_logged = True
        if self.trade_log is not None:
            self.trade_log.write_open(rec, self.instruments[rec.symbol], ts)

    def drop(self, rec: PositionRecord, reason: str) -> None:
        rec.state = PositionState.DROPPED
        rec.drop_reason = reason
        self.book.retire(rec)
        self.dropped.append(rec)
        rec.notify()
        logger.info("{} entry {} dropped: {}", rec.symbol, rec.position_id, reason)

    def spawn_protection(self, rec: PositionRecord) -> None:
        if rec.position_id in self._protecting:
            return
        self.spawn(self._ensure_protection(rec), f"protect-{rec.position_id}")

    async def _ensure_protection(self, rec: PositionRecord) -> None:
        """:func:`protection.protect`, at most one at a time per position."""
        if rec.position_id in self._protecting:
            return
        self._protecting.add(rec.position_id)
        try:
            await protect(self, rec)
        finally:
            self._protecting.discard(rec.position_id)

    # ------------------------------------------------------------------------------------------ close
    def begin_close(self, rec: PositionRecord, reason: str, reenter: SignalLike | None = None) -> None:
        rec.state = PositionState.CLOSING
        rec.close_intent = reason
        rec.close_started_at = self.clock.now()
        rec.reenter_signal = reenter
        rec.notify()
        self._close_tasks[rec.position_id] = self.spawn(closing.close_task(self, rec), f"close-{rec.position_id}")

    def force_flat(self, rec: PositionRecord, price: Decimal | None) -> None:
        """The exchange is flat but the exits cannot be fetched: a synthetic exit (:func:`closing.force_flat`)."""
        closing.force_flat(self, rec, price)

    # ------------------------------------------------------------------------------------------ monitor
    async def _monitor(self) -> None:
        """Every ``monitor_positions_interval_sec``: :meth:`monitor_tick`, and a reconcile once
        ``reconcile_interval_sec`` has passed since the last one started (a timer chain, :func:`run_periodic`)."""
        interval = self.xs.reconcile_interval_sec
        clock = self.clock

        def tick() -> None:
            self.monitor_tick()
            if clock.now() - self.sync.last_reconcile >= interval:
                self.spawn(reconcile.periodic_reconcile(self), "reconcile")

        await run_periodic(self.settings.trading.monitor_positions_interval_sec, tick)

    def monitor_tick(self) -> None:
        now = self.clock.now()
        for rec in self.book.live_records():
            if rec.state == PositionState.OPEN:
                if rec.opened_at is not None and now - rec.opened_at >= rec.max_lifetime_sec:
                    self.begin_close(rec, "TIME_EXIT")
                elif rec.protection != Protection.SET:
                    self.spawn_protection(rec)
            elif rec.state == PositionState.CLOSING:
                task = self._close_tasks.get(rec.position_id)
                started = rec.close_sent_at or rec.close_started_at or now
                if (task is None or task.done()) and now - started >= self.xs.close_confirm_timeout_sec:
                    self._close_tasks[rec.position_id] = self.spawn(closing.close_task(self, rec),
                                                                     f"close-{rec.position_id}")

    # ------------------------------------------------------------------------------------------ reconcile
    async def reconcile_symbol(self, sym: str) -> None:
        """One symbol's executions and position from REST (:func:`reconcile.reconcile_symbol`)."""
        await reconcile.reconcile_symbol(self, sym)

    async def refresh_orders(self) -> None:
        """§8.1: every working bot order's state from REST (:func:`reconcile.refresh_orders`)."""
        await reconcile.refresh_orders(self)

    async def refresh_account(self, symbols: Sequence[str], *, wallet: bool = False) -> None:
        """§8.1/§8.4: positions and executions of ``symbols`` from REST (:func:`reconcile.refresh_account`)."""
        await reconcile.refresh_account(self, symbols, wallet=wallet)

    async def reconcile(self) -> None:
        """§8.7: the full reconciliation (:func:`reconcile.reconcile`)."""
        await reconcile.reconcile(self)


def _summary(signal: Any) -> str:
    fn = getattr(signal, "summary", None)
    return str(fn()) if callable(fn) else ""
