"""Bybit v5 public WebSocket collector: the live ``MarketFeed`` (ARCHITECTURE.md §1, §9; STRATEGY.md §2.10).

A thin asyncio shell around :class:`~bot.adapters.bybit.public_session.PublicSession` (which decides what is
forwarded and when to resubscribe). The shell owns the socket: connect, subscribe in batches, read frames and put
one batch per market frame on the bot's queue, an app-level ``{"op":"ping"}`` every ``ping_interval_sec``, and a
reconnect when no pong came for ``pong_timeout_sec``, the socket drops, or anything else goes wrong. Reconnects wait
``min(delay·2^(k−1), max)`` with jitter and never stop; only cancellation ends :meth:`BybitPublicFeed.run`.

Times come from the injected Clock (``now()``); waiting uses the running loop, so the same code runs on the virtual
loop of a test. Events carry Bybit's exchange time; receive times feed the latency figures in ``stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import websockets
from loguru import logger
from websockets.asyncio.client import ClientConnection, connect

from bot.adapters.bybit.backoff import backoff_delays
from bot.adapters.bybit.public_session import FeedStats, PublicSession
from bot.clock import Clock
from bot.events import EventBatch
from settings import Settings

__all__ = ["BybitPublicFeed"]

OPEN_TIMEOUT_SEC = 10.0
SEND_TIMEOUT_SEC = 5.0


class _Failure(Exception):
    """Why the heartbeat gave up on a socket (pong timeout)."""


class BybitPublicFeed:
    """``MarketFeed`` on ``orderbook.{depth}.{S}`` + ``publicTrade.{S}`` for ``symbols``.

    Args:
        settings: ``websocket`` section: URL, depth, ping/pong, backoff, ``book_stale_sec``.
        clock: the bot's clock (receive times, staleness, pong timeout).
        symbols: symbols to subscribe, in order.
        url: overrides ``websocket.ws_public_linear`` (tests point it at a local server).
        resync_source: called on every housekeeping tick; symbols it returns get a fresh snapshot (the composition
            passes ``DataStorage.resync_requested``: a crossed or refused update is found there).
        on_books_lost: called with the symbols whose books the stream lost (socket dropped, topic resubscribed) so
            they are invalid until their snapshot (the composition passes ``DataStorage.invalidate``).
        rng: seeds the reconnect jitter (tests).
        on_frame: called with ``(receive time, raw frame)`` for every frame received, before it is decoded (the
            calibration recorder's tap: the raw text is what gets written, so recordings replay through the decoder).
    """

    def __init__(self, settings: Settings, clock: Clock, symbols: Sequence[str], *, url: str | None = None,
                 resync_source: Callable[[], Iterable[str]] | None = None,
                 on_books_lost: Callable[[Sequence[str], str], None] | None = None,
                 rng: random.Random | None = None,
                 on_frame: Callable[[float, str | bytes], None] | None = None) -> None:
        ws = settings.websocket
        self.url = url or ws.ws_public_linear
        self.clock = clock
        self.session = PublicSession(symbols, ws.subscription_depth, stale_sec=ws.book_stale_sec)
        self.ping_interval = ws.ping_interval_sec
        self.pong_timeout = ws.pong_timeout_sec
        self.tick_sec = min(1.0, ws.ping_interval_sec / 4, ws.book_stale_sec / 4, ws.pong_timeout_sec / 4)
        self._backoff = (ws.reconnect_delay_seconds, ws.reconnect_max_delay_sec)
        self._rng = rng if rng is not None else random.Random()
        self._resync_source = resync_source
        self._on_books_lost = on_books_lost
        self._on_frame = on_frame
        self.connected = False

    @property
    def stats(self) -> FeedStats:
        return self.session.stats

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None:
        """Collect until cancelled: connect, stream, and on any failure wait the next backoff delay and reconnect."""
        delays = backoff_delays(*self._backoff, rng=self._rng)
        while True:
            delivered = False
            try:
                async with connect(self.url, ping_interval=None, open_timeout=OPEN_TIMEOUT_SEC, close_timeout=1.0,
                                   max_size=2 ** 24) as ws:
                    delivered, reason = await self._serve(ws, queue)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except Exception as exc:  # a bug must not end a live feed forever; it is logged with its traceback
                logger.opt(exception=exc).error("public WS: unexpected error")
                reason = f"unexpected {type(exc).__name__}"
            self.connected = False
            self.session.on_disconnected(reason.split(" (")[0].split(":")[0])
            self._report_lost("public WS disconnected")
            if delivered:
                delays = backoff_delays(*self._backoff, rng=self._rng)  # a working connection resets the backoff
            delay = next(delays)
            logger.warning("public WS {}: {}; reconnecting in {:.1f}s", self.url, reason, delay)
            await asyncio.sleep(delay)

    async def _serve(self, ws: ClientConnection, queue: asyncio.Queue[EventBatch]) -> tuple[bool, str]:
        """Subscribe and stream one connection; returns (delivered anything, why it ended)."""
        session, clock = self.session, self.clock
        for req in session.on_connected(clock.now()):
            await self._send(ws, req)
        self.connected = True
        logger.info("public WS connected to {} ({} topics)", self.url, len(session.topics()))
        failure: list[str] = []
        heartbeat = asyncio.create_task(self._heartbeat(ws, failure), name="public-ws-heartbeat")
        delivered = False
        put = queue.put_nowait
        tap = self._on_frame
        try:
            async for raw in ws:
                now = clock.now()
                if tap is not None:
                    tap(now, raw)
                events, reqs = session.on_frame(raw, now)
                if events:
                    put(events)
                    delivered = True
                if reqs:
                    self._report_lost("resubscribing")
                    for req in reqs:
                        await self._send(ws, req)
            reason = "closed by server"
        except websockets.ConnectionClosed as exc:
            reason = failure[0] if failure else f"connection lost ({exc})"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
        if failure:
            reason = failure[0]
        return delivered, reason

    async def _heartbeat(self, ws: ClientConnection, failure: list[str]) -> None:
        """Ping, pong timeout, stale books and storage resync requests, every ``tick_sec``."""
        session, clock = self.session, self.clock
        next_ping = clock.now() + self.ping_interval
        while True:
            await asyncio.sleep(self.tick_sec)
            now = clock.now()
            if now - session.pong_at > self.pong_timeout:
                session.stats.counters["pong_timeouts"] += 1
                failure.append(f"pong timeout (no pong for {now - session.pong_at:.1f}s)")
                if ws.transport is not None:
                    ws.transport.abort()  # a stalled peer would never finish a close handshake
                return
            try:
                if now >= next_ping:
                    next_ping = now + self.ping_interval
                    await self._send(ws, session.ping())
                requested = self._resync_source() if self._resync_source is not None else ()
                reqs = session.housekeeping(now, requested)
                if reqs:
                    self._report_lost("resubscribing")
                    for req in reqs:
                        await self._send(ws, req)
            except websockets.ConnectionClosed:
                return  # the reader sees it too
            except Exception as exc:  # without a heartbeat a dead socket would go unnoticed: drop it and reconnect
                logger.opt(exception=exc).error("public WS heartbeat failed")
                failure.append(f"heartbeat error ({type(exc).__name__})")
                if ws.transport is not None:
                    ws.transport.abort()
                return

    def _report_lost(self, reason: str) -> None:
        lost, self.session.lost = self.session.lost, []
        if lost and self._on_books_lost is not None:
            self._on_books_lost(lost, reason)

    @staticmethod
    async def _send(ws: ClientConnection, req: dict[str, Any]) -> None:
        async with asyncio.timeout(SEND_TIMEOUT_SEC):
            await ws.send(json.dumps(req, separators=(",", ":")))
