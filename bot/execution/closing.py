"""Closing a position (STRATEGY.md §8.5, §9): the reduce-only market close and the bookkeeping once it is flat.

Functions over the executor's public surface (:class:`bot.execution.host.ExecutorHost`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from loguru import logger

from bot.execution.fills import Fill
from bot.execution.logfmt import VWAP_EXTRA_DECIMALS, fmt_px
from bot.execution.order_ids import format_link_id
from bot.execution.positions import ZERO, PositionRecord, PositionState, compute_pnl
from bot.ports import ERR_REDUCE_ONLY, ExchangeError, OrderRequest

if TYPE_CHECKING:
    from bot.execution.host import ExecutorHost


async def close_task(host: ExecutorHost, rec: PositionRecord) -> None:
    """Reduce-only Market IOC for the book qty, then wait for flat; reconcile if it does not come (§8.5)."""
    inst = host.instruments[rec.symbol]
    while rec.state == PositionState.CLOSING and rec.qty > 0:
        rec.close_attempts += 1
        link = format_link_id(host.prefix, rec.position_id, "C", rec.close_attempts, rec.close_intent or "")
        rec.order_links.append(link)
        qty = min(rec.qty, inst.max_mkt_order_qty)
        req = OrderRequest(
            symbol=rec.symbol,
            side=rec.close_side,
            order_type="Market",
            qty=qty,  # type: ignore[arg-type]
            order_link_id=link,
            time_in_force="IOC",
            reduce_only=True,
        )
        rec.close_sent_at = host.clock.now()
        try:
            await host.send("place_close", host.exchange.place_order, req)
        except ExchangeError as e:
            if e.code == ERR_REDUCE_ONLY:
                # the exchange already closed it (TP/SL/liquidation): its executions carry the reason
                logger.info("{} close {} rejected reduce-only: exchange closed it", rec.symbol, link)
                if not await rec.wait_until(lambda: not rec.live, host.xs.close_confirm_timeout_sec):
                    await host.reconcile_symbol(rec.symbol)
                return
            logger.warning("{} close {} failed: {}; retry on a monitor tick", rec.symbol, link, e)
            return
        if await rec.wait_until(
            lambda qty=rec.qty - qty: not rec.live or rec.qty <= qty, host.xs.close_confirm_timeout_sec
        ):
            continue  # flat (loop ends) or a max-market-qty slice done (next slice)
        await host.reconcile_symbol(rec.symbol)
        return  # still open: the monitor retries after close_confirm_timeout_sec


def finalize_close(host: ExecutorHost, rec: PositionRecord) -> None:
    """qty reached 0: PnL from our fills, the reason from their evidence, the CLOSE row, history, callbacks."""
    inst = host.instruments[rec.symbol]
    now = host.clock.now()
    rec.state = PositionState.CLOSED
    rec.closed_at = max(f.ts for f in rec.exit_fills) if rec.exit_fills else now
    rec.exit_price = rec.exit_vwap()
    host.sync.advance_fence(rec.symbol, rec.closed_at)
    rec.gross_pnl, rec.fees, rec.net_pnl = compute_pnl(rec)
    assert rec.avg_entry is not None
    verdict = host.detector.detect(
        side=rec.side,
        e=rec.avg_entry,
        sl=rec.sl,
        tp=rec.tp,
        close_intent=rec.close_intent,
        exit_fills=rec.exit_fills,
        tick_size=inst.tick_size,
    )
    rec.close_reason = verdict.reason.value
    rec.close_source = verdict.source
    rec.meta = {"orders": ",".join(rec.order_links), **verdict.meta, **rec.meta}
    rec.meta["exch_fee"] = str(sum((f.exchange_fee for f in rec.entry_fills + rec.exit_fills), ZERO))
    p = rec.exchange_position
    if p is not None and rec.first_cum_realised is not None:
        rec.meta["exch_closed_pnl"] = str(p.cum_realised_pnl - rec.first_cum_realised)
    if rec.funding:
        rec.meta["funding"] = str(rec.funding)
    host.book.retire(rec)
    host.closed.append(rec)
    if rec.opened_at is not None:
        host.write_open(rec, rec.opened_at)
    if host.trade_log is not None:
        host.trade_log.write_close(rec, inst)
    host.risk.record_close(rec.symbol, rec.net_pnl, rec.close_reason, rec.closed_at)
    logger.info(
        "{} CLOSED {} {} @ {} reason={} net={:.6f}",
        rec.symbol,
        rec.position_id,
        rec.side_name,
        fmt_px(inst, rec.exit_price, VWAP_EXTRA_DECIMALS),
        rec.close_reason,
        rec.net_pnl,
    )
    rec.notify()
    if host.on_closed is not None:
        try:
            host.on_closed(rec)
        except Exception:  # the orchestrator's bug must not corrupt the book
            logger.exception("on_closed callback failed")
    if rec.reenter_signal is not None:
        started = rec.close_started_at if rec.close_started_at is not None else now
        if now - started <= host.xs.close_confirm_timeout_sec:
            ok = host.open(rec.symbol, -rec.side, rec.reenter_signal)
            logger.info("{} REVERSE re-entry {}", rec.symbol, "started" if ok else "refused")
        else:
            logger.info("{} REVERSE re-entry dropped: flat after {:.1f}s", rec.symbol, now - started)


def force_flat(host: ExecutorHost, rec: PositionRecord, price: Decimal | None) -> None:
    """The exchange is flat but the exits cannot be fetched: a synthetic exit without origin (§9 fallback)."""
    px = price if price is not None else (rec.avg_entry or ZERO)
    fee = rec.qty * px * host.taker_rate
    rec.exit_fills.append(
        Fill(
            exec_id=f"synthetic-{rec.position_id}",
            qty=rec.qty,
            price=px,
            is_maker=False,
            fee=fee,
            ts=host.clock.now(),
            origin_known=False,
        )
    )
    rec.meta["note"] = "exit reconstructed from REST snapshot"
    rec.qty = ZERO
    finalize_close(host, rec)
