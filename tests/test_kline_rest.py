"""REST kline source against a real local HTTP server answering with Bybit v5 shapes from the bundled candles."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bybit_http_server import BybitHTTPServer, KlineRoute, Reply, Request, bundled_klines
from pybit.unified_trading import HTTP

from replay.data import BybitKlineClient, DataError, DataSourceError, KlineProvider
from settings import Settings

BTC_FIRST = 1748623140000  # 2025-05-30T16:39Z
BTC_LAST = BTC_FIRST + (43_200 - 1) * 60_000  # 2025-06-29T16:38Z
NOW = BTC_LAST + 60_000  # the exchange clock: the last bundled candle has just closed
DAY = 86_400_000
JUN1 = 1748736000000  # 2025-06-01T00:00Z
KLINE = "/v5/market/kline"
SHAPE = Path(__file__).resolve().parents[1] / "data" / "rest" / "shape-examples" / "linear_klines_btc.json"


@pytest.fixture(scope="module")
def data() -> dict[str, dict[str, np.ndarray]]:
    return bundled_klines(["BTCUSDT", "ETHUSDT"])


@pytest.fixture
def server(data) -> Iterator[BybitHTTPServer]:
    with BybitHTTPServer(now_ms=NOW) as srv:
        srv.serve_klines(data)
        yield srv


class Sleeps(list):
    """Records requested waits instead of waiting, so backoff is asserted, not endured."""

    def __call__(self, s: float) -> None:
        self.append(s)


def provider(srv: BybitHTTPServer, cache: Path, *, source: str = "rest_api", sleeps: Sleeps | None = None,
             now: int = NOW, **client_kw: object) -> KlineProvider:
    client = BybitKlineClient(base_url=srv.base_url, sleep=sleeps if sleeps is not None else Sleeps(), **client_kw)
    return KlineProvider(Settings(), source=source, cache_dir=cache, rest_client=client,  # type: ignore[arg-type]
                         now_ms=lambda: now)


def expected(data, symbol: str, lo: int, hi: int) -> dict[str, np.ndarray]:
    t = data[symbol]["open_time_ms"]
    i, j = np.searchsorted(t, [lo, hi])
    return {c: a[i:j] for c, a in data[symbol].items()}


def assert_same(c, exp) -> None:
    for k, a in exp.items():
        np.testing.assert_array_equal(getattr(c, k), a, err_msg=k)


# ---------------------------------------------------------------------------------------------------- the fixture
def test_server_answers_with_bybit_kline_shape(server: BybitHTTPServer) -> None:
    url = f"{server.base_url}{KLINE}?category=linear&symbol=BTCUSDT&interval=1&start={JUN1}&end={JUN1 + 299_999}" \
          "&limit=3"
    with urllib.request.urlopen(url) as r:
        body = json.load(r)
    ref = json.loads(SHAPE.read_text())
    assert set(ref) <= set(body) and set(ref["result"]) <= set(body["result"])
    assert body["retCode"] == 0 and body["retMsg"] == "OK" and body["retExtInfo"] == {} and body["time"] == NOW
    rows = body["result"]["list"]
    assert [r[0] for r in rows] == [str(JUN1 + k * 60_000) for k in (4, 3, 2)]  # newest `limit` rows, newest first
    assert all(len(r) == 7 and all(isinstance(x, str) for x in r) for r in rows)
    assert server.count(KLINE) == 1 and server.requests[0].query["limit"] == "3"


def test_server_errors_and_unknown_route(server: BybitHTTPServer) -> None:
    url = f"{server.base_url}{KLINE}?category=linear&symbol=NOPEUSDT&interval=1"
    with urllib.request.urlopen(url) as r:
        assert json.load(r)["retCode"] == 10001
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{server.base_url}/v5/market/time")
    assert e.value.code == 404
    server.route("GET", "/v5/market/time", lambda req: {"retCode": 0, "result": {"timeSecond": str(NOW // 1000)}})
    with urllib.request.urlopen(f"{server.base_url}/v5/market/time") as r:
        assert json.load(r)["result"]["timeSecond"] == str(NOW // 1000)


# ---------------------------------------------------------------------------------------------------- pagination
def test_paginates_over_1000_rows_and_second_load_hits_the_cache(server, data, tmp_path: Path) -> None:
    p = provider(server, tmp_path)
    assert isinstance(p.rest.session, HTTP) and p.rest.session.endpoint == server.base_url
    c = p.load("BTCUSDT", start=JUN1, end=JUN1 + 2 * DAY)
    assert len(c.open_time_ms) == 2880
    assert_same(c, expected(data, "BTCUSDT", JUN1, JUN1 + 2 * DAY))
    assert server.count(KLINE) == 3  # 2880 candles in pages of <= 1000
    pages = sorted((int(r.query["start"]), int(r.query["end"])) for r in server.requests)
    assert pages[0][0] == JUN1 and pages[-1][1] == JUN1 + 2 * DAY - 1
    assert all(int(r.query["limit"]) == 1000 for r in server.requests)
    assert len(list(tmp_path.rglob("*.parquet"))) == 2  # one file per UTC day

    again = provider(server, tmp_path).load("BTCUSDT", start=JUN1 + 3600_000, end=JUN1 + DAY + 60_000)
    assert server.count(KLINE) == 3  # no HTTP at all: a sub-span of what is cached
    assert_same(again, expected(data, "BTCUSDT", JUN1 + 3600_000, JUN1 + DAY + 60_000))
    offline = provider(server, tmp_path, source="cache").load("BTCUSDT", start=JUN1, end=JUN1 + 2 * DAY)
    assert_same(offline, expected(data, "BTCUSDT", JUN1, JUN1 + 2 * DAY))
    assert server.count(KLINE) == 3


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_overlapping_pages_are_deduped_and_sorted(server, data, tmp_path: Path, order: str) -> None:
    """Pages widened by 7 minutes each side overlap their neighbours and spill outside the span; listed in either
    order, the result is still exactly the span, once per minute, ascending."""
    plain = KlineRoute(data, server.now_ms)

    def sloppy(req: Request):
        q = dict(req.query, start=str(int(req.query["start"]) - 420_000), end=str(int(req.query["end"]) + 420_000))
        body = plain(Request(req.method, req.path, q, req.headers, req.body))
        if order == "oldest_first":
            body["result"]["list"].reverse()
        return body

    server.route("GET", KLINE, sloppy)
    lo, hi = JUN1 + 5 * 60_000, JUN1 + DAY - 3 * 60_000
    res = provider(server, tmp_path).rest.fetch("BTCUSDT", lo, hi)
    exp = expected(data, "BTCUSDT", lo, hi)
    np.testing.assert_array_equal(res.cols["open_time_ms"], exp["open_time_ms"])
    np.testing.assert_array_equal(res.cols["close"], exp["close"])
    assert res.covered_until_ms == hi


def test_forming_candle_is_dropped_and_coverage_stops_at_server_now(server, data, tmp_path: Path) -> None:
    t_k = JUN1 + 600 * 60_000
    server.now_ms_fixed = t_k + 30_000  # mid-candle: candle t_k is still forming
    res = provider(server, tmp_path).rest.fetch("BTCUSDT", JUN1, JUN1 + DAY)
    assert int(res.cols["open_time_ms"][-1]) == t_k - 60_000 and len(res.cols["open_time_ms"]) == 600
    assert res.covered_until_ms == t_k


def test_days_up_to_now_then_today_is_extended_not_refetched(server, data, tmp_path: Path) -> None:
    today = BTC_LAST - BTC_LAST % DAY
    noon = today + 12 * 3600_000
    server.now_ms_fixed = noon
    c = provider(server, tmp_path, now=noon).load("BTCUSDT", days=2)
    assert_same(c, expected(data, "BTCUSDT", noon - 2 * DAY, noon))
    n1 = server.count(KLINE)
    provider(server, tmp_path, now=noon).load("BTCUSDT", days=2)
    assert server.count(KLINE) == n1  # same span again: cache only

    server.now_ms_fixed = NOW
    c = provider(server, tmp_path, now=NOW).load("BTCUSDT", days=2)
    assert_same(c, expected(data, "BTCUSDT", NOW - 2 * DAY, NOW))
    new = server.requests[n1:]
    assert new and min(int(r.query["start"]) for r in new) == noon  # only the part of today not cached yet


# ---------------------------------------------------------------------------------------------------- rate limits
@pytest.mark.parametrize("http_status", [None, 429])
def test_rate_limit_is_retried_after_the_reset_time(server, data, tmp_path: Path, http_status: int | None) -> None:
    server.inject_rate_limit(KLINE, http_status=http_status, reset_in_ms=1500)
    sleeps = Sleeps()
    c = provider(server, tmp_path, sleeps=sleeps).load("BTCUSDT", start=JUN1, end=JUN1 + 3600_000)
    assert_same(c, expected(data, "BTCUSDT", JUN1, JUN1 + 3600_000))
    assert server.count(KLINE) == 3  # the day's two pages (the cache stores whole days) + one retry
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1.5


def test_rate_limit_retries_are_bounded(server, tmp_path: Path) -> None:
    server.inject_rate_limit(KLINE, times=10)
    sleeps = Sleeps()
    with pytest.raises(DataSourceError, match=r"GET /v5/market/kline BTCUSDT 2025-06-01T07:20Z → 2025-06-02T00:00Z: "
                                              r"gave up after 2 retries \(last: retCode 10006 'Too many visits!'\)"):
        provider(server, tmp_path, sleeps=sleeps, max_retries=2).load("BTCUSDT", start=JUN1, end=JUN1 + 3600_000)
    assert server.count(KLINE) == 3 and len(sleeps) == 2
    assert not list(tmp_path.rglob("*.parquet"))  # nothing half-fetched is cached


def test_exhausted_quota_header_paces_the_next_call(server, tmp_path: Path) -> None:
    import time

    server.default_headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0",
                              "X-Bapi-Limit-Reset-Timestamp": str(int(time.time() * 1000) + 60_000)}
    sleeps = Sleeps()
    provider(server, tmp_path, sleeps=sleeps).load("BTCUSDT", start=JUN1, end=JUN1 + DAY)
    assert server.count(KLINE) == 2 and len(sleeps) == 1 and 25 <= sleeps[0] <= 30  # waited (capped), no 10006


def test_http_error_that_is_not_a_rate_limit_fails_at_once(server, tmp_path: Path) -> None:
    server.inject(KLINE, Reply({"retCode": 403, "retMsg": "Forbidden"}, status=403))
    with pytest.raises(DataSourceError, match="HTTP 403"):
        provider(server, tmp_path).load("BTCUSDT", start=JUN1, end=JUN1 + 3600_000)
    assert server.count(KLINE) == 1


# ---------------------------------------------------------------------------------------------------- errors
def test_span_before_listing_says_what_exists(server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"BTCUSDT: asked for 2025-05-30T00:00Z → 2025-05-31T00:00Z .* but in that "
                                        r"span BTCUSDT Bybit REST holds 2025-05-30T16:39Z → 2025-05-30T23:59Z "
                                        r"\(441 candles"):
        provider(server, tmp_path).load("BTCUSDT", start="2025-05-30", end="2025-05-31")


def test_window_after_now_is_refused(server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="ends after the last closed candle \\(2025-06-29T16:38Z\\)"):
        provider(server, tmp_path).load("BTCUSDT", start="2025-06-29", end="2025-06-30")
    assert server.count(KLINE) == 0


def test_unknown_symbol_fails_before_any_request(server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown symbol NOSUCHCOINUSDT: .*bundled symbols: BTCUSDT, DOGEUSDT"):
        provider(server, tmp_path).load("NOSUCHCOINUSDT", days=1)
    assert server.count() == 0


def test_bybit_retcode_error_is_reported(server, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="retCode 10001 'Not supported symbols'"):
        provider(server, tmp_path).load("XRPUSDT", start=JUN1, end=JUN1 + 3600_000)


def test_cache_source_without_cache_names_missing_days(server, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match=r"lacks 2 day\(s\) \(2025-06-01, 2025-06-02\); use "
                                              r"data_source='rest_api'"):
        provider(server, tmp_path, source="cache").load("BTCUSDT", start=JUN1, end=JUN1 + 2 * DAY)
    assert server.count() == 0


def test_unreachable_server_gives_a_clear_error(tmp_path: Path) -> None:
    srv = BybitHTTPServer()
    url = srv.base_url
    srv.stop()  # nothing listens on that port any more
    client = BybitKlineClient(base_url=url, sleep=Sleeps(), max_retries=1, timeout_s=2)
    p = KlineProvider(Settings(), source="rest_api", cache_dir=tmp_path, rest_client=client, now_ms=lambda: NOW)
    with pytest.raises(DataSourceError, match="gave up after 1 retries \\(last: network error ConnectionError\\)"):
        p.load("BTCUSDT", start=JUN1, end=JUN1 + 3600_000)


def test_bad_rows_from_the_api_are_refused_and_not_cached(server, data, tmp_path: Path) -> None:
    plain = KlineRoute(data, server.now_ms)

    def broken(req: Request):
        body = plain(req)
        rows = body["result"]["list"]
        if rows:
            rows[5][2], rows[5][3] = rows[5][3], str(float(rows[5][2]) + 100)  # high below low
        return body

    server.route("GET", KLINE, broken)
    with pytest.raises(DataError, match=r"BTCUSDT Bybit REST: row \d+ \(2025-06-01T\d\d:\d\dZ\): high .* < low"):
        provider(server, tmp_path).load("BTCUSDT", start=JUN1, end=JUN1 + 3600_000)
    assert not list(tmp_path.rglob("*.parquet"))
