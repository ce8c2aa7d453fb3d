"""Paper mode in-process: the runner's assembly (``build_bot`` + simulated exchange + public collector) against the
local capture-replaying server. The simulated exchange must see the live feed (the consumer's tee), so a market
order fills at the server's real touch; the bot's book is the server's; a stop returns exit code 0."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from ws_capture_server import DEPTH, CaptureServer

from bot.ports import OrderRequest
from bot.runner import EXIT_OK, RunOptions, assemble, drive
from settings import Settings

SYM = "BTCUSDT"


async def _until(cond: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


async def test_paper_feeds_the_simulated_exchange_and_stops_cleanly(tmp_path: Path) -> None:
    settings = Settings(websocket={"subscription_depth": DEPTH})
    async with CaptureServer(speed=1.0, loop_capture=True) as srv:
        run = await assemble(RunOptions(mode="paper", symbols=(SYM,), ws_url=srv.url, log_dir=tmp_path,
                                        status_every_sec=0.5), settings)
        task = asyncio.create_task(drive(run))
        try:
            storage = run.bot.storage
            await _until(lambda: (b := storage.best(SYM)) is not None and b.valid and run.bot.executor.equity > 0, 15)
            inst = run.bot.instruments[SYM]
            await run.exchange.place_order(OrderRequest(SYM, "Buy", "Market", inst.min_order_qty, "paper-test-1"))
            await _until(lambda: bool(run.exchange.fills), 5)
            fill = run.exchange.fills[0]
            ask = Decimal(repr(min(srv.books[SYM].asks)))
            assert abs(fill.exec_price - ask) / ask < Decimal("0.0005")  # the real touch, within a few ticks
            assert not fill.is_maker
            assert run.monitor.status().startswith("STATUS equity")
        finally:
            await run.bot.stop("test done")
            rc = await asyncio.wait_for(task, 30)
    assert rc == EXIT_OK
    assert run.bot.stop_reason == "test done"
    assert "bot stopped (test done)" in (tmp_path / "bot.log").read_text(encoding="utf-8")
