"""A real local HTTP server that answers like Bybit's v5 REST API, for tests (no internet, no mocks).

Stdlib ``http.server`` in a thread on ``127.0.0.1:0``. Routes are plain functions ``(Request) -> Reply | dict``
registered per method and path, so other tests can add ``/v5/market/instruments-info``, ``/v5/market/time`` or
order endpoints next to the kline route shipped here. Faults (retCode 10006, HTTP 429, anything) can be queued
per path and are served once each before the normal handler, or after it (``lose_answer``: the request executed,
its answer lost); every request is recorded for assertions.

Usage::

    with BybitHTTPServer(now_ms=...) as srv:
        srv.serve_klines(bundled_klines(["BTCUSDT"]))
        srv.inject_rate_limit("/v5/market/kline")          # next kline request gets retCode 10006
        HTTP(...).endpoint = srv.base_url                   # pybit aimed at the local server
        ...
        assert srv.count("/v5/market/kline") == 3
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass(slots=True)
class Reply:
    """An HTTP answer; a dict body is sent as JSON."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], "Reply | dict[str, Any]"]


def envelope(result: Any = None, *, ret_code: int = 0, ret_msg: str = "OK", time_ms: int | None = None,
             ret_ext_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Bybit v5's response envelope: ``{"retCode","retMsg","result","retExtInfo","time"}``."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": {} if result is None else result,
            "retExtInfo": dict(ret_ext_info or {}), "time": int(time.time() * 1000) if time_ms is None else time_ms}


class BybitHTTPServer:
    """Threaded local server; ``base_url`` is what pybit's ``endpoint`` (or any client) should point at.

    ``now_ms`` is the exchange's clock as reported in every response's ``time`` field (a replay of 2025 data needs
    a 2025 "now"); ``None`` means the wall clock. Rate-limit reset headers always use the wall clock, as a real
    limiter does, because clients wait on them in real time.
    """

    def __init__(self, *, now_ms: int | None = None, host: str = "127.0.0.1") -> None:
        self.now_ms_fixed = now_ms
        self._routes: dict[tuple[str, str], Handler] = {}
        self._faults: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._lost: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)  # executed, then this answer instead
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.default_headers: dict[str, str] = {}
        self._httpd = ThreadingHTTPServer((host, 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> BybitHTTPServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="bybit-http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent; safe on a server never started (``shutdown`` alone would wait forever for its loop)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> BybitHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ configuration
    def now_ms(self) -> int:
        return int(time.time() * 1000) if self.now_ms_fixed is None else self.now_ms_fixed

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def inject(self, path: str, reply: Reply, *, times: int = 1, method: str = "GET") -> None:
        """Serve ``reply`` for the next ``times`` requests to ``path`` instead of the route."""
        with self._lock:
            self._faults[(method.upper(), path)].extend(reply for _ in range(times))

    def lose_answer(self, path: str, reply: Reply, *, times: int = 1, method: str = "POST") -> None:
        """Run the route for the next ``times`` requests to ``path`` (the order *is* placed), then answer ``reply``
        instead of its result: a gateway error or timeout that hides a request the exchange executed."""
        with self._lock:
            self._lost[(method.upper(), path)].extend(reply for _ in range(times))

    def inject_rate_limit(self, path: str, *, http_status: int | None = None, reset_in_ms: int = 1000,
                          times: int = 1, method: str = "GET") -> None:
        """Bybit's two rate-limit answers: HTTP 200 with retCode 10006 (default), or a bare HTTP status (429/403)."""
        reset = str(int(time.time() * 1000) + reset_in_ms)
        headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": reset}
        if http_status is None:
            reply = Reply(envelope(ret_code=10006, ret_msg="Too many visits!", time_ms=self.now_ms()),
                          headers=headers)
        else:
            reply = Reply({"retCode": http_status, "retMsg": "Too Many Requests"}, status=http_status,
                          headers={**headers, "Retry-After": f"{reset_in_ms / 1000:g}"})
        self.inject(path, reply, times=times, method=method)

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    # ------------------------------------------------------------------ built-in routes
    def serve_klines(self, data: Mapping[str, Any], *, category: str = "linear") -> None:
        """``GET /v5/market/kline`` from 1m candle columns (``Candles`` or a column mapping) per symbol."""
        self.route("GET", "/v5/market/kline", KlineRoute(data, self.now_ms, category=category))

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, req: Request) -> Reply:
        key = (req.method, req.path)
        with self._lock:
            self.requests.append(req)
            fault = self._faults[key].popleft() if self._faults.get(key) else None
        if fault is not None:
            return fault
        handler = self._routes.get(key)
        if handler is None:
            return Reply({"retCode": 404, "retMsg": f"no route {req.method} {req.path}"}, status=404)
        try:
            out = handler(req)
        except Exception as e:  # a handler bug must surface in the test, not as a hung socket
            return Reply({"retCode": 500, "retMsg": f"{type(e).__name__}: {e}"}, status=500)
        with self._lock:
            lost = self._lost[key].popleft() if self._lost.get(key) else None
        if lost is not None:
            return lost
        return out if isinstance(out, Reply) else Reply(out)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                              dict(self.headers.items()), body)
                reply = server._dispatch(req)
                if isinstance(reply.body, bytes | str):
                    raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                    ctype = "text/plain"
                else:
                    raw, ctype = json.dumps(reply.body, separators=(",", ":")).encode(), "application/json"
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                for k, v in {**server.default_headers, **reply.headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return _Handler


class KlineRoute:
    """Bybit's kline semantics: ``start``/``end`` inclusive, ``limit`` 1..1000 (default 200), the newest ``limit``
    rows of the window, newest first, every number a string, the forming candle included up to ``now``."""

    def __init__(self, data: Mapping[str, Any], now_ms: Callable[[], int], *, category: str = "linear") -> None:
        self.category = category
        self.now_ms = now_ms
        self.data = {s: {c: np.asarray(_col(v, c)) for c in ("open_time_ms", "open", "high", "low", "close",
                                                           "volume")} for s, v in data.items()}

    def __call__(self, req: Request) -> Reply | dict[str, Any]:
        q, now = req.query, self.now_ms()
        if q.get("category") != self.category:
            return envelope(ret_code=10001, ret_msg="Illegal category", time_ms=now)
        if q.get("interval") != "1":
            return envelope(ret_code=10001, ret_msg="Invalid period! (this server serves interval=1)", time_ms=now)
        cols = self.data.get(q.get("symbol", ""))
        if cols is None:
            return envelope(ret_code=10001, ret_msg="Not supported symbols", time_ms=now)
        try:
            limit = int(q.get("limit", 200))
            start = int(q["start"]) if "start" in q else None
            end = int(q["end"]) if "end" in q else None
        except ValueError:
            return envelope(ret_code=10001, ret_msg="params error", time_ms=now)
        if not 1 <= limit <= 1000:
            return envelope(ret_code=10001, ret_msg="limit out of range [1, 1000]", time_ms=now)
        t = cols["open_time_ms"]
        hi = min(now, end) if end is not None else now
        i = int(np.searchsorted(t, start, "left")) if start is not None else 0
        j = int(np.searchsorted(t, hi, "right"))
        i = max(i, j - limit)
        rows = [[str(int(t[k])), *(_num(cols[c][k]) for c in ("open", "high", "low", "close", "volume")),
                 _num(round(float(cols["volume"][k]) * float(cols["close"][k]), 4))] for k in range(j - 1, i - 1, -1)]
        return envelope({"category": self.category, "symbol": q["symbol"], "list": rows}, time_ms=now)


def _col(v: Any, c: str) -> Any:
    return v[c] if isinstance(v, Mapping) else getattr(v, c)


def _num(x: float) -> str:
    """Bybit's number strings: shortest repr, no trailing ``.0``."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def bundled_klines(symbols: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
    """The project's bundled 1m candles per symbol, to be served as Bybit's REST history."""
    from replay.data.bundled import bundled_files, read_kline_csv

    return {s: read_kline_csv(bundled_files(s)[0]) for s in symbols}
