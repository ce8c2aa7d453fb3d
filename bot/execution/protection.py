"""Position protection (STRATEGY.md §8.3): exchange-side TP/SL from the average fill, or an immediate close.

If the last trade already breached the SL (or reached the TP) we close at market with that reason; we never
re-anchor the levels. A rejected trading-stop is retried after ``sltp_retry_delay_sec`` up to ``sltp_max_retries``
times (re-checking the breach each time); then the position is closed PROTECTION_FAILED.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

from loguru import logger

from bot.execution.positions import PositionRecord, PositionState, Protection
from bot.instruments import to_decimal
from bot.ports import ERR_NOT_MODIFIED, ExchangeError

if TYPE_CHECKING:
    from bot.execution.host import ExecutorHost


def breach(side: int, last: float | None, sl: Decimal | None, tp: Decimal | None) -> str | None:
    """SL_HIT / TP_HIT if the last trade price is already at or beyond a level, else None."""
    if last is None:
        return None
    px = to_decimal(last)
    if side == 1:
        if sl is not None and px <= sl:
            return "SL_HIT"
        if tp is not None and px >= tp:
            return "TP_HIT"
    else:
        if sl is not None and px >= sl:
            return "SL_HIT"
        if tp is not None and px <= tp:
            return "TP_HIT"
    return None


async def _exchange_matches(ex: ExecutorHost, rec: PositionRecord) -> bool:
    """After "not modified": do the exchange's TP/SL equal ours?"""
    for p in await ex.exchange.get_positions(rec.symbol):
        if p.symbol == rec.symbol and p.size > 0:
            return p.take_profit == rec.tp and p.stop_loss == rec.sl
    return False


async def protect(ex: ExecutorHost, rec: PositionRecord) -> None:
    """Set TP/SL on the exchange for an OPEN ``rec`` (or close it); the caller runs one at a time per position."""
    xs = ex.xs
    failures = 0
    while rec.state == PositionState.OPEN:
        hit = breach(rec.side, ex.storage.last_price(rec.symbol), rec.sl, rec.tp)
        if hit is not None:
            logger.warning("{} {} already breached at entry protection (L={}, SL={}, TP={}): closing", rec.symbol,
                           hit, ex.storage.last_price(rec.symbol), rec.sl, rec.tp)
            ex.begin_close(rec, hit)
            return
        rec.protection_sent_at = ex.clock.now()
        try:
            await ex.send("trading_stop", ex.exchange.set_trading_stop, rec.symbol, take_profit=rec.tp,
                          stop_loss=rec.sl, trigger_by=xs.sltp_trigger_by)
            if rec.state == PositionState.OPEN:
                rec.protection = Protection.SET
            return
        except ExchangeError as e:
            if e.code == ERR_NOT_MODIFIED and await _exchange_matches(ex, rec):
                rec.protection = Protection.SET
                return
            failures += 1
            logger.warning("{} trading-stop rejected ({}), attempt {}/{}", rec.symbol, e, failures,
                           xs.sltp_max_retries + 1)
        if failures > xs.sltp_max_retries:
            rec.protection = Protection.FAILED
            if rec.state == PositionState.OPEN:
                ex.begin_close(rec, "PROTECTION_FAILED")
            return
        await asyncio.sleep(xs.sltp_retry_delay_sec)
