"""The REAL Executor on the REAL Bybit adapter, against the local HTTP and private WS servers (STRATEGY.md §8.1,
§8.4, §8.7): the private stream fails and the executor keeps its book right from REST.

- stream down ⇒ REST polling: an entry filled while the stream is down still opens (order state via get_order,
  fills via executions), an exchange TP that fires while it is down still closes the record with its real reason;
  new entries are refused until the stream is back and reconciled;
- reconnect ⇒ reconcile before trading: an orphan bot entry order placed while down is cancelled;
- silence ⇒ REST position check: a stream that stays "up" but delivers nothing is caught after pong_timeout_sec;
- secrets never reach any log, even an exception logged with loguru's variable dump.

Wall-clock timings are scaled down (monitor 0.2 s, order poll 0.05 s, pong timeout 1 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D

import pytest
from bybit_account import FakeBybitAccount, install_account_routes
from bybit_http_server import BybitHTTPServer, Reply
from bybit_private_ws_server import PrivateWSServer
from loguru import logger

from bot.adapters.bybit.exchange import BybitExchange, build_bybit_exchange
from bot.analysis.signals import Signal
from bot.clock import WallClock
from bot.events import BookSnapshot, Trade
from bot.execution.executor import Executor
from bot.execution.positions import PositionRecord, PositionState, Protection
from bot.execution.trade_log import TradeLog
from bot.instruments import InstrumentRegistry
from bot.risk import RiskManager
from bot.storage import DataStorage
from settings import Settings

KEY, SECRET = "exec-key-5c1e", "exec-secret-do-not-leak-4b7f9a"
SYM = "BTCUSDT"
REG = InstrumentRegistry.bundled()


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def signal(direction: int) -> Signal:
    action = "BUY" if direction > 0 else "SELL"
    return Signal(symbol=SYM, ts=time.time(), action=action, strength=4, raw_action=action, raw_strength=4,
                  dir=direction, composite=0.5 * direction, ema=0.5 * direction, threshold=0.4, reason="test",
                  cooldown_active=False, cooldown_until=0.0, ohara_score=5, effective_imbalance=30.0 * direction,
                  momentum_score=60.0 * direction, factors={}, spread_bps=0.02, volatility=1.0,
                  frequency_regime="NORMAL", volume_z=0.0, acceleration=0.0, spike=False, confirmation="",
                  confirmation_direction=0, bayesian_signal="", bayesian_p=0.5, informed_direction="",
                  range_pct=0.0, atr_pct=0.0, std_pct=1.0)


class Rig:
    def __init__(self, acct: FakeBybitAccount, http: BybitHTTPServer, ws: PrivateWSServer, ex: BybitExchange,
                 exe: Executor, storage: DataStorage) -> None:
        self.acct, self.http, self.ws, self.ex, self.exe, self.storage = acct, http, ws, ex, exe, storage
        self.closed: list[PositionRecord] = []

    def market(self, bid: float, ask: float) -> None:
        now = time.time()
        self.storage.apply_batch([BookSnapshot(SYM, now, [(bid, 2.0)], [(ask, 2.0)], int(now * 1000)),
                                  Trade(SYM, now, bid, 0.01, "Sell", str(int(now * 1e6)))])

    async def stream_reconciled(self, connects: int) -> None:
        sw = self.exe.stream_watch
        assert sw is not None
        await until(lambda: sw.seen == connects and not sw.blocked)

    async def drop_stream(self) -> None:
        self.ws.accepting = False
        await self.ws.drop_all()
        await until(lambda: not self.ex.stream_status().up)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    acct = FakeBybitAccount(KEY, SECRET, symbols=[SYM], balance="1000")
    s = Settings(_env_file=None, trading={"trade_pairs": [SYM], "monitor_positions_interval_sec": 0.2},
                 execution={"order_poll_interval_sec": 0.05, "close_confirm_timeout_sec": 1.0,
                            "fallback_after_sec": 30.0},
                 websocket={"ping_interval_sec": 0.2, "pong_timeout_sec": 1.0, "reconnect_delay_seconds": 0.05,
                            "reconnect_max_delay_sec": 0.2})
    clock = WallClock()
    with BybitHTTPServer() as http:
        install_account_routes(http, acct)
        async with PrivateWSServer(KEY, SECRET) as ws:
            acct.listeners.append(ws.push)
            ex = build_bybit_exchange(s, demo=True, api_key=KEY, api_secret=SECRET, clock=clock,
                                      rest_url=http.base_url, ws_url=ws.url)
            storage = DataStorage(s, clock, [SYM])
            exe = Executor(s, clock, ex, storage, RiskManager(s, REG), REG, TradeLog(None), symbols=[SYM])
            r = Rig(acct, http, ws, ex, exe, storage)
            exe.on_closed = r.closed.append
            r.market(60000.0, 60000.1)
            try:
                yield r
            finally:
                await exe.stop()
                await ex.stop()


async def start(r: Rig) -> None:
    await r.ex.start()
    await r.exe.start()
    await r.stream_reconciled(1)


async def test_tp_while_the_stream_is_down_closes_from_rest_and_reconnect_reconciles(rig: Rig) -> None:
    rig.acct.open_position(SYM, "Buy", "0.010", "60000", tp="61000", sl="59000")
    await start(rig)
    rec = rig.exe.record(SYM)
    assert rec is not None and rec.state == PositionState.OPEN and rec.protection == Protection.SET  # adopted
    await rig.drop_stream()
    sw = rig.exe.stream_watch
    assert sw is not None
    await until(lambda: sw.blocked)
    assert rig.exe.open(SYM, 1, signal(1)) is False and rig.exe.refusals[-1][2] == "private_stream_down"

    await asyncio.sleep(0.01)
    rig.acct.exchange_close(SYM, "61000", "TakeProfit")              # nobody hears it on the stream
    orphan = "nap-9999999999-E1-"
    rig.acct.place({"symbol": SYM, "side": "Buy", "orderType": "Limit", "qty": "0.001", "price": "50000.0",
                    "orderLinkId": orphan})
    await until(lambda: bool(rig.closed))
    [done] = rig.closed
    assert done.close_reason == "TP_HIT" and done.gross_pnl == D("10")   # (61000 − 60000) · 0.01, from REST fills
    assert sw.polls > 0 and rig.ex.stream_status().up is False
    assert rig.acct.orders[orphan]["status"] == "New"                    # not touched while down

    before = sw.reconciles
    rig.ws.accepting = True
    await rig.stream_reconciled(2)
    assert sw.reconciles == before + 1 and rig.ex.stream_status().reconnects == 1
    await until(lambda: rig.acct.orders[orphan]["status"] == "Cancelled")  # reconcile cancelled the orphan entry
    assert rig.acct.positions[SYM]["size"] == 0 and rig.exe.record(SYM) is None
    rig.market(60000.0, 60000.1)
    assert rig.exe.open(SYM, 1, signal(1)) is True                      # trading again


async def test_an_entry_filled_while_the_stream_is_down_opens_from_rest_polling(rig: Rig) -> None:
    await start(rig)
    assert rig.exe.open(SYM, 1, signal(1)) is True
    await until(lambda: any("-E1-" in k for k in rig.acct.orders))
    link, order = next((k, o) for k, o in rig.acct.orders.items() if "-E1-" in k)
    await until(lambda: (r := rig.exe.record(SYM)) is not None and link in r.orders)   # the stream saw "New"
    await rig.drop_stream()
    queries = rig.http.count("/v5/order/realtime") + rig.http.count("/v5/order/history")
    rig.acct.fill(link, order["qty"], order["price"])                 # filled while nobody listens
    rec = rig.exe.record(SYM)
    assert rec is not None
    await until(lambda: rec.state == PositionState.OPEN and rec.protection == Protection.SET)
    assert rec.qty == order["qty"] and rec.avg_entry == order["price"]
    assert rec.orders[link].status == "Filled"
    assert rig.http.count("/v5/order/cancel") == 0       # polling saw "Filled" first: no blind cancel + 110001
    assert rig.http.count("/v5/order/realtime") + rig.http.count("/v5/order/history") > queries   # §8.1 polling
    pos = rig.acct.positions[SYM]
    assert (pos["tp"], pos["sl"]) == (rec.tp, rec.sl)                  # protection went out over REST


async def test_a_silent_stream_is_caught_by_the_rest_position_check(rig: Rig) -> None:
    rig.acct.open_position(SYM, "Sell", "0.020", "60000", tp="59000", sl="60600")
    await start(rig)
    rig.acct.listeners.clear()                                         # "up", pongs flow, but no events
    await asyncio.sleep(0.01)
    rig.acct.exchange_close(SYM, "60600", "StopLoss")
    sw = rig.exe.stream_watch
    assert sw is not None
    await until(lambda: bool(rig.closed), timeout=4.0)
    assert rig.closed[0].close_reason == "SL_HIT" and rig.closed[0].gross_pnl == D("-12")
    assert sw.silence_checks >= 1 and rig.ex.stream_status().up and rig.ex.stream_status().connects == 1


async def test_rest_failures_while_down_do_not_stop_the_watch(rig: Rig) -> None:
    rig.acct.open_position(SYM, "Buy", "0.010", "60000", tp="61000", sl="59000")
    await start(rig)
    await rig.drop_stream()
    rig.http.inject("/v5/position/list", Reply({"retCode": 502, "retMsg": "bad gateway"}, status=502), times=3)
    await asyncio.sleep(0.01)
    rig.acct.exchange_close(SYM, "59000", "StopLoss")
    await until(lambda: bool(rig.closed))
    sw = rig.exe.stream_watch
    assert sw is not None and sw.rest_errors == 3 and rig.closed[0].close_reason == "SL_HIT"
    assert not any(t.done() for t in rig.exe._bg)


async def test_no_secret_in_logs_reprs_or_exception_dumps(rig: Rig) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE", backtrace=True, diagnose=True)
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Capture(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    old = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        rig.acct.open_position(SYM, "Buy", "0.010", "60000", tp="61000", sl="59000")
        await start(rig)
        await rig.drop_stream()
        rig.ws.accepting = True
        await rig.stream_reconciled(2)
        try:
            await rig.ex.cancel_order(SYM, "nap-nothing-E1-")
        except Exception as e:  # the executor logs failed tasks exactly like this (variables dumped)
            logger.opt(exception=e).error("cancel failed")
        bad = build_bybit_exchange(rig.exe.settings, demo=False, api_key=KEY, api_secret="wrong-" + SECRET,
                                   clock=WallClock(), rest_url=rig.http.base_url, ws_url=rig.ws.url)
        try:
            await bad.get_wallet()
        except Exception as e:
            logger.opt(exception=e).error("wallet failed")
    finally:
        logger.remove(sink)
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old)
    text = "\n".join(lines + records)
    assert "cancel failed" in text and "110001" in text and "wallet failed" in text    # the capture worked
    reprs = [repr(rig.ex), repr(rig.ex.http), repr(rig.ex.stream), str(rig.exe.settings)]
    for secret in (SECRET, KEY):
        assert secret not in text
        assert not any(secret in r for r in reprs)

