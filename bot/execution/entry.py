"""Passive-chase entry (STRATEGY.md §8.2): a limit behind the touch, amended toward the market, then fallback.

Steps: place Limit GTC at P0; every ``reprice_every_sec`` amend toward the market (never past one tick inside the
opposite touch when ``reprice_stay_passive``) up to ``max_reprice_attempts`` amends; once ``min_partial_pct`` of the
target filled, cancel the remainder and await the final order state; at ``fallback_after_sec`` cancel, await the final
fill count F, and send the step-floored remainder by market if it meets the minimums. The quantity that is opened is
always what our own fills say, never what we asked for.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

from loguru import logger

from bot.execution.order_ids import format_link_id
from bot.execution.positions import ZERO, PositionRecord, PositionState
from bot.instruments import Instrument, to_decimal
from bot.ports import ERR_ORDER_NOT_EXISTS, ExchangeError, OrderRequest

if TYPE_CHECKING:
    from bot.execution.host import ExecutorHost


def reprice(side: int, price: Decimal, step_bps: float, best_bid: float | None, best_ask: float | None,
            inst: Instrument, stay_passive: bool) -> Decimal | None:
    """The next chase price, or None when it would not move toward the market (§8.2.3)."""
    step = to_decimal(step_bps) / Decimal(10_000)
    if side == 1:
        new = inst.floor_tick(price * (1 + step))
        if stay_passive and best_ask is not None:
            new = min(new, inst.floor_tick(to_decimal(best_ask)) - inst.tick_size)
        return new if new > price else None
    new = inst.ceil_tick(price * (1 - step))
    if stay_passive and best_bid is not None:
        new = max(new, inst.ceil_tick(to_decimal(best_bid)) + inst.tick_size)
    return new if new < price else None


async def _refresh_order(ex: ExecutorHost, rec: PositionRecord, link: str) -> None:
    """Order state from REST (after "order not exists", or when the stream stayed silent too long)."""
    try:
        o = await ex.exchange.get_order(rec.symbol, link)
    except ExchangeError as e:
        logger.warning("{} get_order {} failed: {}", rec.symbol, link, e)
        return
    if o is not None:
        ex.apply_order(o)


async def _settle(ex: ExecutorHost, rec: PositionRecord, link: str) -> Decimal:
    """Wait for the order's final state and for every fill it reports; REST if the stream is silent. Returns F."""
    xs = ex.xs

    def final() -> bool:
        o = rec.orders.get(link)
        return o is not None and o.is_final

    if not await rec.wait_until(final, xs.max_wait_sec):
        logger.warning("{} order {} state unknown for {}s: querying", rec.symbol, link, xs.max_wait_sec)
        await _refresh_order(ex, rec, link)
    o = rec.orders.get(link)
    cum = o.cum_exec_qty if o is not None else ZERO
    if not await rec.wait_until(lambda: rec.filled_for(link) >= cum, xs.max_wait_sec):
        for e in sorted(await ex.exchange.get_executions(rec.symbol, rec.created_at - 1.0), key=lambda e: e.ts):
            ex.apply_execution(e)
    return rec.filled_for(link)


async def _cancel_and_settle(ex: ExecutorHost, rec: PositionRecord, link: str) -> Decimal:
    o = rec.orders.get(link)
    if o is None or not o.is_final:
        try:
            await ex.send("cancel", ex.exchange.cancel_order, rec.symbol, link)
        except ExchangeError as e:
            if e.code == ERR_ORDER_NOT_EXISTS:  # lost the race with a fill (or already cancelled)
                await _refresh_order(ex, rec, link)
            else:
                logger.warning("{} cancel {} failed: {}", rec.symbol, link, e)
    return await _settle(ex, rec, link)


async def run_entry(ex: ExecutorHost, rec: PositionRecord, p0: Decimal) -> None:
    """The whole entry of ``rec`` from P0: OPEN (via ``mark_open``) or dropped; the caller tracks the task."""
    xs = ex.xs
    sym = rec.symbol
    inst = ex.instruments[sym]
    loop = asyncio.get_running_loop()
    tag = "BUY" if rec.side == 1 else "SELL"
    link = format_link_id(ex.prefix, rec.position_id, "E", 1, tag)
    rec.order_links.append(link)
    q = rec.target_qty
    req = OrderRequest(symbol=sym, side=rec.order_side, order_type="Limit", qty=q, order_link_id=link,  # type: ignore[arg-type]
                       price=p0, time_in_force="GTC")
    try:
        await ex.send("place_entry", ex.exchange.place_order, req)
    except ExchangeError as e:
        ex.drop(rec, f"entry_rejected:{e.code}:{e.msg}")
        return
    threshold = q if xs.require_full_fill else q * to_decimal(xs.min_partial_pct)
    price = p0
    amends = 0
    t0 = loop.time()
    fallback_at = t0 + xs.fallback_after_sec
    next_reprice = t0 + xs.reprice_every_sec

    def accepted() -> bool:
        return rec.filled_for(link) >= threshold

    def order_final() -> bool:
        o = rec.orders.get(link)
        return o is not None and o.is_final

    outcome = "fallback"
    while True:
        if accepted():
            outcome = "accepted"
            break
        if order_final():
            outcome = "final"
            break
        if rec.abort:
            outcome = "abort"
            break
        now = loop.time()
        if now >= fallback_at - 1e-6:
            break
        can_amend = amends < xs.max_reprice_attempts
        if can_amend and now >= next_reprice - 1e-6:
            next_reprice += xs.reprice_every_sec
            top = ex.storage.best(sym)
            new = reprice(rec.side, price, xs.reprice_step_bps, getattr(top, "best_bid", None),
                          getattr(top, "best_ask", None), inst, xs.reprice_stay_passive)
            if new is not None:
                amends += 1
                try:
                    await ex.send("amend", ex.exchange.amend_order, sym, link, price=new)
                    price = new
                except ExchangeError as e:
                    logger.info("{} amend {} -> {} refused: {}", sym, link, new, e)
                    if e.code == ERR_ORDER_NOT_EXISTS:
                        await _refresh_order(ex, rec, link)
            continue
        wake = min(fallback_at, next_reprice) if can_amend else fallback_at
        await rec.wait_until(lambda: accepted() or order_final() or rec.abort, max(0.0, wake - now))

    rec.meta["amends"] = str(amends)
    f_limit = await _cancel_and_settle(ex, rec, link)
    if f_limit >= q:
        await ex.mark_open(rec, "LIMIT")
        return
    if outcome in ("accepted", "abort") and f_limit > 0:
        await ex.mark_open(rec, "LIMIT_PARTIAL")
        return
    # fallback (timer, or the exchange ended our limit order early)
    f_mkt = ZERO
    remainder = inst.floor_step(q - f_limit)
    top = ex.storage.best(sym)
    ref = getattr(top, "best_ask" if rec.side == 1 else "best_bid", None) or ex.storage.last_price(sym)
    if (outcome != "abort" and xs.fallback_mode == "market" and remainder >= inst.min_order_qty and ref is not None
            and remainder * to_decimal(ref) >= inst.min_notional):
        flink = format_link_id(ex.prefix, rec.position_id, "F", 1, tag)
        rec.order_links.append(flink)
        mreq = OrderRequest(symbol=sym, side=rec.order_side, order_type="Market",  # type: ignore[arg-type]
                            qty=min(remainder, inst.max_mkt_order_qty), order_link_id=flink, time_in_force="IOC")
        try:
            await ex.send("place_fallback", ex.exchange.place_order, mreq)
            f_mkt = await _settle(ex, rec, flink)
        except ExchangeError as e:
            logger.warning("{} market fallback {} rejected: {}", sym, flink, e)
    if f_mkt > 0:
        await ex.mark_open(rec, "LIMIT_PLUS_MARKET" if f_limit > 0 else "MARKET_FALLBACK")
    elif f_limit > 0:
        await ex.mark_open(rec, "LIMIT_PARTIAL")  # F < minOrderQty (dust) is closed PROTECTION_FAILED by mark_open
    elif rec.state == PositionState.OPENING:
        ex.drop(rec, "entry_unfilled")
