"""The private stream against a real local ``websockets`` server speaking Bybit v5's private protocol.

The server checks the auth signature, pushes frames in Bybit's shapes (the real shape examples under
data/ws/shape-examples and the fake account's), and injects faults: a disconnect mid-stream, a pong that never
comes, malformed JSON, refused reconnects. Asserted: the events and their exchange times, the status transitions and
the reconnect counter. Timings are scaled down (ping 0.1 s, pong timeout 0.3 s, backoff 0.02–0.1 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from pathlib import Path

import pytest
from bybit_account import FakeBybitAccount
from bybit_private_ws_server import PrivateWSServer

from bot.adapters.bybit.auth import (
    ENV_API_KEY,
    ENV_API_SECRET,
    Credentials,
    MissingCredentialsError,
    load_credentials,
    ws_auth_message,
)
from bot.adapters.bybit.backoff import backoff_delays
from bot.adapters.bybit.private_ws import PrivateStream
from bot.clock import WallClock
from bot.ports import Execution, OrderUpdate, PositionUpdate, PrivateEvent, WalletUpdate

KEY, SECRET = "ws-key-41d2", "ws-secret-8e77-aa90"
ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "data" / "ws" / "shape-examples"


async def until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Stream:
    def __init__(self, server: PrivateWSServer, secret: str = SECRET, **kw: float) -> None:
        self.events: list[PrivateEvent] = []
        opts = {"ping_interval_sec": 0.1, "pong_timeout_sec": 0.3, "backoff_base_sec": 0.02, "backoff_cap_sec": 0.1,
                "handshake_timeout_sec": 1.0, **kw}
        self.s = PrivateStream(server.url, Credentials(KEY, secret), WallClock(), self.events.append,
                               rng=random.Random(1), **opts)  # type: ignore[arg-type]
        self.task = asyncio.create_task(self.s.run())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def server() -> AsyncIterator[PrivateWSServer]:
    async with PrivateWSServer(KEY, SECRET) as srv:
        yield srv


@pytest.fixture
async def stream(server: PrivateWSServer) -> AsyncIterator[Stream]:
    st = Stream(server)
    yield st
    await st.close()


async def test_auth_signature_subscribe_and_frames_in_bybit_shapes(server: PrivateWSServer, stream: Stream) -> None:
    await until(lambda: stream.s.status.up)
    assert server.auth_ok == 1 and server.subscribed == [["order", "execution", "position", "wallet"]]
    assert stream.s.status.connects == 1 and stream.s.status.reconnects == 0
    for name in ("execution", "position", "wallet", "order"):
        server.push(json.loads((SHAPES / f"private_ws_{name}.json").read_text()))
    await until(lambda: len(stream.events) >= 3)
    await asyncio.sleep(0.05)
    ex, pos, w = stream.events  # the order example is an option: not ours, ignored
    assert isinstance(ex, Execution) and (ex.symbol, ex.exec_price, ex.exec_qty, ex.side, ex.is_maker) == \
        ("XRPUSDT", D("0.3374"), D("25"), "Sell", False)
    assert ex.ts == 1672364174.443 and ex.stop_order_type == "" and ex.order_type == "Market"   # execTime
    assert isinstance(pos, PositionUpdate) and (pos.side, pos.size, pos.avg_price) == ("Buy", D("75"), D("0.3615"))
    assert pos.ts == 1672364174.455                                                           # creationTime
    assert isinstance(w, WalletUpdate) and w.total_equity == D("19620.93864593") and \
        w.available_balance == D("9511.52641225")


async def test_account_changes_arrive_as_port_events(server: PrivateWSServer, stream: Stream) -> None:
    acct = FakeBybitAccount(KEY, SECRET)
    acct.listeners.append(server.push)
    await until(lambda: stream.s.status.up)
    acct.mark["BTCUSDT"] = D("60000")
    acct.place({"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010", "price": "59990.0",
                "orderLinkId": "nap-1-E1-"})
    acct.fill("nap-1-E1-", D("0.004"), D("59990.0"))
    await until(lambda: len(stream.events) >= 5)
    kinds = [type(e).__name__ for e in stream.events]
    assert kinds == ["OrderUpdate", "OrderUpdate", "Execution", "PositionUpdate", "WalletUpdate"]
    o = stream.events[1]
    assert isinstance(o, OrderUpdate) and (o.status, o.cum_exec_qty, o.leaves_qty, o.avg_price) == \
        ("PartiallyFilled", D("0.004"), D("0.006"), D("59990"))
    assert o.ts == int(acct.orders["nap-1-E1-"]["updated"]) / 1000


async def test_a_wrong_secret_never_comes_up_and_keeps_retrying(server: PrivateWSServer) -> None:
    st = Stream(server, secret="not-the-secret")
    try:
        await until(lambda: server.auth_failed >= 3)
        assert not st.s.status.up and st.s.status.connects == 0 and server.subscribed == []
        assert all("auth refused" in f for f in st.s.failures)
    finally:
        await st.close()


async def test_disconnect_mid_stream_marks_down_then_reconnects(server: PrivateWSServer, stream: Stream) -> None:
    await until(lambda: stream.s.status.up)
    server.accepting = False
    await server.drop_all()
    await until(lambda: not stream.s.status.up)
    down = stream.s.status
    assert down.connects == 1 and down.changed_at > 0
    await asyncio.sleep(0.15)                     # refused reconnects: still down, retrying
    assert not stream.s.status.up and len(stream.s.failures) >= 2
    server.accepting = True
    await until(lambda: stream.s.status.up)
    assert stream.s.status.connects == 2 and stream.s.status.reconnects == 1
    server.push(json.loads((SHAPES / "private_ws_execution.json").read_text()))
    await until(lambda: len(stream.events) == 1)  # the new connection carries events


async def test_a_pong_that_never_comes_drops_the_connection(server: PrivateWSServer, stream: Stream) -> None:
    await until(lambda: stream.s.status.up)
    server.answer_pongs = False
    await until(lambda: any("no pong" in f for f in stream.s.failures), timeout=2.0)
    server.answer_pongs = True
    await until(lambda: stream.s.status.up and stream.s.status.connects == 2)
    assert server.pings >= 2


async def test_malformed_json_reconnects_so_a_reconcile_covers_it(server: PrivateWSServer, stream: Stream) -> None:
    await until(lambda: stream.s.status.up)
    server.push_raw('{"topic":"execution","data":[{"execId": ')
    await until(lambda: stream.s.status.connects == 2)
    assert any("unreadable frame" in f for f in stream.s.failures) and stream.events == []
    server.push({"topic": "execution", "creationTime": 1, "data": [{"symbol": "BTCUSDT"}]})  # shape broken
    await until(lambda: stream.s.status.connects == 3)
    assert any("unreadable execution frame" in f for f in stream.s.failures)


def test_backoff_grows_to_the_cap_with_bounded_jitter() -> None:
    d = backoff_delays(1.0, 8.0, random.Random(3))
    got = [next(d) for _ in range(7)]
    nominal = [1, 2, 4, 8, 8, 8, 8]
    assert all(n / 2 <= g <= n for g, n in zip(got, nominal, strict=True))
    again = backoff_delays(1.0, 8.0, random.Random(3))
    assert [next(again) for _ in range(7)] == got                                               # seeded: repeatable
    assert len(set(got[3:])) == 4                                                               # jittered


def test_ws_auth_message_signs_get_realtime_expires() -> None:
    msg = ws_auth_message(Credentials("k", "s"), now=1_700_000_000.0)
    key, expires, sig = msg["args"]
    assert (msg["op"], key, expires) == ("auth", "k", 1_700_000_010_000)
    assert sig == hmac.new(b"s", b"GET/realtime1700000010000", hashlib.sha256).hexdigest()


def test_credentials_from_env_or_dotenv_with_clear_errors(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f'# keys\nexport {ENV_API_KEY}="file-key"\n{ENV_API_SECRET}=file-secret # comment\n')
    c = load_credentials(env={}, dotenv=env_file)
    assert (c.api_key, c.api_secret) == ("file-key", "file-secret")
    c = load_credentials(env={ENV_API_KEY: "env-key", ENV_API_SECRET: "env-secret"}, dotenv=env_file)
    assert c.api_key == "env-key"                                   # the environment wins
    assert "secret" not in repr(c).replace("api_secret", "") and "key" not in repr(c).replace("api_key", "")
    with pytest.raises(MissingCredentialsError, match=f"missing {ENV_API_SECRET}") as e:
        load_credentials(env={ENV_API_KEY: "k"}, dotenv=tmp_path / "absent.env")
    assert ENV_API_KEY not in str(e.value).split("missing")[1].split(":")[0]
    with pytest.raises(MissingCredentialsError, match=f"{ENV_API_KEY} and {ENV_API_SECRET}"):
        load_credentials(env={}, dotenv=tmp_path / "absent.env")
    c = load_credentials(env={"NAPORRR_API_KEY": "nk", "NAPORRR_API_SECRET": "ns"}, dotenv=tmp_path / "absent.env")
    assert (c.api_key, c.api_secret) == ("nk", "ns")                   # settings' names are the fallback


def test_dotenv_is_git_ignored() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


async def test_a_cancel_is_never_swallowed_whatever_the_moment(server: PrivateWSServer) -> None:
    """``stop()`` cancels the stream task: it must end however the cancel lands (mid-handshake, as an answer arrives,
    during the backoff). With ``asyncio.wait_for`` on Python 3.11 a frame arriving with the cancel swallowed it and the
    task reconnected forever; this loop caught that within a few rounds."""
    rng = random.Random(7)
    for i in range(60):
        st = PrivateStream(server.url, Credentials(KEY, "not-the-secret"), WallClock(), lambda _e: None,
                           backoff_base_sec=0.001, backoff_cap_sec=0.002, rng=random.Random(i))
        task = asyncio.create_task(st.run())
        await asyncio.sleep(rng.uniform(0.0, 0.03))
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done, f"round {i}: the cancelled stream task kept running ({st.failures[-1:]})"
