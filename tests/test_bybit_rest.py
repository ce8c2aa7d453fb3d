"""The pybit REST adapter against a real local HTTP server answering in Bybit v5's shapes (no mocks, no internet).

pybit is pointed at the server (``endpoint``); the server verifies pybit's HMAC signature on every private route and
keeps a small account ledger (tests/bybit_account.py), so what is asserted is what went over the wire and what came
back through the port.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest
from bybit_account import FakeBybitAccount, install_account_routes
from bybit_http_server import BybitHTTPServer, Reply, Request, envelope
from loguru import logger

from bot.adapters.bybit.exchange import BybitExchange, ClockSkewError, build_bybit_exchange
from bot.clock import WallClock
from bot.ports import Exchange, ExchangeError, OrderRequest
from settings import Settings

KEY, SECRET = "test-key-7f3a", "test-secret-c0ffee-91b2"
SYM = "BTCUSDT"


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, websocket={"enable_private_ws": False}, **kw)


class Rig:
    def __init__(self, acct: FakeBybitAccount, srv: BybitHTTPServer, ex: BybitExchange) -> None:
        self.acct, self.srv, self.ex = acct, srv, ex

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.srv.requests if r.path == path]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    acct = FakeBybitAccount(KEY, SECRET, symbols=[SYM, "ETHUSDT"])
    acct.mark[SYM] = D("60000")
    with BybitHTTPServer() as srv:
        install_account_routes(srv, acct)
        ex = build_bybit_exchange(settings(), demo=True, api_key=KEY, api_secret=SECRET, clock=WallClock(),
                                  rest_url=srv.base_url)
        ex.backoff_base_sec = 0.02
        yield Rig(acct, srv, ex)


def req(link: str, side: str = "Buy", order_type: str = "Limit", qty: str = "0.016", price: str | None = "59988.0",
        **kw: Any) -> OrderRequest:
    return OrderRequest(symbol=SYM, side=side, order_type=order_type, qty=D(qty), order_link_id=link,  # type: ignore[arg-type]
                        price=D(price) if price is not None else None, **kw)


async def test_adapter_satisfies_the_port(rig: Rig) -> None:
    assert isinstance(rig.ex, Exchange)
    assert rig.ex.stream_status().up is False and rig.ex.stream_status().lossless is False


async def test_orders_go_out_signed_as_grid_strings_and_round_trip(rig: Rig) -> None:
    ack = await rig.ex.place_order(req("nap-1-E1-", qty="0.0165", price="59988.04"))
    body = rig.bodies("/v5/order/create")[0]
    assert body["qty"] == "0.016" and body["price"] == "59988.0"        # floored to the step, rounded to the tick
    assert body["category"] == "linear" and body["positionIdx"] == 0 and body["reduceOnly"] is False
    assert ack.order_link_id == "nap-1-E1-" and ack.order_id == rig.acct.orders["nap-1-E1-"]["orderId"]
    await rig.ex.amend_order(SYM, "nap-1-E1-", price=D("59990.06"))
    assert rig.bodies("/v5/order/amend")[0] == {"category": "linear", "symbol": SYM, "orderLinkId": "nap-1-E1-",
                                                "price": "59990.1"}
    assert rig.acct.orders["nap-1-E1-"]["price"] == D("59990.1")
    await rig.ex.cancel_order(SYM, "nap-1-E1-")
    assert rig.acct.orders["nap-1-E1-"]["status"] == "Cancelled"
    assert rig.acct.auth_failures == 0


async def test_bybit_refusals_become_exchange_errors_with_their_codes(rig: Rig) -> None:
    with pytest.raises(ExchangeError) as e:
        await rig.ex.cancel_order(SYM, "nap-x-E1-")
    assert e.value.code == 110001
    with pytest.raises(ExchangeError) as e:
        await rig.ex.place_order(req("nap-1-C1-TIME_EXIT", side="Sell", order_type="Market", price=None,
                                     reduce_only=True, time_in_force="IOC"))
    assert e.value.code == 110017
    await rig.ex.set_leverage(SYM, 10)
    with pytest.raises(ExchangeError) as e:
        await rig.ex.set_leverage(SYM, 10)
    assert e.value.code == 110043
    with pytest.raises(ExchangeError) as e:
        await rig.ex.set_trading_stop(SYM, take_profit=D("61000"), stop_loss=D("59000"))
    assert e.value.code == 10001
    sent = rig.srv.count("/v5/order/create")
    with pytest.raises(ExchangeError) as e:
        await rig.ex.place_order(req("nap-1-E1-", qty="0.0004"))          # floors to zero: never sent
    assert e.value.code == 10001 and rig.srv.count("/v5/order/create") == sent


async def test_a_wrong_secret_is_refused_by_the_server(rig: Rig) -> None:
    bad = build_bybit_exchange(settings(), demo=True, api_key=KEY, api_secret="wrong", clock=WallClock(),
                               rest_url=rig.srv.base_url)
    with pytest.raises(ExchangeError) as e:
        await bad.get_wallet()
    assert e.value.code == 10004 and rig.acct.auth_failures == 1


async def test_reads_map_bybit_shapes_to_port_events(rig: Rig) -> None:
    rig.acct.open_position(SYM, "Buy", "0.010", "60000", tp="61000", sl="59000")
    await rig.ex.place_order(req("nap-2-E1-", qty="0.001", price="59000.0"))
    t0 = time.time()
    [pos] = await rig.ex.get_positions(SYM)
    assert (pos.side, pos.size, pos.avg_price, pos.take_profit, pos.stop_loss) == \
        ("Buy", D("0.01"), D("60000"), D("61000"), D("59000"))
    assert abs(pos.ts - t0) < 1.0                                           # dated by the answer's time
    [flat] = await rig.ex.get_positions("ETHUSDT")
    assert flat.side == "" and flat.size == 0                               # per symbol: flat ones too
    assert [p.symbol for p in await rig.ex.get_positions()] == [SYM]       # all: open ones only
    [o] = await rig.ex.get_open_orders()
    assert (o.order_link_id, o.status, o.price, o.qty, o.cum_exec_qty) == ("nap-2-E1-", "New", D("59000"),
                                                                         D("0.001"), 0)
    market_id = next(k for k, v in rig.acct.orders.items() if v["type"] == "Market")
    done = await rig.ex.get_order(SYM, rig.acct.orders[market_id]["link"] or market_id)
    assert done is None or done.status == "Filled"
    assert (await rig.ex.get_order(SYM, "nap-2-E1-")).status == "New"      # type: ignore[union-attr]
    assert await rig.ex.get_order(SYM, "nap-none-E1-") is None
    [ex] = await rig.ex.get_executions(SYM, since=t0 - 60)
    assert (ex.side, ex.exec_qty, ex.exec_price, ex.is_maker, ex.exec_type) == ("Buy", D("0.01"), D("60000"), False,
                                                                               "Trade")
    assert ex.ts == int(rig.acct.executions[0]["execTime"]) / 1000
    assert await rig.ex.get_executions(SYM, since=time.time() + 60) == []
    w = await rig.ex.get_wallet()
    assert w.total_equity == rig.acct.balance and w.available_balance == rig.acct.balance
    reg = await rig.ex.get_instruments()
    assert set(reg) == {SYM, "ETHUSDT"} and reg[SYM].tick_size == D("0.1")
    assert abs(await rig.ex.server_time() - time.time()) < 1.0
    assert await rig.ex.get_fee_rates(SYM) == (D("0.0002"), D("0.00055"))


async def test_retcode_10006_waits_for_the_reset_and_retries(rig: Rig) -> None:
    rig.srv.inject_rate_limit("/v5/order/realtime", reset_in_ms=250)
    t0 = time.monotonic()
    assert await rig.ex.get_open_orders() == []
    assert rig.srv.count("/v5/order/realtime") == 2 and time.monotonic() - t0 >= 0.2


async def test_http_429_is_a_rate_limit_too(rig: Rig) -> None:
    rig.srv.inject_rate_limit("/v5/account/wallet-balance", http_status=429, reset_in_ms=50)
    assert (await rig.ex.get_wallet()).total_equity == D("1000")
    assert rig.srv.count("/v5/account/wallet-balance") == 2


async def test_rate_limit_that_persists_surfaces_as_10006(rig: Rig) -> None:
    rig.srv.inject_rate_limit("/v5/order/realtime", reset_in_ms=10, times=rig.ex.retry_attempts + 1)
    with pytest.raises(ExchangeError) as e:
        await rig.ex.get_open_orders()
    assert e.value.code == 10006 and rig.srv.count("/v5/order/realtime") == rig.ex.retry_attempts + 1


async def test_an_exhausted_limit_window_delays_the_next_call(rig: Rig) -> None:
    reset = str(int(time.time() * 1000) + 300)
    headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": reset}
    rig.srv.inject("/v5/account/wallet-balance", Reply(envelope({"list": [rig.acct.wallet_row()]}), headers=headers))
    await rig.ex.get_wallet()
    t0 = time.monotonic()
    await rig.ex.get_wallet()
    assert time.monotonic() - t0 >= 0.2


async def test_server_errors_and_slow_answers_are_transient_errors(rig: Rig) -> None:
    rig.srv.inject("/v5/account/wallet-balance", Reply({"retCode": 500, "retMsg": "boom"}, status=502))
    with pytest.raises(ConnectionError):
        await rig.ex.get_wallet()

    def slow(_: Request) -> dict[str, Any]:
        time.sleep(1.0)
        return envelope({})

    rig.srv.route("GET", "/v5/market/time", slow)
    rig.ex.timeout_sec = 0.2
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await rig.ex.server_time()
    assert time.monotonic() - t0 < 0.8


async def test_a_placement_whose_answer_was_lost_is_acknowledged_on_the_retry(rig: Rig) -> None:
    rig.srv.lose_answer("/v5/order/create", Reply("gateway timeout", status=504))
    with pytest.raises(ConnectionError):
        await rig.ex.place_order(req("nap-7-E1-BUY"))                 # placed, but the answer never came
    placed = rig.acct.orders["nap-7-E1-BUY"]
    ack = await rig.ex.place_order(req("nap-7-E1-BUY"))               # the caller's retry: 110072 on the wire
    assert ack.order_id == placed["orderId"] and len(rig.acct.orders) == 1
    assert rig.srv.count("/v5/order/create") == 2
    with pytest.raises(ExchangeError) as e:                           # a duplicate of nothing we placed: refused
        rig.acct.orders["nap-8-E1-BUY"] = dict(placed, link="nap-8-E1-BUY", symbol="ETHUSDT")
        await rig.ex.place_order(req("nap-8-E1-BUY"))
    assert e.value.code == 110072


async def test_start_refuses_a_skewed_clock_and_warns_on_a_large_one(rig: Rig) -> None:
    rig.acct.skew_sec = 30.0
    with pytest.raises(ClockSkewError, match="max_clock_skew_sec"):
        await rig.ex.start()
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING")
    try:
        rig.acct.skew_sec = 3.0
        await rig.ex.start()
    finally:
        logger.remove(sink)
        await rig.ex.stop()
    assert abs(rig.ex.skew_sec - 3.0) < 0.5 and any("off Bybit" in s for s in seen)


async def test_a_timestamp_refusal_remeasures_the_clock_and_says_why(rig: Rig) -> None:
    """10002 on a signed request: the adapter re-measures the clock once (not per request) and names the cause."""
    await rig.ex.start()
    rig.ex._clock_checked_at = float("-inf")                        # as if start were longer ago than the recheck gap
    rig.acct.skew_sec = 0.5                                         # our clock 0.5 s behind: fine for the checks,
    rig.ex.http.recv_window = 100                                   # but a 100 ms window makes every request late
    with pytest.raises(ExchangeError) as e:
        await rig.ex.place_order(req("nap-9-E1-BUY"))
    assert e.value.code == 10002 and "server_timestamp[" in e.value.msg
    assert "clock rechecked: local clock -0." in e.value.msg and "recv_window of 100 ms" in e.value.msg
    assert abs(rig.ex.skew_sec - 0.5) < 0.3 and rig.acct.orders == {}
    times = rig.srv.count("/v5/market/time")
    rig.acct.skew_sec = -30.0
    with pytest.raises(ExchangeError, match="clock measured 0s ago"):  # a burst: no second measurement
        await rig.ex.cancel_order(SYM, "nap-9-E1-BUY")
    assert rig.srv.count("/v5/market/time") == times
    rig.ex._clock_checked_at = float("-inf")
    rig.acct.skew_sec = -2.0
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="ERROR")
    try:
        with pytest.raises(ExchangeError, match="ahead of Bybit's"):  # drifted since start: the error says so
            await rig.ex.get_positions()
    finally:
        logger.remove(sink)
        await rig.ex.stop()
    assert any("10002" in s and "ahead of Bybit" in s for s in seen)


async def test_start_refuses_a_clock_ahead_by_a_second_inside_the_limit(rig: Rig) -> None:
    """Bybit refuses stamps 1 s or more ahead of its clock, so the start check does, though 2 s < the 5 s limit."""
    rig.acct.skew_sec = -2.0
    with pytest.raises(ClockSkewError, match="refuses every signed request"):
        await rig.ex.start()
    rig.acct.skew_sec = -0.5
    await rig.ex.start()                                            # half a second ahead is accepted by both
    try:
        ack = await rig.ex.place_order(req("nap-10-E1-BUY"))
    finally:
        await rig.ex.stop()
    assert ack.order_link_id == "nap-10-E1-BUY"


async def test_calls_run_off_the_event_loop(rig: Rig) -> None:
    """While pybit blocks in its thread, the loop keeps running other work."""
    def slow(_: Request) -> dict[str, Any]:
        time.sleep(0.3)
        return envelope({"timeSecond": str(int(time.time())), "timeNano": str(time.time_ns())})

    rig.srv.route("GET", "/v5/market/time", slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    await rig.ex.server_time()
    t.cancel()
    assert ticks >= 10


def test_demo_and_live_endpoints_come_from_settings() -> None:
    s = Settings(_env_file=None)
    demo = build_bybit_exchange(s, demo=True, api_key=KEY, api_secret=SECRET, clock=WallClock())
    live = build_bybit_exchange(s, demo=False, api_key=KEY, api_secret=SECRET, clock=WallClock())
    assert demo.http.endpoint == "https://api-demo.bybit.com" and demo.http.demo is True
    assert demo.stream is not None and demo.stream.url == "wss://stream-demo.bybit.com/v5/private"
    assert live.http.endpoint == "https://api.bybit.com" and live.http.demo is False
    assert live.stream is not None and live.stream.url == "wss://stream.bybit.com/v5/private"
    assert build_bybit_exchange(settings(), demo=True, api_key=KEY, api_secret=SECRET, clock=WallClock()).stream \
        is None                                                           # enable_private_ws off: REST only


async def test_a_refused_connection_is_a_connection_error() -> None:
    srv = BybitHTTPServer()
    url = srv.base_url
    srv.stop()                                                            # nothing listens there any more
    ex = build_bybit_exchange(settings(), demo=True, api_key=KEY, api_secret=SECRET, clock=WallClock(), rest_url=url)
    with pytest.raises(ConnectionError):
        await ex.get_wallet()
