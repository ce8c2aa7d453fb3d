"""Bybit v5 REST kline fetcher (``GET /v5/market/kline``) through pybit's ``HTTP`` session.

Why its own retry loop: pybit sleeps on retCode 10006 itself (wall-clock, unbounded by us) and does not retry HTTP
429, so 10006 is removed from pybit's retry codes and both are handled here with bounded, observable backoff
(``sleep`` is injectable, so tests run instantly and can assert the waits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from loguru import logger
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from replay.data.errors import DataSourceError
from replay.data.timeutil import MINUTE_MS, fmt_span
from replay.data.validate import COLUMNS

MAX_LIMIT = 1000
RATE_LIMIT_RETCODE = 10006
_RETRY_HTTP = {429, 500, 502, 503, 504}


@dataclass(slots=True)
class FetchResult:
    """Closed candles in ``[start, end)`` sorted and unique, and how far the span is known (exclusive)."""

    cols: dict[str, np.ndarray]
    covered_until_ms: int


@dataclass
class BybitKlineClient:
    """Paginated, rate-limit aware kline download for one category/interval.

    ``base_url`` replaces pybit's ``https://api.bybit.com`` (pybit builds every path from its ``endpoint``
    attribute), which is how tests aim it at a local server.
    """

    base_url: str | None = None
    testnet: bool = False
    category: str = "linear"
    interval: str = "1"
    timeout_s: float = 10.0
    max_retries: int = 5
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    wall_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    requests_made: int = 0
    session: HTTP = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # retry_codes must be non-empty or pybit falls back to its defaults (which include 10006).
        self.session = HTTP(testnet=self.testnet, timeout=self.timeout_s, max_retries=1, retry_codes={10002},
                            return_response_headers=True)
        if self.base_url:
            self.session.endpoint = self.base_url.rstrip("/")
            if urlsplit(self.base_url).hostname in {"127.0.0.1", "localhost", "::1"}:
                self.session.client.trust_env = False  # a proxy from the environment must not swallow loopback
        self._limit_reset_ms: int | None = None

    @property
    def interval_ms(self) -> int:
        return int(self.interval) * MINUTE_MS

    # ------------------------------------------------------------------ one call with backoff
    def _backoff_s(self, attempt: int, headers: Mapping[str, str] | None) -> float:
        """Wait until the server's reset time when it says one, else exponential; always within the bounds."""
        delay = self.base_backoff_s * 2**attempt
        if headers:
            reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
            retry_after = headers.get("Retry-After")
            if reset and reset.isdigit():
                delay = max((int(reset) - self.wall_ms()) / 1000, self.base_backoff_s)
            elif retry_after and retry_after.replace(".", "", 1).isdigit():
                delay = float(retry_after)
        return min(max(delay, 0.0), self.max_backoff_s)

    def _pace(self) -> None:
        """The previous response said the quota is used up: wait for its reset instead of provoking a 10006."""
        if self._limit_reset_ms is not None:
            wait = min(max((self._limit_reset_ms - self.wall_ms()) / 1000, 0.0), self.max_backoff_s)
            self._limit_reset_ms = None
            if wait > 0:
                logger.debug(f"bybit kline: rate-limit quota exhausted, waiting {wait:.2f}s for its reset")
                self.sleep(wait)

    def _note_limit(self, headers: Mapping[str, str]) -> None:
        status, reset = headers.get("X-Bapi-Limit-Status"), headers.get("X-Bapi-Limit-Reset-Timestamp")
        if status is not None and reset is not None and status.isdigit() and reset.isdigit() and int(status) <= 0:
            self._limit_reset_ms = int(reset)

    def get_kline_page(self, symbol: str, start_ms: int, end_ms: int, limit: int = MAX_LIMIT) -> dict[str, Any]:
        """One ``/v5/market/kline`` response (``end`` inclusive, as Bybit reads it), retried on rate limits."""
        params = {"category": self.category, "symbol": symbol, "interval": self.interval,
                  "start": int(start_ms), "end": int(end_ms), "limit": int(limit)}
        what = f"GET /v5/market/kline {symbol} {fmt_span(start_ms, end_ms + 1)}"
        last = ""
        for attempt in range(self.max_retries + 1):
            self._pace()
            self.requests_made += 1
            try:
                body, _elapsed, headers = self.session.get_kline(**params)
            except InvalidRequestError as e:
                if e.status_code != RATE_LIMIT_RETCODE:
                    raise DataSourceError(f"Bybit {what}: retCode {e.status_code} '{e.message}'") from None
                last, headers = f"retCode 10006 '{e.message}'", e.resp_headers
            except FailedRequestError as e:
                if e.status_code not in _RETRY_HTTP:
                    raise DataSourceError(f"Bybit {what}: HTTP {e.status_code} '{e.message}'") from None
                last, headers = f"HTTP {e.status_code}", e.resp_headers
            except (requests.ConnectionError, requests.Timeout) as e:
                last, headers = f"network error {type(e).__name__}", None
            else:
                self._note_limit(headers)
                return body
            if attempt == self.max_retries:
                break
            delay = self._backoff_s(attempt, headers)
            logger.warning(f"bybit kline: {last} on {what}; retry {attempt + 1}/{self.max_retries} in {delay:.2f}s")
            self.sleep(delay)
        raise DataSourceError(f"Bybit {what}: gave up after {self.max_retries} retries (last: {last}) at "
                              f"{self.session.endpoint}")

    # ------------------------------------------------------------------ a whole span
    def fetch(self, symbol: str, start_ms: int, end_ms: int) -> FetchResult:
        """All closed candles with open time in ``[start_ms, end_ms)``.

        The span is walked backwards (newest first, as Bybit lists) in windows of at most 1000 candles, so a
        page can never be truncated whichever side the server cuts; rows are de-duplicated and sorted, rows outside
        the span dropped, and candles not yet closed at the server's response ``time`` dropped (Bybit lists the
        forming candle first).
        """
        step = self.interval_ms
        pages: list[np.ndarray] = []
        server_now: int | None = None
        hi = end_ms
        while hi > start_ms:
            lo = max(start_ms, hi - MAX_LIMIT * step)
            body = self.get_kline_page(symbol, lo, hi - 1, MAX_LIMIT)
            t = body.get("time")
            if isinstance(t, int):
                server_now = t if server_now is None else min(server_now, t)
            rows = (body.get("result") or {}).get("list") or []
            if rows:
                try:
                    pages.append(np.array([r[:6] for r in rows], dtype=np.float64))
                except (ValueError, TypeError, IndexError) as e:
                    raise DataSourceError(f"Bybit kline {symbol}: malformed result.list row ({e})") from None
            hi = lo
        arr = np.concatenate(pages) if pages else np.empty((0, 6))
        times = arr[:, 0].astype(np.int64)
        keep = (times >= start_ms) & (times < end_ms)
        covered = end_ms
        if server_now is not None:
            covered = min(end_ms, max(start_ms, server_now - server_now % step))
            keep &= times + step <= server_now
        arr, times = arr[keep], times[keep]
        uniq, first = np.unique(times, return_index=True)  # sorted; the newest page's copy wins on duplicates
        arr = arr[first]
        cols = {"open_time_ms": uniq, **{c: arr[:, k] for k, c in enumerate(COLUMNS) if k}}
        return FetchResult(cols, covered)
