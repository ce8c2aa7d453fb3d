"""The live Exchange: pybit REST (:mod:`.rest`) plus the private stream (:mod:`.private_ws`) behind one port.

Wiring (what ``python -m bot --mode demo|live`` does)::

    creds = load_credentials()                        # BYBIT_API_KEY / BYBIT_API_SECRET, env or .env
    ex = build_bybit_exchange(settings, demo=True, api_key=creds.api_key, api_secret=creds.api_secret,
                              clock=WallClock())
    await ex.start()       # clock-skew check (§8.8; raises ClockSkewError), instruments, private stream task
    ...                    # Executor(settings, clock, ex, ...).start() etc.
    await ex.stop()        # cancels the stream task and closes the socket (orders and positions stay as they are)

``start`` does not wait for the private stream: the executor reconciles at its own start and again after every
(re)connect it sees in :meth:`BybitExchange.stream_status`, and polls REST while the stream is down (§8.1, §8.7).
With ``websocket.enable_private_ws`` off no stream is opened and the status stays down: REST polling only.

A 10002 answer (a signed request stamped outside Bybit's window) re-measures the clock, at most once per
``CLOCK_RECHECK_SEC``, and the raised error carries the measured skew: the clock can drift after the start check, and
Bybit refuses a stamp 1 s or more ahead of its clock even when that is inside ``max_clock_skew_sec`` (so the start
check refuses such a clock too).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from loguru import logger
from pybit.unified_trading import HTTP

from bot.adapters.bybit.auth import Credentials, load_credentials
from bot.adapters.bybit.errors import ERR_TIMESTAMP
from bot.adapters.bybit.private_ws import PrivateStream
from bot.adapters.bybit.rest import PYBIT_NO_RETRY_CODES, BybitRest
from bot.clock import Clock
from bot.ports import ExchangeError, PrivateEvent, StreamStatus

__all__ = ["BybitExchange", "ClockSkewError", "build_bybit_exchange", "load_credentials", "make_http"]

SKEW_WARN_FRACTION = 0.5
BYBIT_MAX_AHEAD_SEC = 1.0  # Bybit's rule: server − recv_window ≤ request timestamp < server + 1000 ms
CLOCK_RECHECK_SEC = 30.0  # a burst of 10002 answers re-measures the clock once, not once per request


class ClockSkewError(RuntimeError):
    """The local clock and Bybit's disagree by more than ``execution.max_clock_skew_sec``."""


class _HTTP(HTTP):
    """pybit's client with a repr that names no key: the dataclass repr would print both secrets, and a logged
    traceback (loguru shows locals) can contain a bound method of this object."""

    def __repr__(self) -> str:
        return f"HTTP(endpoint={self.endpoint!r}, demo={self.demo})"


def make_http(creds: Credentials, *, demo: bool, timeout_sec: float, recv_window_ms: int,
              endpoint: str | None = None) -> _HTTP:
    """pybit's client with its blocking retry loop off and response headers returned (rate-limit status)."""
    http = _HTTP(demo=demo, api_key=creds.api_key, api_secret=creds.api_secret, timeout=max(0.1, timeout_sec),
                recv_window=recv_window_ms, max_retries=1, retry_codes=set(PYBIT_NO_RETRY_CODES),
                force_retry=False, log_requests=False, return_response_headers=True)
    if endpoint is not None:
        http.endpoint = endpoint.rstrip("/")
    return http


class BybitExchange(BybitRest):
    """:class:`bot.ports.Exchange` for Bybit (demo or live). ``events`` is fed by the private stream."""

    def __init__(self, http: Any, clock: Clock, *, stream: PrivateStream | None, max_clock_skew_sec: float,
                 **rest_kw: Any) -> None:
        super().__init__(http, clock, **rest_kw)
        self.events: asyncio.Queue[PrivateEvent] = asyncio.Queue()
        self.stream = stream
        self.max_clock_skew_sec = max_clock_skew_sec
        self.skew_sec: float | None = None
        self._clock_checked_at = float("-inf")
        self._stream_task: asyncio.Task[None] | None = None
        if stream is not None:
            stream.on_event = self.events.put_nowait

    def __repr__(self) -> str:
        return f"BybitExchange(endpoint={getattr(self.http, 'endpoint', '?')!r}, stream={self.stream!r})"

    def stream_status(self) -> StreamStatus:
        return self.stream.status if self.stream is not None else StreamStatus(up=False, connects=0)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A 10002 (request time outside recv_window) re-measures the clock, and its error says what the cause is:
        a local clock that drifted past the limit since start, or a request slower than recv_window."""
        try:
            return await super().call(method, **params)
        except ExchangeError as e:
            if e.code != ERR_TIMESTAMP or method == "get_server_time":
                raise
            raise ExchangeError(e.code, f"{e.msg} [{await self._recheck_clock()}]") from e

    async def _recheck_clock(self) -> str:
        since = self.clock.now() - self._clock_checked_at
        if since < CLOCK_RECHECK_SEC:
            return f"clock measured {since:.0f}s ago: {_fmt_skew(self.skew_sec)}"
        try:
            skew = await self.check_clock()
        except ClockSkewError as e:
            logger.error("request refused for its timestamp (10002): {}", e)
            return str(e)
        except (ExchangeError, TimeoutError, ConnectionError) as e:
            return f"clock recheck failed: {e}"
        window = getattr(self.http, "recv_window", "?")
        return (f"clock rechecked: {_fmt_skew(skew)}, within the limits; the request took longer than its "
                f"recv_window of {window} ms to reach Bybit")

    async def check_clock(self) -> float:
        """Skew = server time − local midpoint of the request (§8.8); raises beyond the limit, warns past half.

        Also raises for a local clock 1 s or more ahead of Bybit's, inside the limit or not: Bybit refuses a signed
        request stamped that far ahead, so such a bot could not place a single order."""
        self._clock_checked_at = self.clock.now()
        t0 = self.clock.now()
        server = await self.server_time()
        t1 = self.clock.now()
        skew = server - (t0 + t1) / 2.0
        self.skew_sec = skew
        if abs(skew) > self.max_clock_skew_sec:
            raise ClockSkewError(
                f"local clock is {-skew:+.3f}s off Bybit's (round trip {t1 - t0:.3f}s); the limit is "
                f"execution.max_clock_skew_sec={self.max_clock_skew_sec}s: sync the system clock (NTP) and restart")
        if -skew >= BYBIT_MAX_AHEAD_SEC:
            raise ClockSkewError(
                f"local clock is {-skew:+.3f}s ahead of Bybit's (round trip {t1 - t0:.3f}s): Bybit refuses every "
                f"signed request stamped {BYBIT_MAX_AHEAD_SEC:g} s or more ahead of its clock (10002), whatever "
                f"execution.max_clock_skew_sec says: sync the system clock (NTP) and restart")
        if abs(skew) > SKEW_WARN_FRACTION * self.max_clock_skew_sec:
            logger.warning("local clock is {:+.3f}s off Bybit's (limit {}s)", -skew, self.max_clock_skew_sec)
        else:
            logger.info("clock skew against Bybit {:+.3f}s (round trip {:.3f}s)", -skew, t1 - t0)
        return skew

    async def start(self) -> None:
        """Clock check, instrument filters, then the private stream in the background."""
        await self.check_clock()
        await self.get_instruments()
        if self.stream is not None and self._stream_task is None:
            self._stream_task = asyncio.create_task(self.stream.run(), name="bybit-private-stream")

    async def stop(self) -> None:
        task, self._stream_task = self._stream_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.stream is not None:
            await self.stream.close()


def _fmt_skew(skew: float | None) -> str:
    return "never measured" if skew is None else f"local clock {-skew:+.3f}s off Bybit's"


def build_bybit_exchange(settings: Any, *, demo: bool, api_key: str, api_secret: str, clock: Clock,
                         rest_url: str | None = None, ws_url: str | None = None,
                         rng: random.Random | None = None) -> BybitExchange:
    """The Exchange for ``python -m bot --mode demo|live``: endpoints from ``settings.websocket`` by ``demo``
    (``rest_url``/``ws_url`` override them, for local test servers); call ``await ex.start()`` before use."""
    creds = Credentials(api_key, api_secret)
    ws, xs = settings.websocket, settings.execution
    timeout = float(getattr(xs, "rest_timeout_sec", 10.0))
    http = make_http(creds, demo=demo, timeout_sec=timeout, recv_window_ms=xs.recv_window_ms,
                     endpoint=rest_url or (ws.rest_base_demo if demo else ws.rest_base_live))
    rng = rng or random.Random()
    stream = None
    if ws.enable_private_ws:
        stream = PrivateStream(ws_url or (ws.ws_private_demo if demo else ws.ws_private_live), creds, clock,
                               lambda ev: None, ping_interval_sec=ws.ping_interval_sec,
                               pong_timeout_sec=ws.pong_timeout_sec, backoff_base_sec=ws.reconnect_delay_seconds,
                               backoff_cap_sec=ws.reconnect_max_delay_sec, rng=rng)
    return BybitExchange(http, clock, stream=stream, max_clock_skew_sec=xs.max_clock_skew_sec, timeout_sec=timeout,
                         retry_attempts=xs.rest_retry_attempts, instrument_ttl_sec=xs.instrument_cache_ttl_sec,
                         rng=rng)
