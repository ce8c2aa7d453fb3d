"""The 1m kline provider on the real bundled data and on small corrupted copies of real rows."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.data import (
    RECORDED_MSG,
    DataError,
    DataSourceError,
    KlineProvider,
    ensure_valid,
    load_candles,
    load_segments,
    validate_candles,
)
from replay.data.bundled import BUNDLED_DIR, bundled_files
from settings import Settings

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
FIRST_MS = 1748623140000  # 2025-05-30T16:39Z, first bundled candle
LAST_MS = FIRST_MS + (43_200 - 1) * 60_000  # 2025-06-29T16:38Z
SPLIT = Settings(backtest={"gap_policy": "split"})


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def real_lines() -> list[str]:
    """Header + the first 12 real BTCUSDT rows, as text lines."""
    with gzip.open(bundled_files("BTCUSDT")[0], "rt") as f:
        return [next(f).rstrip("\n") for _ in range(13)]


def write_gz(dir_: Path, lines: list[str], symbol: str = "BTCUSDT") -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    path = dir_ / f"{symbol}_1m_test.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def load_from(dir_: Path, settings: Settings | None = None, **kw: object):
    return KlineProvider(settings, source="bundled", data_dir=dir_).load("BTCUSDT", **kw)


# ---------------------------------------------------------------------------------------------------- bundled
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_bundled_symbol_loads_30_days_as_numpy(symbol: str) -> None:
    c = load_candles(symbol, settings=Settings())
    assert c.symbol == symbol
    assert len(c.open_time_ms) == 43_200
    assert c.open_time_ms.dtype == np.int64 and c.close.dtype == np.float64
    ref = pd.read_csv(bundled_files(symbol)[0])  # an independent parse of the same file
    assert int(c.open_time_ms[0]) == ref["open_time_ms"].iloc[0] and int(c.open_time_ms[-1]) == ref[
        "open_time_ms"].iloc[-1]
    assert int(c.open_time_ms[-1]) - int(c.open_time_ms[0]) == (43_200 - 1) * 60_000
    assert np.all(np.diff(c.open_time_ms) == 60_000)
    assert np.all(c.high >= np.maximum(c.open, c.close)) and np.all(c.low <= np.minimum(c.open, c.close))
    np.testing.assert_array_equal(c.close, ref["close"].to_numpy())
    np.testing.assert_array_equal(c.volume, ref["volume"].to_numpy())


def test_first_btc_row_is_the_real_file_row() -> None:
    c = load_candles("BTCUSDT", days=1, start=FIRST_MS, settings=Settings())
    assert (c.open[0], c.high[0], c.low[0], c.close[0], c.volume[0]) == (104217.5, 104402.7, 104200.0, 104337.8,
                                                                           477.605)


def test_loaded_arrays_are_shared_and_read_only() -> None:
    a = load_candles("ETHUSDT", settings=Settings())
    b = load_candles("ETHUSDT", days=1, settings=Settings())
    assert np.shares_memory(a.close, b.close)  # parsed once per process, then sliced
    with pytest.raises(ValueError, match="read-only"):
        a.close[0] = 1.0


def test_days_30_is_everything_and_days_31_says_what_exists() -> None:
    c = load_candles("BTCUSDT", days=30, settings=Settings())
    assert len(c.open_time_ms) == 43_200
    with pytest.raises(DataError) as e:
        load_candles("BTCUSDT", days=31, settings=Settings())
    msg = str(e.value)
    for part in ("BTCUSDT", "31 days", "2025-05-30T16:39Z", "2025-06-29T16:38Z", "43,200 candles", "30.0 days",
                 "BTCUSDT_1m_2025-05-30_2025-06-29.csv.gz"):
        assert part in msg, (part, msg)
    assert "\n" not in msg


def test_days_takes_the_most_recent_candles() -> None:
    last = int(load_candles("SOLUSDT", settings=Settings()).open_time_ms[-1])
    assert last == LAST_MS + 2 * 60_000  # SOL's file starts and ends two minutes after BTC's
    c = load_candles("SOLUSDT", days=1, settings=Settings())
    assert len(c.open_time_ms) == 1440 and int(c.open_time_ms[-1]) == last
    half = load_candles("SOLUSDT", days=0.5, settings=Settings())
    assert len(half.open_time_ms) == 720 and int(half.open_time_ms[-1]) == last


def test_default_window_is_data_lookback_days() -> None:
    c = load_candles("ETHUSDT", settings=Settings(backtest={"data_lookback_days": 2}))
    assert len(c.open_time_ms) == 2 * 1440 and int(c.open_time_ms[-1]) == LAST_MS


def test_start_end_select_a_window_end_exclusive() -> None:
    c = load_candles("BTCUSDT", start="2025-06-01", end="2025-06-02T00:00Z", settings=Settings())
    assert len(c.open_time_ms) == 1440
    assert int(c.open_time_ms[0]) == ms("2025-06-01T00:00") and int(c.open_time_ms[-1]) == ms("2025-06-01T23:59")
    same = load_candles("BTCUSDT", start=datetime(2025, 6, 1, tzinfo=UTC), end=datetime(2025, 6, 2, tzinfo=UTC),
                        settings=Settings())
    np.testing.assert_array_equal(c.close, same.close)
    full = load_candles("BTCUSDT", settings=Settings())
    i = int(np.searchsorted(full.open_time_ms, ms("2025-06-01T00:00")))
    np.testing.assert_array_equal(c.close, full.close[i:i + 1440])


def test_start_with_days_end_alone_and_start_alone() -> None:
    s = Settings()
    assert len(load_candles("ETHUSDT", start="2025-06-10T12:00Z", days=2, settings=s).open_time_ms) == 2880
    c = load_candles("ETHUSDT", end="2025-05-31T00:00Z", settings=s)
    assert int(c.open_time_ms[0]) == FIRST_MS and int(c.open_time_ms[-1]) == ms("2025-05-30T23:59")
    c = load_candles("ETHUSDT", start="2025-06-29T16:00Z", settings=s)
    assert len(c.open_time_ms) == 39 and int(c.open_time_ms[-1]) == LAST_MS
    c = load_candles("ETHUSDT", end="2025-06-02", days=1, settings=s)
    assert int(c.open_time_ms[0]) == ms("2025-06-01T00:00") and len(c.open_time_ms) == 1440


@pytest.mark.parametrize(("start", "end"), [("2025-05-29", "2025-06-01"), ("2025-06-28", "2025-06-30"),
                                            ("2024-01-01", "2024-01-02")])
def test_window_out_of_range_names_what_exists(start: str, end: str) -> None:
    with pytest.raises(DataError, match=r"asked for .* but BTCUSDT bundled .* holds 2025-05-30T16:39Z → "
                                        r"2025-06-29T16:38Z \(43,200 candles, 30.0 days"):
        load_candles("BTCUSDT", start=start, end=end, settings=Settings())


@pytest.mark.parametrize(("kw", "match"), [
    ({"start": "2025-06-02", "end": "2025-06-01"}, "empty window: start 2025-06-02T00:00Z is not before end"),
    ({"start": "yesterday"}, "not an ISO-8601 UTC time: 'yesterday'"),
    ({"days": 0}, "days must be a positive number, got 0"),
    ({"days": 1, "start": "2025-06-01", "end": "2025-06-02"}, "at most two of days, start, end"),
])
def test_bad_window_arguments(kw: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_candles("BTCUSDT", settings=Settings(), **kw)


def test_unknown_symbol_lists_bundled_symbols() -> None:
    with pytest.raises(DataError, match=r"unknown symbol NOSUCHCOINUSDT: .*not a Bybit linear instrument.*"
                                        r"bundled symbols: BTCUSDT, DOGEUSDT, ETHUSDT, SOLUSDT"):
        load_candles("NOSUCHCOINUSDT", settings=Settings())


def test_listed_symbol_without_bundled_file_points_to_rest() -> None:
    with pytest.raises(DataError, match=r"no bundled 1m data for XRPUSDT \(bundled symbols: BTCUSDT, DOGEUSDT, "
                                        r"ETHUSDT, SOLUSDT\); set backtest.data_source='rest_api'"):
        load_candles("xrpusdt", settings=Settings())


def test_recorded_source_is_refused_clearly() -> None:
    with pytest.raises(DataSourceError) as e:
        load_candles("BTCUSDT", settings=Settings(backtest={"data_source": "recorded"}))
    assert str(e.value) == RECORDED_MSG


def test_unknown_source_is_refused() -> None:
    with pytest.raises(DataSourceError, match="unknown data_source 'ftp'"):
        load_candles("BTCUSDT", settings=Settings(), source="ftp")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- bad files
def test_clean_copy_of_real_rows_loads(tmp_path: Path, real_lines: list[str]) -> None:
    write_gz(tmp_path, real_lines)
    c = load_from(tmp_path, start=FIRST_MS, end=FIRST_MS + 12 * 60_000)
    assert len(c.open_time_ms) == 12 and c.open[0] == 104217.5


def test_gap_is_refused_with_its_span(tmp_path: Path, real_lines: list[str]) -> None:
    write_gz(tmp_path, real_lines[:4] + real_lines[8:])  # drops data rows 4..7 = 16:42..16:45
    with pytest.raises(DataError) as e:
        load_from(tmp_path, days=12 / 1440)
    msg = str(e.value)
    assert "gap 2025-05-30T16:42Z → 16:46Z (4 missing minutes) between line 4 and line 5" in msg
    assert "BTCUSDT_1m_test.csv.gz" in msg and "gap_policy='refuse'" in msg


def test_gap_outside_the_window_does_not_matter(tmp_path: Path, real_lines: list[str]) -> None:
    write_gz(tmp_path, real_lines[:4] + real_lines[8:])
    c = load_from(tmp_path, start=FIRST_MS + 7 * 60_000)
    assert len(c.open_time_ms) == 5


def test_gap_policy_split_returns_contiguous_segments(tmp_path: Path, real_lines: list[str]) -> None:
    write_gz(tmp_path, real_lines[:4] + real_lines[8:10] + real_lines[11:])
    p = KlineProvider(SPLIT, source="bundled", data_dir=tmp_path)
    segs = p.load_segments("BTCUSDT", start=FIRST_MS, end=FIRST_MS + 12 * 60_000)
    assert [len(s.open_time_ms) for s in segs] == [3, 2, 2]
    for s in segs:
        assert np.all(np.diff(s.open_time_ms) == 60_000)
    assert int(segs[1].open_time_ms[0]) == FIRST_MS + 7 * 60_000
    assert sum(len(s.close) for s in segs) == 7  # nothing interpolated
    with pytest.raises(DataError, match=r"2 gap\(s\), giving 3 segments .*needs load_segments\(\)"):
        p.load("BTCUSDT", start=FIRST_MS, end=FIRST_MS + 12 * 60_000)


def test_module_level_load_segments_without_gap_is_one_segment() -> None:
    segs = load_segments("BTCUSDT", days=1, settings=SPLIT)
    assert len(segs) == 1 and len(segs[0].open_time_ms) == 1440


def _edit(lines: list[str], row: int, **values: str) -> list[str]:
    """Replace named columns of data row ``row`` (0-based, header excluded)."""
    out = list(lines)
    header = out[0].split(",")
    cells = out[row + 1].split(",")
    for k, v in values.items():
        cells[header.index(k)] = v
    out[row + 1] = ",".join(cells)
    return out


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda ls: _edit(ls, 4, close=""), "line 6 (2025-05-30T16:43Z): NaN/empty value in close"),
    (lambda ls: _edit(ls, 2, high="nan", low="nan"), "line 4 (2025-05-30T16:41Z): NaN/empty value in high, low"),
    (lambda ls: [*ls[:6], ls[5], *ls[6:]], "duplicated minute 2025-05-30T16:43Z at line 6 and line 7"),
    (lambda ls: _edit(ls, 2, high="104100.0", low="104300.0"), "line 4 (2025-05-30T16:41Z): high 104100.0 < low "
                                                               "104300.0"),
    (lambda ls: _edit(ls, 1, high="104250.0"), "line 3 (2025-05-30T16:40Z): high 104250.0 < max(open 104337.8"),
    (lambda ls: [ls[0], *ls[1:3], ls[4], ls[3], *ls[5:]], "line 5 (2025-05-30T16:41Z): earlier than the previous "
                                                          "row (2025-05-30T16:42Z); rows must be sorted"),
    (lambda ls: _edit(ls, 3, volume="-1.5"), "line 5 (2025-05-30T16:42Z): negative volume -1.5"),
    (lambda ls: _edit(ls, 0, open="0"), "line 2 (2025-05-30T16:39Z): non-positive price open=0.0"),
    (lambda ls: _edit(ls, 7, volume="abc"), "line 9: volume='abc' is not a number"),
    (lambda ls: _edit(ls, 2, open_time_ms="1748623260500"), "line 4 (2025-05-30T16:41:00.500Z): open time "
                                                            "1748623260500 is not on a whole minute"),
    (lambda ls: [ls[0]], "no candles (empty file or header only)"),
    (lambda ls: [], "empty file (expected a header open_time_ms,open,high,low,close,volume"),
    (lambda ls: ["time,o,h,l,c,v", *ls[1:]], "missing column(s) open_time_ms, open, high, low, close, volume"),
])
def test_bad_data_error_names_file_and_row(tmp_path: Path, real_lines: list[str], mutate, expected: str) -> None:
    path = write_gz(tmp_path, mutate(real_lines))
    with pytest.raises(DataError) as e:
        load_from(tmp_path, days=1 / 1440)
    msg = str(e.value)
    assert expected in msg, msg
    assert str(path) in msg and "\n" not in msg


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "BTCUSDT_1m_bad.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    with pytest.raises(DataError, match=r"BTCUSDT_1m_bad\.csv\.gz: not a readable"):
        load_from(tmp_path)


def test_many_bad_rows_are_summarised_in_one_line(tmp_path: Path, real_lines: list[str]) -> None:
    lines = real_lines
    for r in range(12):
        lines = _edit(lines, r, volume="-1")
    write_gz(tmp_path, lines)
    with pytest.raises(DataError) as e:
        load_from(tmp_path)
    assert "line 2 (2025-05-30T16:39Z): negative volume -1.0 [+11 more: volume×11]" in str(e.value)


# ---------------------------------------------------------------------------------------------------- pure validation
def test_validate_candles_on_real_data_is_clean_for_all_input_shapes() -> None:
    c = load_candles("BTCUSDT", days=2, settings=Settings())
    assert validate_candles(c) == []
    df = pd.DataFrame({k: getattr(c, k) for k in ("open_time_ms", "open", "high", "low", "close", "volume")})
    assert validate_candles(df) == []
    assert validate_candles(df.to_dict("series")) == []


def test_validate_candles_reports_gap_fields_and_split_bounds() -> None:
    c = load_candles("BTCUSDT", days=1, settings=Settings())
    cols = {k: np.delete(getattr(c, k), [10, 11, 12, 500]) for k in ("open_time_ms", "open", "high", "low", "close",
                                                                      "volume")}
    issues = validate_candles(cols, source="mem")
    assert [i.kind for i in issues] == ["gap", "gap"]
    g = issues[0]
    assert (g.missing, g.time_ms, g.end_ms, g.row) == (3, int(c.open_time_ms[10]), int(c.open_time_ms[13]), 10)
    assert "rows 9 and 10" in g.message
    with pytest.raises(DataError, match=r"mem: gap .* \(3 missing minutes\) .*\[\+1 more: gap×1\]"):
        ensure_valid(cols, source="mem")
    assert ensure_valid(cols, source="mem", gap_policy="split") == [(0, 10), (10, 497), (497, 1436)]


def test_validate_candles_empty_and_unequal_columns() -> None:
    empty = {k: np.array([]) for k in ("open_time_ms", "open", "high", "low", "close", "volume")}
    assert [i.kind for i in validate_candles(empty)] == ["empty"]
    bad = {**empty, "open_time_ms": np.array([FIRST_MS])}
    with pytest.raises(DataError, match="different lengths"):
        validate_candles(bad)


def test_bundled_dir_is_inside_the_project() -> None:
    assert BUNDLED_DIR.is_dir() and BUNDLED_DIR.is_relative_to(Path(__file__).resolve().parents[1])
