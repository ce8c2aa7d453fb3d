"""The Executor (STRATEGY.md §8): the position book, entries, protection, monitor, closes and reconciliation.

It only talks to the ``Exchange`` port and reads time from the injected clock, so the same object trades live, on
paper and in replay. Private events are consumed by one task and applied synchronously to the book; the entry,
protection and close tasks wait on a record's change signal. Every order-mutating request passes the token buckets.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from loguru import logger

from bot.clock import Clock
from bot.execution.close_reasons import CloseReasonDetector
from bot.execution.fills import Fill
from bot.execution.order_ids import CLOSE_TAGS, format_link_id, make_position_id, parse_link_id
from bot.execution.positions import (
    ZERO,
    PositionBook,
    PositionRecord,
    PositionState,
    Protection,
    compute_pnl,
)
from bot.execution.rate_limit import OrderRateLimiter
from bot.execution.stream_watch import StreamWatch
from bot.execution.trade_log import TradeLog
from bot.instruments import Instrument, InstrumentRegistry, to_decimal
from bot.ports import (
    ERR_LEVERAGE_NOT_MODIFIED,
    ERR_RATE_LIMIT,
    ERR_REDUCE_ONLY,
    Exchange,
    ExchangeError,
    Execution,
    OrderRequest,
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
VWAP_EXTRA_DECIMALS = 2


class SignalLike(Protocol):
    """What the executor needs of a Signal (bot/analysis/signals.py)."""

    symbol: str
    ts: float
    range_pct: float
    atr_pct: float
    std_pct: float

    def summary(self) -> str: ...


class StorageLike(Protocol):
    def book_valid(self, sym: str, now: float) -> bool: ...
    def best(self, sym: str) -> Any: ...
    def last_price(self, sym: str) -> float | None: ...


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
        self._lock = asyncio.Lock()
        self._seq = 0
        self._started = False
        self._stopping = False
        self._last_exec_ts = 0.0
        self._last_reconcile = 0.0
        # symbol → exchange time of the newest account change the book has applied (a trade execution, a close):
        # a position snapshot/event not newer than it predates what we know and must not adopt or flatten
        self._fence: dict[str, float] = {}
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
        self._apply_wallet(await self.exchange.get_wallet())
        if self.trade_log is not None and self.trade_log.path is not None:
            n = self.risk.rebuild_from_trades_csv(self.trade_log.path)
            logger.info("risk history rebuilt from {} CLOSE rows", n)
        self._last_exec_ts = now - ADOPT_EXEC_LOOKBACK_SEC
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
        from bot.execution.entry import run_entry  # entry imports this module's types

        self._entry_tasks[rec.position_id] = self._spawn(run_entry(self, rec, p0), f"entry-{rec.position_id}")
        inst = self.instruments[sym]
        logger.info("open {} {} q={} P0={} pid={}", sym, rec.side_name, inst.fmt_qty(decision.qty), _px(inst, p0),
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

    def _spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.task_errors.append(exc)
            logger.opt(exception=exc).error("executor task {} failed", task.get_name())

    async def send(self, name: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """An order-mutating request: token buckets, then retries on rate-limit codes and timeouts."""
        assert self.limiter is not None, "Executor.start() first"
        attempts = self.xs.rest_retry_attempts
        for i in range(attempts + 1):
            await self.limiter.acquire()
            self.requests[name] += 1
            try:
                return await fn(*args, **kw)
            except ExchangeError as e:
                if e.code != ERR_RATE_LIMIT or i == attempts:
                    raise
                logger.warning("{} rate-limited ({}), retry {}", name, e, i + 1)
            except (TimeoutError, ConnectionError) as e:
                if i == attempts:
                    raise
                logger.warning("{} failed transiently ({!r}), retry {}", name, e, i + 1)
            await asyncio.sleep(0.25 * 2 ** i)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------------ events
    async def _consume(self) -> None:
        while True:
            ev = await self.exchange.events.get()
            async with self._lock:  # events arriving during a reconciliation are applied after it
                self.apply_event(ev)

    def apply_event(self, ev: PrivateEvent) -> None:
        self.last_event_at = self.clock.now()
        if isinstance(ev, Execution):
            self.apply_execution(ev)
        elif isinstance(ev, OrderUpdate):
            self.apply_order(ev)
        elif isinstance(ev, PositionUpdate):
            self._apply_position(ev)
        elif isinstance(ev, WalletUpdate):
            self._apply_wallet(ev)

    def _apply_wallet(self, w: WalletUpdate) -> None:
        self.equity = w.total_margin_balance if w.total_margin_balance > 0 else w.total_equity
        self.available = w.available_balance

    def _rec_for(self, symbol: str, link_id: str) -> PositionRecord | None:
        link = parse_link_id(link_id, self.prefix)
        if link is not None:
            rec = self.book.by_pid(link.position_id)
            if rec is not None:
                return rec
        return self.book.live(symbol)

    def _rec_for_exec(self, ex: Execution) -> PositionRecord | None:
        """Our orderLinkId names the record (live or finished). A fill without one (exchange TP/SL, liquidation,
        manual) goes to the live record only if it is not older on the exchange than that record's first fill (or
        adopting snapshot): a late exit of an earlier position must not land on its successor."""
        link = parse_link_id(ex.order_link_id, self.prefix)
        if link is not None:
            rec = self.book.by_pid(link.position_id)
            if rec is not None:
                return rec
        rec = self.book.live(ex.symbol)
        if rec is None or ex.exec_type == "Funding":
            return rec
        if rec.exchange_since is None:
            return rec if side_dir(ex.side) == rec.side else None  # an exit of a record that holds nothing yet
        return rec if ex.ts >= rec.exchange_since else None

    def _advance_fence(self, symbol: str, ts: float) -> None:
        if ts > self._fence.get(symbol, float("-inf")):
            self._fence[symbol] = ts

    def _predates(self, p: PositionUpdate) -> bool:
        """A REST position snapshot not newer than the last account change applied for its symbol (equal times are
        ambiguous: the next reconciliation decides)."""
        return p.ts <= self._fence.get(p.symbol, float("-inf"))

    def apply_order(self, u: OrderUpdate) -> None:
        rec = self._rec_for(u.symbol, u.order_link_id)
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
        self._last_exec_ts = max(self._last_exec_ts, ex.ts)
        if ex.exec_type != "Funding":
            self._advance_fence(ex.symbol, ex.ts)
        rec = self._rec_for_exec(ex)
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
            self._finalize_close(rec)

    def _apply_position(self, p: PositionUpdate) -> None:
        rec = self.book.live(p.symbol)
        if rec is None:
            return
        if p.ts < self._fence.get(p.symbol, float("-inf")):
            return  # older than fills already applied (REST ran ahead of the stream): a past state, not news
        rec.exchange_position = p
        if rec.first_cum_realised is None:
            rec.first_cum_realised = p.cum_realised_pnl
        rec.notify()
        if rec.state == PositionState.OPEN and p.size > 0 and rec.protection == Protection.SET \
                and p.ts >= rec.protection_sent_at and (p.take_profit != rec.tp or p.stop_loss != rec.sl):
            inst = self.instruments[p.symbol]
            logger.warning("{} exchange TP/SL {}/{} differ from the book {}/{}: re-applying", p.symbol,
                           _px(inst, p.take_profit), _px(inst, p.stop_loss), _px(inst, rec.tp), _px(inst, rec.sl))
            rec.protection = Protection.PENDING
            self.spawn_protection(rec)
        if p.size == 0 and rec.state in (PositionState.OPEN, PositionState.CLOSING) and rec.qty > 0 \
                and rec.position_id not in self._resolving:
            self._resolving.add(rec.position_id)
            self._spawn(self._resolve_flat(rec), f"flat-{rec.position_id}")

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
                    _px(inst, rec.avg_entry, VWAP_EXTRA_DECIMALS), entry_reason, _px(inst, rec.sl), _px(inst, rec.tp))
        if rec.dust:
            self.begin_close(rec, "PROTECTION_FAILED")
            rec.meta["note"] = "dust"
        else:
            from bot.execution.protection import ensure_protection

            await ensure_protection(self, rec)
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
        from bot.execution.protection import ensure_protection

        self._spawn(ensure_protection(self, rec), f"protect-{rec.position_id}")

    # ------------------------------------------------------------------------------------------ close
    def begin_close(self, rec: PositionRecord, reason: str, reenter: SignalLike | None = None) -> None:
        rec.state = PositionState.CLOSING
        rec.close_intent = reason
        rec.close_started_at = self.clock.now()
        rec.reenter_signal = reenter
        rec.notify()
        self._close_tasks[rec.position_id] = self._spawn(self._close_task(rec), f"close-{rec.position_id}")

    async def _close_task(self, rec: PositionRecord) -> None:
        """Reduce-only Market IOC for the book qty, then wait for flat; reconcile if it does not come (§8.5)."""
        inst = self.instruments[rec.symbol]
        while rec.state == PositionState.CLOSING and rec.qty > 0:
            rec.close_attempts += 1
            link = format_link_id(self.prefix, rec.position_id, "C", rec.close_attempts, rec.close_intent or "")
            rec.order_links.append(link)
            qty = min(rec.qty, inst.max_mkt_order_qty)
            req = OrderRequest(symbol=rec.symbol, side=rec.close_side, order_type="Market", qty=qty,  # type: ignore[arg-type]
                               order_link_id=link, time_in_force="IOC", reduce_only=True)
            rec.close_sent_at = self.clock.now()
            try:
                await self.send("place_close", self.exchange.place_order, req)
            except ExchangeError as e:
                if e.code == ERR_REDUCE_ONLY:
                    # the exchange already closed it (TP/SL/liquidation): its executions carry the reason
                    logger.info("{} close {} rejected reduce-only: exchange closed it", rec.symbol, link)
                    if not await rec.wait_until(lambda: not rec.live, self.xs.close_confirm_timeout_sec):
                        await self.reconcile_symbol(rec.symbol)
                    return
                logger.warning("{} close {} failed: {}; retry on a monitor tick", rec.symbol, link, e)
                return
            if await rec.wait_until(lambda qty=rec.qty - qty: not rec.live or rec.qty <= qty,
                                    self.xs.close_confirm_timeout_sec):
                continue  # flat (loop ends) or a max-market-qty slice done (next slice)
            await self.reconcile_symbol(rec.symbol)
            return  # still open: the monitor retries after close_confirm_timeout_sec

    def _finalize_close(self, rec: PositionRecord) -> None:
        """qty reached 0: PnL from our fills, the reason from their evidence, the CLOSE row, history, callbacks."""
        inst = self.instruments[rec.symbol]
        now = self.clock.now()
        rec.state = PositionState.CLOSED
        rec.closed_at = max(f.ts for f in rec.exit_fills) if rec.exit_fills else now
        rec.exit_price = rec.exit_vwap()
        self._advance_fence(rec.symbol, rec.closed_at)
        rec.gross_pnl, rec.fees, rec.net_pnl = compute_pnl(rec)
        assert rec.avg_entry is not None
        verdict = self.detector.detect(side=rec.side, e=rec.avg_entry, sl=rec.sl, tp=rec.tp,
                                       close_intent=rec.close_intent, exit_fills=rec.exit_fills,
                                       tick_size=inst.tick_size)
        rec.close_reason = verdict.reason.value
        rec.close_source = verdict.source
        rec.meta = {"orders": ",".join(rec.order_links), **verdict.meta, **rec.meta}
        rec.meta["exch_fee"] = str(sum((f.exchange_fee for f in rec.entry_fills + rec.exit_fills), ZERO))
        p = rec.exchange_position
        if p is not None and rec.first_cum_realised is not None:
            rec.meta["exch_closed_pnl"] = str(p.cum_realised_pnl - rec.first_cum_realised)
        if rec.funding:
            rec.meta["funding"] = str(rec.funding)
        self.book.retire(rec)
        self.closed.append(rec)
        if rec.opened_at is not None:
            self.write_open(rec, rec.opened_at)
        if self.trade_log is not None:
            self.trade_log.write_close(rec, inst)
        self.risk.record_close(rec.symbol, rec.net_pnl, rec.close_reason, rec.closed_at)
        logger.info("{} CLOSED {} {} @ {} reason={} net={:.6f}", rec.symbol, rec.position_id, rec.side_name,
                    _px(inst, rec.exit_price, VWAP_EXTRA_DECIMALS), rec.close_reason, rec.net_pnl)
        rec.notify()
        if self.on_closed is not None:
            try:
                self.on_closed(rec)
            except Exception:  # the orchestrator's bug must not corrupt the book
                logger.exception("on_closed callback failed")
        if rec.reenter_signal is not None:
            started = rec.close_started_at if rec.close_started_at is not None else now
            if now - started <= self.xs.close_confirm_timeout_sec:
                ok = self.open(rec.symbol, -rec.side, rec.reenter_signal)
                logger.info("{} REVERSE re-entry {}", rec.symbol, "started" if ok else "refused")
            else:
                logger.info("{} REVERSE re-entry dropped: flat after {:.1f}s", rec.symbol, now - started)

    def force_flat(self, rec: PositionRecord, price: Decimal | None) -> None:
        """The exchange is flat but the exits cannot be fetched: a synthetic exit without origin (§9 fallback)."""
        px = price if price is not None else (rec.avg_entry or ZERO)
        fee = rec.qty * px * self.taker_rate
        rec.exit_fills.append(Fill(exec_id=f"synthetic-{rec.position_id}", qty=rec.qty, price=px, is_maker=False,
                                   fee=fee, ts=self.clock.now(), origin_known=False))
        rec.meta["note"] = "exit reconstructed from REST snapshot"
        rec.qty = ZERO
        self._finalize_close(rec)

    # ------------------------------------------------------------------------------------------ monitor
    async def _monitor(self) -> None:
        """Every ``monitor_positions_interval_sec``: :meth:`monitor_tick`, and a reconcile once
        ``reconcile_interval_sec`` has passed since the last one started.

        The period is a chain of loop timers rather than a sleeping task: each tick runs where the woken sleeper's
        step would (the next loop pass; in the timer's own pass when the loop's optional ``claim_pass`` says nothing
        else would run in between) and arms the next timer at ``loop.time() + period``, as ``asyncio.sleep`` would.
        Same ticks, same times, same timers, without a future and a task wake-up per period (replay runs hundreds of
        thousands of them). A failing tick fails this task, as before."""
        period = self.settings.trading.monitor_positions_interval_sec
        interval = self.xs.reconcile_interval_sec
        loop = asyncio.get_running_loop()
        clock = self.clock
        done: asyncio.Future[None] = loop.create_future()
        handle: asyncio.TimerHandle | None = None
        claim: Callable[[], bool] = getattr(loop, "claim_pass", None) or (lambda: False)

        def step() -> None:
            nonlocal handle
            if done.done():  # cancelled meanwhile
                return
            try:
                self.monitor_tick()
                if clock.now() - self._last_reconcile >= interval:
                    self._spawn(self._periodic_reconcile(), "reconcile")
            except Exception as e:
                done.set_exception(e)
                return
            handle = loop.call_at(loop.time() + period, fire)

        def fire() -> None:
            nonlocal handle
            handle = None
            if claim():
                step()
            else:
                loop.call_soon(step)

        handle = loop.call_at(loop.time() + period, fire)
        try:
            await done
        finally:
            if handle is not None:
                handle.cancel()

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
                    self._close_tasks[rec.position_id] = self._spawn(self._close_task(rec),
                                                                     f"close-{rec.position_id}")

    # ------------------------------------------------------------------------------------------ reconcile
    async def reconcile_symbol(self, sym: str) -> None:
        rec = self.book.live(sym)
        async with self._lock:
            positions = [p for p in await self.exchange.get_positions(sym) if p.symbol == sym]
            since = rec.created_at - 1.0 if rec is not None else self._last_exec_ts
            for ex in sorted(await self.exchange.get_executions(sym, since), key=lambda e: e.ts):
                self.apply_execution(ex)
            rec = self.book.live(sym)
            flat = not positions or all(p.size == 0 for p in positions)
            stale = any(self._predates(p) for p in positions)
            if rec is not None and rec.state in (PositionState.OPEN, PositionState.CLOSING) and flat and not stale:
                last = self.storage.last_price(sym)
                self.force_flat(rec, to_decimal(last) if last is not None else None)

    async def refresh_orders(self) -> None:
        """§8.1: the state of every working bot order from REST, applied like an ``order`` event."""
        for rec in self.book.live_records():
            for link in list(rec.order_links):
                known = rec.orders.get(link)
                if known is not None and known.is_final:
                    continue
                o = await self.exchange.get_order(rec.symbol, link)
                if o is not None:
                    async with self._lock:
                        self.apply_order(o)

    async def refresh_account(self, symbols: Sequence[str], *, wallet: bool = False) -> None:
        """§8.1/§8.4: positions and executions of ``symbols`` from REST, applied like stream events (a snapshot
        older than the fills applied is ignored, a flat one with fills missing resolves as a stream event would)."""
        for sym in dict.fromkeys(symbols):
            rec = self.book.live(sym)
            since = rec.created_at - 1.0 if rec is not None else self._last_exec_ts
            positions = [p for p in await self.exchange.get_positions(sym) if p.symbol == sym]
            execs = await self.exchange.get_executions(sym, since)
            async with self._lock:
                for ex in sorted(execs, key=lambda e: e.ts):
                    self.apply_execution(ex)
                for p in positions:
                    self._apply_position(p)
        if wallet:
            self._apply_wallet(await self.exchange.get_wallet())

    async def reconcile(self) -> None:
        """§8.7: apply missed executions, close book positions the exchange shows flat, adopt unknown ones,
        cancel bot entry orders without a live record.

        The position snapshots are taken before the executions are fetched, so a fill can land between the two (a
        close racing this reconciliation): a snapshot not newer than the last applied fill neither flattens nor
        adopts anything."""
        async with self._lock:
            self._last_reconcile = self.clock.now()
            snaps = {p.symbol: p for p in await self.exchange.get_positions() if p.size > 0}
            for rec in self.book.live_records():
                if rec.symbol not in snaps:
                    for p in await self.exchange.get_positions(rec.symbol):
                        if p.symbol == rec.symbol:
                            snaps[p.symbol] = p  # flat ones too: their timestamp dates the "flat"
            for ex in sorted(await self.exchange.get_executions(None, self._last_exec_ts), key=lambda e: e.ts):
                self.apply_execution(ex)
            for rec in self.book.live_records():
                snap = snaps.get(rec.symbol)
                if rec.state in (PositionState.OPEN, PositionState.CLOSING) and (snap is None or snap.size == 0) \
                        and (snap is None or not self._predates(snap)):
                    last = self.storage.last_price(rec.symbol)
                    self.force_flat(rec, to_decimal(last) if last is not None else None)
            for sym, p in snaps.items():
                if p.size > 0 and self.book.live(sym) is None and sym in self.instruments:
                    self._adopt(p)
            for o in await self.exchange.get_open_orders():
                link = parse_link_id(o.order_link_id, self.prefix)
                if link is None or link.kind == "C":
                    continue
                rec = self.book.by_pid(link.position_id)
                if rec is None or rec.state != PositionState.OPENING:
                    logger.warning("cancelling orphan bot entry order {}", o.order_link_id)
                    try:
                        await self.send("cancel_orphan", self.exchange.cancel_order, o.symbol, o.order_link_id)
                    except ExchangeError as e:
                        logger.warning("orphan cancel {} failed: {}", o.order_link_id, e)

    async def _periodic_reconcile(self) -> None:
        """The ``reconcile_interval_sec`` pass: a REST failure (rate limit, timestamp, 5xx, timeout) is transient and
        the next interval retries, so it is a warning, not a failed task (an ERROR feeds the kill switch's storm)."""
        try:
            await self.reconcile()
        except (ExchangeError, TimeoutError, ConnectionError) as e:
            logger.warning("periodic reconcile failed ({}: {}); retrying in {:g}s", type(e).__name__, e,
                           self.xs.reconcile_interval_sec)

    def _adopt(self, p: PositionUpdate) -> None:
        if self._predates(p):
            logger.info("{} position snapshot ({} {}) predates the last applied fill: not adopted", p.symbol, p.side,
                        p.size)
            return
        now = self.clock.now()
        row = self.trade_log.find_open_row(p.symbol) if self.trade_log is not None else None
        opened_at, pid = now, make_position_id(now, self._seq)
        self._seq += 1
        if row is not None:
            pid = row["position_id"]
            dt = datetime.fromisoformat(row["ts"])
            opened_at = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        sl_pct, tp_pct = self.risk.distances(p.symbol, 0.0, 0.0)
        rec = PositionRecord(
            symbol=p.symbol, position_id=pid, side=side_dir(p.side), state=PositionState.OPEN, target_qty=p.size,
            created_at=now, sl_pct=sl_pct, tp_pct=tp_pct,
            max_lifetime_sec=self.settings.risk.base_position_lifetime_minutes * 60.0,
            signal_ts=None, signal_summary=row["signal"] if row else "", qty=p.size, avg_entry=p.avg_price,
            opened_at=opened_at, entry_reason=row["reason"] if row else "ADOPTED", open_logged=row is not None,
            exchange_position=p, first_cum_realised=p.cum_realised_pnl, exchange_since=p.ts)
        rec.entry_fills.append(Fill(exec_id=f"adopted-{pid}", qty=p.size, price=p.avg_price, is_maker=False,
                                    fee=p.size * p.avg_price * self.taker_rate, ts=opened_at, origin_known=False))
        rec.meta["adopted"] = "1"
        if p.take_profit > 0 and p.stop_loss > 0:
            rec.tp, rec.sl = p.take_profit, p.stop_loss
            rec.protection = Protection.SET
        else:
            rec.sl, rec.tp = self.risk.sltp_prices(p.symbol, rec.side, p.avg_price, sl_pct, tp_pct)
        self.book.add(rec)
        inst = self.instruments[p.symbol]
        logger.warning("adopted {} {} {} @ {} (pid {})", p.symbol, rec.side_name, inst.fmt_qty(p.size),
                       _px(inst, p.avg_price, VWAP_EXTRA_DECIMALS), pid)
        self.write_open(rec, opened_at)
        if rec.protection != Protection.SET:
            self.spawn_protection(rec)


def _px(inst: Instrument, x: Decimal | float | None, extra: int = 0) -> str:
    """A price for the log with the instrument's tick decimals (+``extra`` for VWAPs, which sit between ticks)."""
    return "-" if x is None else f"{x:.{inst.price_decimals + extra}f}"


def _summary(signal: Any) -> str:
    fn = getattr(signal, "summary", None)
    return str(fn()) if callable(fn) else ""
