"""REST reconciliation (STRATEGY.md §8.1, §8.4, §8.7): the book brought in line with what the exchange reports.

Missed executions are applied, book positions the exchange shows flat are closed, unknown positions are adopted and
bot entry orders without a live record are cancelled. Everything goes through the executor's public surface
(:class:`bot.execution.host.ExecutorHost`) under its :class:`bot.execution.sync.AccountSync` lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from loguru import logger

from bot.execution.fills import Fill
from bot.execution.logfmt import VWAP_EXTRA_DECIMALS, fmt_px
from bot.execution.order_ids import parse_link_id
from bot.execution.positions import PositionRecord, PositionState, Protection
from bot.instruments import to_decimal
from bot.ports import ExchangeError, PositionUpdate
from bot.risk import side_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.execution.host import ExecutorHost


async def reconcile_symbol(host: ExecutorHost, sym: str) -> None:
    rec = host.book.live(sym)
    async with host.sync.lock:
        positions = [p for p in await host.exchange.get_positions(sym) if p.symbol == sym]
        since = rec.created_at - 1.0 if rec is not None else host.sync.last_exec_ts
        for ex in sorted(await host.exchange.get_executions(sym, since), key=lambda e: e.ts):
            host.apply_execution(ex)
        rec = host.book.live(sym)
        flat = not positions or all(p.size == 0 for p in positions)
        stale = any(host.sync.predates(p) for p in positions)
        if rec is not None and rec.state in (PositionState.OPEN, PositionState.CLOSING) and flat and not stale:
            last = host.storage.last_price(sym)
            host.force_flat(rec, to_decimal(last) if last is not None else None)


async def refresh_orders(host: ExecutorHost) -> None:
    """§8.1: the state of every working bot order from REST, applied like an ``order`` event."""
    for rec in host.book.live_records():
        for link in list(rec.order_links):
            known = rec.orders.get(link)
            if known is not None and known.is_final:
                continue
            o = await host.exchange.get_order(rec.symbol, link)
            if o is not None:
                async with host.sync.lock:
                    host.apply_order(o)


async def refresh_account(host: ExecutorHost, symbols: Sequence[str], *, wallet: bool = False) -> None:
    """§8.1/§8.4: positions and executions of ``symbols`` from REST, applied like stream events (a snapshot
    older than the fills applied is ignored, a flat one with fills missing resolves as a stream event would)."""
    for sym in dict.fromkeys(symbols):
        rec = host.book.live(sym)
        since = rec.created_at - 1.0 if rec is not None else host.sync.last_exec_ts
        positions = [p for p in await host.exchange.get_positions(sym) if p.symbol == sym]
        execs = await host.exchange.get_executions(sym, since)
        async with host.sync.lock:
            for ex in sorted(execs, key=lambda e: e.ts):
                host.apply_execution(ex)
            for p in positions:
                host.apply_position(p)
    if wallet:
        host.apply_wallet(await host.exchange.get_wallet())


async def reconcile(host: ExecutorHost) -> None:
    """§8.7: apply missed executions, close book positions the exchange shows flat, adopt unknown ones,
    cancel bot entry orders without a live record.

    The position snapshots are taken before the executions are fetched, so a fill can land between the two (a
    close racing this reconciliation): a snapshot not newer than the last applied fill neither flattens nor
    adopts anything."""
    async with host.sync.lock:
        host.sync.last_reconcile = host.clock.now()
        snaps = {p.symbol: p for p in await host.exchange.get_positions() if p.size > 0}
        for rec in host.book.live_records():
            if rec.symbol not in snaps:
                for p in await host.exchange.get_positions(rec.symbol):
                    if p.symbol == rec.symbol:
                        snaps[p.symbol] = p  # flat ones too: their timestamp dates the "flat"
        for ex in sorted(await host.exchange.get_executions(None, host.sync.last_exec_ts), key=lambda e: e.ts):
            host.apply_execution(ex)
        for rec in host.book.live_records():
            snap = snaps.get(rec.symbol)
            if (
                rec.state in (PositionState.OPEN, PositionState.CLOSING)
                and (snap is None or snap.size == 0)
                and (snap is None or not host.sync.predates(snap))
            ):
                last = host.storage.last_price(rec.symbol)
                host.force_flat(rec, to_decimal(last) if last is not None else None)
        for sym, p in snaps.items():
            if p.size > 0 and host.book.live(sym) is None and sym in host.instruments:
                adopt(host, p)
        for o in await host.exchange.get_open_orders():
            link = parse_link_id(o.order_link_id, host.prefix)
            if link is None or link.kind == "C":
                continue
            rec = host.book.by_pid(link.position_id)
            if rec is None or rec.state != PositionState.OPENING:
                logger.warning("cancelling orphan bot entry order {}", o.order_link_id)
                try:
                    await host.send("cancel_orphan", host.exchange.cancel_order, o.symbol, o.order_link_id)
                except ExchangeError as e:
                    logger.warning("orphan cancel {} failed: {}", o.order_link_id, e)


async def periodic_reconcile(host: ExecutorHost) -> None:
    """The ``reconcile_interval_sec`` pass: a REST failure (rate limit, timestamp, 5xx, timeout) is transient and
    the next interval retries, so it is a warning, not a failed task (an ERROR feeds the kill switch's storm)."""
    try:
        await host.reconcile()
    except (ExchangeError, TimeoutError, ConnectionError) as e:
        logger.warning("periodic reconcile failed ({}: {}); retrying in {:g}s", type(e).__name__, e,
                       host.xs.reconcile_interval_sec)


def adopt(host: ExecutorHost, p: PositionUpdate) -> None:
    if host.sync.predates(p):
        logger.info(
            "{} position snapshot ({} {}) predates the last applied fill: not adopted", p.symbol, p.side, p.size
        )
        return
    now = host.clock.now()
    row = host.trade_log.find_open_row(p.symbol) if host.trade_log is not None else None
    opened_at, pid = now, host.new_position_id(now)
    if row is not None:
        pid = row["position_id"]
        dt = datetime.fromisoformat(row["ts"])
        opened_at = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    sl_pct, tp_pct = host.risk.distances(p.symbol, 0.0, 0.0)
    rec = PositionRecord(
        symbol=p.symbol,
        position_id=pid,
        side=side_dir(p.side),
        state=PositionState.OPEN,
        target_qty=p.size,
        created_at=now,
        sl_pct=sl_pct,
        tp_pct=tp_pct,
        max_lifetime_sec=host.settings.risk.base_position_lifetime_minutes * 60.0,
        signal_ts=None,
        signal_summary=row["signal"] if row else "",
        qty=p.size,
        avg_entry=p.avg_price,
        opened_at=opened_at,
        entry_reason=row["reason"] if row else "ADOPTED",
        open_logged=row is not None,
        exchange_position=p,
        first_cum_realised=p.cum_realised_pnl,
        exchange_since=p.ts,
    )
    rec.entry_fills.append(
        Fill(
            exec_id=f"adopted-{pid}",
            qty=p.size,
            price=p.avg_price,
            is_maker=False,
            fee=p.size * p.avg_price * host.taker_rate,
            ts=opened_at,
            origin_known=False,
        )
    )
    rec.meta["adopted"] = "1"
    if p.take_profit > 0 and p.stop_loss > 0:
        rec.tp, rec.sl = p.take_profit, p.stop_loss
        rec.protection = Protection.SET
    else:
        rec.sl, rec.tp = host.risk.sltp_prices(p.symbol, rec.side, p.avg_price, sl_pct, tp_pct)
    host.book.add(rec)
    inst = host.instruments[p.symbol]
    logger.warning(
        "adopted {} {} {} @ {} (pid {})",
        p.symbol,
        rec.side_name,
        inst.fmt_qty(p.size),
        fmt_px(inst, p.avg_price, VWAP_EXTRA_DECIMALS),
        pid,
    )
    host.write_open(rec, opened_at)
    if rec.protection != Protection.SET:
        host.spawn_protection(rec)
