"""Bybit v5 private WebSocket (``order``, ``execution``, ``position``, ``wallet``) → the port's events.

One connection: connect, ``auth`` (HMAC of ``GET/realtime{expires}``), subscribe, then read. An app-level
``{"op": "ping"}`` goes out every ``ping_interval_sec``; a ping left without its pong for ``pong_timeout_sec``
drops the connection. Any failure (refused connect, failed auth or subscribe, closed socket, pong timeout, or a frame
that cannot be read, which may have been a fill) marks the stream down and reconnects after an exponential backoff
with jitter, forever; the delay resets once a connection has stayed up for ``cap`` seconds.

:attr:`PrivateStream.status` is what the executor reads (``bot.ports.StreamStatus``): ``up`` only between a
successful subscribe and the next failure, and ``connects`` counting those subscribes, so every reconnect is visible
and triggers a reconciliation (STRATEGY.md §8.7). Frames of other categories (spot, option) are ignored.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from loguru import logger
from websockets.asyncio.client import ClientConnection, connect

from bot.adapters.bybit import parse
from bot.adapters.bybit.auth import Credentials, ws_auth_message
from bot.adapters.bybit.backoff import backoff_delays
from bot.clock import Clock
from bot.ports import PrivateEvent, StreamStatus

TOPICS: tuple[str, ...] = ("order", "execution", "position", "wallet")
CATEGORY = "linear"


class StreamError(Exception):
    """The connection must be dropped: failed auth/subscribe, pong timeout, unreadable frame."""


class PrivateStream:
    """Owns the private connection; pushes every mapped event to ``on_event`` in arrival order."""

    def __init__(self, url: str, creds: Credentials, clock: Clock, on_event: Callable[[PrivateEvent], None], *,
                 ping_interval_sec: float = 20.0, pong_timeout_sec: float = 60.0, backoff_base_sec: float = 5.0,
                 backoff_cap_sec: float = 60.0, handshake_timeout_sec: float = 10.0,
                 topics: Sequence[str] = TOPICS, rng: random.Random | None = None) -> None:
        self.url = url
        self._creds = creds
        self.clock = clock
        self.on_event = on_event
        self.ping_interval_sec = ping_interval_sec
        self.pong_timeout_sec = pong_timeout_sec
        self.backoff_base_sec = backoff_base_sec
        self.backoff_cap_sec = backoff_cap_sec
        self.handshake_timeout_sec = handshake_timeout_sec
        self.topics = tuple(topics)
        self._rng = rng or random.Random()
        self.status = StreamStatus(up=False, connects=0, changed_at=clock.now())
        self.failures: list[str] = []            # why each connection ended (tests, the status line)
        self.last_message_at = 0.0
        self._req = 0
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:
        return f"PrivateStream({self.url!r}, up={self.status.up}, connects={self.status.connects})"

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Connect and read forever; returns only when cancelled."""
        delays = backoff_delays(self.backoff_base_sec, self.backoff_cap_sec, self._rng)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._session()
                reason = "closed by the server"
            except asyncio.CancelledError:
                self._set_up(False)
                raise
            except (OSError, TimeoutError, StreamError, websockets.WebSocketException) as e:
                reason = f"{type(e).__name__}: {e}"
            self._set_up(False)
            self.failures.append(reason)
            if loop.time() - started >= self.backoff_cap_sec:  # it had been healthy: start the backoff over
                delays = backoff_delays(self.backoff_base_sec, self.backoff_cap_sec, self._rng)
            delay = next(delays)
            logger.warning("private stream down ({}); reconnecting in {:.1f}s", reason, delay)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            await ws.close()

    # ------------------------------------------------------------------ one connection
    async def _session(self) -> None:
        async with connect(self.url, open_timeout=self.handshake_timeout_sec, ping_interval=None,
                           close_timeout=1.0, max_queue=None) as ws:
            self._ws = ws
            try:
                await self._request(ws, ws_auth_message(self._creds, self.clock.now(), self._next_id()), "auth")
                await self._request(ws, {"req_id": self._next_id(), "op": "subscribe", "args": list(self.topics)},
                                    "subscribe")
                self._set_up(True)
                logger.info("private stream up (connection #{}), topics {}", self.status.connects, self.topics)
                await self._read(ws)
            finally:
                self._ws = None

    async def _request(self, ws: ClientConnection, msg: dict[str, Any], op: str) -> None:
        """Send an op and wait for its ack; topic frames before the ack are handled, not lost."""
        await ws.send(json.dumps(msg))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handshake_timeout_sec
        while True:
            frame = self._decode(await _recv(ws, deadline - loop.time()))
            if frame.get("op") == op:
                if not frame.get("success", False):
                    raise StreamError(f"{op} refused: {frame.get('ret_msg') or frame.get('retMsg') or 'no reason'}")
                return
            self._handle(frame)

    async def _read(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.ping_interval_sec
        waiting_since: float | None = None
        while True:
            now = loop.time()
            if waiting_since is not None and now - waiting_since >= self.pong_timeout_sec:
                raise StreamError(f"no pong within {self.pong_timeout_sec}s")
            if now >= next_ping:
                await ws.send(json.dumps({"req_id": self._next_id(), "op": "ping"}))
                waiting_since = now if waiting_since is None else waiting_since
                next_ping = now + self.ping_interval_sec
            until = next_ping if waiting_since is None else min(next_ping, waiting_since + self.pong_timeout_sec)
            try:
                raw = await _recv(ws, until - now)
            except TimeoutError:
                continue
            frame = self._decode(raw)
            if frame.get("op") == "pong" or frame.get("ret_msg") == "pong":
                waiting_since = None
            else:
                self._handle(frame)

    # ------------------------------------------------------------------ frames
    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        self.last_message_at = self.clock.now()
        try:
            frame = json.loads(raw)
        except ValueError:
            raise StreamError(f"unreadable frame ({len(raw)} bytes): reconnecting so a reconcile covers it") from None
        if not isinstance(frame, dict):
            raise StreamError("frame is not a JSON object")
        return frame

    def _handle(self, frame: dict[str, Any]) -> None:
        topic = str(frame.get("topic") or "").split(".")[0]
        if topic not in TOPICS:
            if frame.get("op") not in (None, "pong", "subscribe", "auth"):
                logger.debug("private stream: ignored op frame {}", frame.get("op"))
            return
        data = frame.get("data") or []
        try:
            created = parse.ms(frame.get("creationTime") or 0) or self.clock.now()
            events = [self._event(topic, d, created) for d in data if _linear(topic, d)]
        except (parse.PayloadError, TypeError, AttributeError) as e:
            raise StreamError(f"unreadable {topic} frame ({e}): reconnecting so a reconcile covers it") from None
        for ev in events:
            self.on_event(ev)

    @staticmethod
    def _event(topic: str, d: dict[str, Any], created: float) -> PrivateEvent:
        if topic == "order":
            return parse.order_update(d)
        if topic == "execution":
            return parse.execution(d)
        if topic == "position":
            return parse.position_update(d, created)
        return parse.wallet_update(d, created)

    def _set_up(self, up: bool) -> None:
        st = self.status
        if st.up == up:
            return
        self.status = StreamStatus(up=up, connects=st.connects + (1 if up else 0), changed_at=self.clock.now())

    def _next_id(self) -> str:
        self._req += 1
        return f"nap-{self._req}"


async def _recv(ws: ClientConnection, timeout: float) -> str | bytes:
    """``ws.recv()`` within ``timeout`` (TimeoutError after). Not ``asyncio.wait_for``: on Python 3.11 a frame arriving
    together with a cancellation makes wait_for return the frame and drop the cancel, and the stream task then runs on
    (reconnecting forever) while ``stop()`` waits for it."""
    async with asyncio.timeout(max(0.0, timeout)):
        return await ws.recv()


def _linear(topic: str, d: Any) -> bool:
    """Wallet rows have no category; the others name theirs (the all-in-one topics carry every category)."""
    if not isinstance(d, dict):
        raise TypeError(f"{topic} item is not an object")
    return topic == "wallet" or d.get("category", CATEGORY) == CATEGORY
