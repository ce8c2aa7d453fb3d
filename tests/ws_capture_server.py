"""A local Bybit v5 public-linear WebSocket server that replays the real capture, with fault injection.

It answers the way Bybit does (ARCHITECTURE.md §9; STYLE.md §4 "tests against real local servers"):
``subscribe``/``unsubscribe`` acks with ``success`` (more than 10 args in one request is refused, as Bybit refuses
it), ``{"op":"ping"}`` → ``{"op":"ping","ret_msg":"pong","success":true}``, a fresh ``snapshot`` of the server's
current book on every ``orderbook.200.{S}`` subscribe, then the captured deltas and ``publicTrade`` frames.

The market is one global cursor over the capture: it advances only while a client is connected, and a reconnecting
client continues where the last one stopped (the market moved on; its new snapshot says so). The server keeps its
own books, rebuilt from every captured frame it passes whether it was sent or not: that is the reference a test
compares the client's books to. Frame times are shifted so the capture's first frame is received "now" when
streaming starts, which keeps a live bot's staleness checks and lag figures meaningful.

Faults (:class:`Faults`, keyed by frame index into :attr:`CaptureServer.frames`; each fires once):
disconnect, gap (a delta not sent), duplicate, an old delta re-sent later (out of order), malformed JSON, a crossed
delta, a stalled socket (nothing sent and pings unanswered), a symbol muted until it is resubscribed (stale), and
connections whose pings are never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "ws" / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
SHARED_CAPTURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ws" / CAPTURE.name
MAX_ARGS = 10
DEPTH = 200  # the capture's book depth: the only orderbook depth this server serves


def capture_path() -> Path:
    """The project's bundled copy; ``../shared`` beside the clone as a fallback."""
    return CAPTURE if CAPTURE.exists() else SHARED_CAPTURE


@dataclass
class Frame:
    """One captured market frame: ``recv_ts`` (s), the parsed message, its topic's symbol and kind."""

    recv_ts: float
    msg: dict[str, Any]
    symbol: str
    kind: str  # "snapshot" | "delta" | "trade"


def load_frames(path: Path | None = None) -> list[Frame]:
    """The capture's ``orderbook.*`` and ``publicTrade.*`` frames in receive order (acks, tickers, klines dropped)."""
    out: list[Frame] = []
    with gzip.open(path or capture_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            msg = rec["msg"]
            topic = msg.get("topic", "")
            if topic.startswith("orderbook."):
                out.append(Frame(rec["recv_ts"], msg, topic.rpartition(".")[2], msg["type"]))
            elif topic.startswith("publicTrade."):
                out.append(Frame(rec["recv_ts"], msg, topic.rpartition(".")[2], "trade"))
    return out


class RefBook:
    """A plain price→size book rebuilt from frames (independent of ``bot/``), truncated to ``depth`` per side."""

    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.raw: dict[float, tuple[str, str]] = {}  # price → the wire strings (for the snapshots this server sends)
        self.u = 0

    def apply(self, msg: dict[str, Any]) -> None:
        data = msg["data"]
        if msg["type"] == "snapshot" or data["u"] == 1:
            self.bids, self.asks, self.raw = {}, {}, {}
        raw = self.raw
        for side, rows, best_first in ((self.bids, data["b"], True), (self.asks, data["a"], False)):
            for p, sz in rows:
                px, size = float(p), float(sz)
                if size == 0.0:
                    side.pop(px, None)
                else:
                    side[px] = size
                    raw[px] = (p, sz)
            if len(side) > self.depth:
                for px in sorted(side, reverse=best_first)[self.depth:]:
                    del side[px]
        self.u = data["u"]

    def wire(self, side: str) -> list[tuple[str, str]]:
        levels = self.bids if side == "b" else self.asks
        return [self.raw[p] for p in sorted(levels, reverse=side == "b")]

    def levels(self) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        """(bids best first, asks best first) as (price, size) tuples."""
        return (tuple(sorted(self.bids.items(), reverse=True)), tuple(sorted(self.asks.items())))

    def digest(self) -> int:
        """Order-free fingerprint of both sides (cheap to compare at every update)."""
        return hash((frozenset(self.bids.items()), frozenset(self.asks.items())))


def digest_of(bids: Any, asks: Any) -> int:
    """:meth:`RefBook.digest` of ``(k, ≥2)`` price/size arrays (e.g. ``DataStorage.book_top``)."""
    return hash((frozenset(zip(bids[:, 0].tolist(), bids[:, 1].tolist(), strict=True)),
                 frozenset(zip(asks[:, 0].tolist(), asks[:, 1].tolist(), strict=True))))


@dataclass
class Faults:
    """Faults by frame index (each fires once). ``no_pong`` holds 1-based connection numbers."""

    disconnect_at: set[int] = field(default_factory=set)
    gap_at: set[int] = field(default_factory=set)
    duplicate_at: set[int] = field(default_factory=set)
    resend_old_at: dict[int, int] = field(default_factory=dict)  # after frame i, send frame j < i again
    malformed_at: set[int] = field(default_factory=set)
    crossed_at: set[int] = field(default_factory=set)
    stall_at: set[int] = field(default_factory=set)
    mute_at: dict[int, str] = field(default_factory=dict)  # from frame i, book frames unsent until resubscribed
    no_pong: set[int] = field(default_factory=set)


@dataclass
class _Conn:
    number: int
    ws: ServerConnection
    subscribed: set[str] = field(default_factory=set)
    stalled: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first subscribe


class CaptureServer:
    """Start with ``async with CaptureServer(...) as srv``; connect to ``srv.url``.

    ``speed`` scales the capture's own pacing (``math.inf``: no waits between frames, one loop pass each).
    """

    def __init__(self, frames: list[Frame] | None = None, *, speed: float = math.inf, faults: Faults | None = None,
                 restamp: bool = True, loop_capture: bool = False) -> None:
        self.frames = frames if frames is not None else load_frames()
        self.speed = speed
        self.faults = faults or Faults()
        self.loop_capture = loop_capture
        self.position = 0
        self.passes = 0
        self.books: dict[str, RefBook] = {}
        self.log: list[tuple[Any, ...]] = []      # ("connect", n) ("subscribe", args) ("snapshot", sym, u) ...
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.done = asyncio.Event()               # the cursor reached the end of the capture
        self._offset_ms = 0
        self._restamp = restamp
        self._server: Server | None = None
        self._muted: set[str] = set()
        self._conn: _Conn | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------------
    async def __aenter__(self) -> CaptureServer:
        self._set_clock()
        self._server = await serve(self._handler, "127.0.0.1", 0, ping_interval=None, max_size=2 ** 24)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _set_clock(self) -> None:
        """Shift frame times so that the next frame to stream would be *received* now: at ``speed`` 1 a client then
        sees the capture's own receive − exchange lags."""
        if self._restamp:
            f = self.frames[min(self.position, len(self.frames) - 1)]
            self._offset_ms = int((time.time() - f.recv_ts) * 1000)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/linear"

    def index_of(self, symbol: str, kind: str, nth: int) -> int:
        """Index of the ``nth`` (0-based) frame of ``symbol`` and ``kind``."""
        hits = [i for i, f in enumerate(self.frames) if f.symbol == symbol and f.kind == kind]
        return hits[nth]

    def count(self, what: str) -> int:
        return sum(1 for e in self.log if e[0] == what)

    # --- wire -------------------------------------------------------------------------------------------------------
    def _stamp(self, msg: dict[str, Any]) -> dict[str, Any]:
        if not self._offset_ms:
            return msg
        out = dict(msg)
        off = self._offset_ms
        for k in ("ts", "cts"):
            if k in out:
                out[k] = int(out[k]) + off
        if msg.get("topic", "").startswith("publicTrade."):
            out["data"] = [dict(r, T=int(r["T"]) + off) for r in msg["data"]]
        return out

    @staticmethod
    async def _send(conn: _Conn, obj: dict[str, Any] | str) -> None:
        await conn.ws.send(obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")))

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = _Conn(self.connections, ws)
        self.log.append(("connect", conn.number))
        self._conn = conn
        streamer = asyncio.create_task(self._stream(conn))
        try:
            async for raw in ws:
                await self._on_request(conn, raw)
        except Exception:  # the client went away abruptly: fine for this server
            pass
        finally:
            conn.closed.set()
            streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await streamer
            self.log.append(("disconnect", conn.number))
            if self._conn is conn:
                self._conn = None

    async def _on_request(self, conn: _Conn, raw: str | bytes) -> None:
        req = json.loads(raw)
        self.requests.append(req)
        op, req_id = req.get("op"), req.get("req_id", "")
        if op == "ping":
            if conn.stalled or conn.number in self.faults.no_pong:
                return
            await self._send(conn, {"success": True, "ret_msg": "pong", "conn_id": f"c{conn.number}",
                                    "req_id": req_id, "op": "ping"})
            return
        args = req.get("args") or []
        if op not in ("subscribe", "unsubscribe"):
            await self._send(conn, {"success": False, "ret_msg": f"error:unknown op {op}", "op": op or "",
                                    "req_id": req_id, "conn_id": f"c{conn.number}"})
            return
        self.log.append((op, tuple(args)))
        bad = [a for a in args if not self._known(a)]
        if len(args) > MAX_ARGS or bad:
            why = f"args size >{MAX_ARGS}" if len(args) > MAX_ARGS else f"handler not found,topic:{bad[0]}"
            await self._send(conn, {"success": False, "ret_msg": f"error:{why}", "conn_id": f"c{conn.number}",
                                    "req_id": req_id, "op": op})
            return
        await self._send(conn, {"success": True, "ret_msg": "", "conn_id": f"c{conn.number}", "req_id": req_id,
                                "op": op})
        for topic in args:
            if op == "unsubscribe":
                conn.subscribed.discard(topic)
                continue
            conn.subscribed.add(topic)
            if topic.startswith("orderbook."):
                await self._send_snapshot(conn, topic.rpartition(".")[2])
        conn.ready.set()

    @staticmethod
    def _known(topic: str) -> bool:
        parts = topic.split(".")
        if parts[0] == "orderbook":
            return len(parts) == 3 and parts[1] == str(DEPTH) and parts[2].endswith("USDT")
        return parts[0] == "publicTrade" and len(parts) == 2 and parts[1].endswith("USDT")

    async def _send_snapshot(self, conn: _Conn, sym: str) -> None:
        self._muted.discard(sym)
        book = self.books.get(sym)
        if book is None:
            return  # the capture's own snapshot for this symbol has not passed yet: it will be sent in stream
        ts = self.frames[max(self.position - 1, 0)].msg["ts"]
        msg = {"topic": f"orderbook.{DEPTH}.{sym}", "type": "snapshot", "ts": ts,
               "data": {"s": sym, "b": book.wire("b"), "a": book.wire("a"), "u": book.u, "seq": 0},
               "cts": ts}
        self.log.append(("snapshot", sym, book.u))
        await self._send(conn, self._stamp(msg))

    # --- the market ---------------------------------------------------------------------------------------------------
    def _topic_of(self, f: Frame) -> str:
        return f"orderbook.{DEPTH}.{f.symbol}" if f.kind != "trade" else f"publicTrade.{f.symbol}"

    async def _stream(self, conn: _Conn) -> None:
        fl = self.faults
        prev_ts: float | None = None
        await conn.ready.wait()  # the market moves while someone listens (keeps runs reproducible)
        if self.connections == 1:
            self._set_clock()
        while True:
            if self.position >= len(self.frames):
                self.done.set()
                if not self.loop_capture:
                    await conn.closed.wait()
                    return
                self.position = 0
                self.passes += 1
                self.books.clear()
                self._set_clock()
                prev_ts = None
            i = self.position
            f = self.frames[i]
            if i in fl.disconnect_at:
                fl.disconnect_at.discard(i)
                self.log.append(("fault", "disconnect", i))
                if conn.ws.transport is not None:
                    conn.ws.transport.abort()
                return
            if i in fl.stall_at:
                fl.stall_at.discard(i)
                self.log.append(("fault", "stall", i))
                conn.stalled = True
                await conn.closed.wait()
                return
            if i in fl.mute_at:
                self._muted.add(fl.mute_at.pop(i))
                self.log.append(("fault", "mute", i))
            if i in fl.malformed_at:
                fl.malformed_at.discard(i)
                self.log.append(("fault", "malformed", i))
                await self._send(conn, '{"topic":"orderbook.200.' + f.symbol + '","type":"delta","data":{"s"')
            if self.speed != math.inf and prev_ts is not None:
                await asyncio.sleep(max(0.0, f.recv_ts - prev_ts) / self.speed)
            else:
                await asyncio.sleep(0)
            prev_ts = f.recv_ts
            if f.kind != "trade":
                self.books.setdefault(f.symbol, RefBook()).apply(f.msg)
            self.position = i + 1
            topic = self._topic_of(f)
            if topic not in conn.subscribed or (f.kind != "trade" and f.symbol in self._muted):
                continue
            if i in fl.gap_at:
                fl.gap_at.discard(i)
                self.log.append(("fault", "gap", i))
                continue
            msg = f.msg
            if i in fl.crossed_at:
                fl.crossed_at.discard(i)
                self.log.append(("fault", "crossed", i))
                msg = _crossed(msg, self.books[f.symbol])
            out = json.dumps(self._stamp(msg), separators=(",", ":"))
            await self._send(conn, out)
            if i in fl.duplicate_at:
                fl.duplicate_at.discard(i)
                self.log.append(("fault", "duplicate", i))
                await self._send(conn, out)
            if i in fl.resend_old_at:
                j = fl.resend_old_at.pop(i)
                self.log.append(("fault", "out_of_order", i, j))
                await self._send(conn, json.dumps(self._stamp(self.frames[j].msg), separators=(",", ":")))


def _crossed(msg: dict[str, Any], book: RefBook) -> dict[str, Any]:
    """The same delta plus a bid one level above the best ask: a crossed book if applied."""
    out = copy.deepcopy(msg)
    best_ask = min(book.asks)
    out["data"]["b"] = [*out["data"]["b"], [repr(best_ask * 1.001), "1"]]
    return out


def book_levels(levels: Iterable[Iterable[float]]) -> tuple[tuple[float, float], ...]:
    """(price, size) tuples from rows of (price, size[, notional])."""
    return tuple((float(r[0]), float(r[1])) for r in levels)


async def _main(port: int, speed: float) -> None:  # pragma: no cover - manual use
    srv = CaptureServer(speed=speed, loop_capture=True)
    async with srv:
        print(srv.url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser(description="replay the bundled Bybit capture as a local public WS server")
    ap.add_argument("--speed", type=float, default=1.0)
    a = ap.parse_args()
    asyncio.run(_main(0, a.speed))
