"""The 1m OHLCV provider of the replay harness: bundled CSVs, the on-disk REST cache, or Bybit's REST API.

One entry point, :func:`load_candles`, selects a window (``days`` = the most recent N days available, or
``start``/``end``), validates it and returns numpy-backed :class:`Candles`. Every refusal says what exists
(symbol, first and last candle UTC, candle count, days) so the user can fix the request in one go.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from loguru import logger

from bot.instruments import InstrumentRegistry
from replay.data.bundled import BUNDLED_DIR, bundled_files, bundled_symbols, read_kline_csv
from replay.data.cache import DEFAULT_CACHE_DIR, KlineCache
from replay.data.errors import DataError, DataSourceError
from replay.data.rest import BybitKlineClient
from replay.data.timeutil import DAY_MS, MINUTE_MS, TimeLike, fmt_span, fmt_utc, to_ms, utc_day_start
from replay.data.validate import COLUMNS, GapPolicy, gap_issues, segment_bounds, summarize, validate_candles
from replay.synthetic.candles import Candles
from settings import Settings

Source = Literal["bundled", "rest_api", "recorded", "cache"]
SOURCES: tuple[str, ...] = ("bundled", "rest_api", "recorded", "cache")
RECORDED_MSG = "data_source 'recorded' replays calibration recordings; not available for kline loading"
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")

Columns = dict[str, np.ndarray]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def describe(symbol: str, cols: Columns, where: str) -> str:
    """``BTCUSDT bundled (file) holds 2025-05-30T16:39Z → 2025-06-29T16:38Z (43,200 candles, 30.0 days)``."""
    t = cols["open_time_ms"]
    if len(t) == 0:
        return f"{symbol} {where} holds no candles"
    days = (int(t[-1]) + MINUTE_MS - int(t[0])) / DAY_MS
    return (f"{symbol} {where} holds {fmt_utc(t[0])} → {fmt_utc(t[-1])} ({len(t):,} candles, {days:.1f} days; "
            f"times are candle opens, UTC)")


def _ceil_minute(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def _window(days: float | None, start: TimeLike | None, end: TimeLike | None, *, first_ms: int | None,
            hi_default_ms: int, default_days: float) -> tuple[int, int, str]:
    """``[lo, hi)`` of candle open times (minute-aligned) and a phrase for messages.

    ``days`` counts forward from ``start``, back from ``end``, else back from the newest candle; nothing at all means
    ``backtest.data_lookback_days``; ``end`` alone runs from the first candle available.
    """
    if days is not None and start is not None and end is not None:
        raise DataError("give at most two of days, start, end (days counts back from end or forward from start)")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float) or not days > 0):
        raise DataError(f"days must be a positive number, got {days!r}")
    try:
        lo = to_ms(start) if start is not None else None
        hi = to_ms(end) if end is not None else None
    except (ValueError, TypeError) as e:
        raise DataError(str(e)) from None
    if start is None and end is None and days is None:
        days = default_days
    span = None if days is None else round(days * DAY_MS / MINUTE_MS) * MINUTE_MS
    if lo is not None:
        hi = hi if hi is not None else (lo + span if span is not None else hi_default_ms)
    else:
        hi = hi if hi is not None else hi_default_ms
        fallback = first_ms if first_ms is not None else hi - round(default_days * DAY_MS)
        lo = hi - span if span is not None else fallback
    lo, hi = _ceil_minute(lo), _ceil_minute(hi)
    if hi <= lo:
        raise DataError(f"empty window: start {fmt_utc(lo)} is not before end {fmt_utc(hi)}")
    phrase = (f"the most recent {days:g} days" if start is None and end is None
              else f"{fmt_span(lo, hi)} (end exclusive)")
    return lo, hi, phrase


class KlineProvider:
    """Loads candles from one source; holds the cache/REST client so repeated loads in a worker reuse them."""

    def __init__(self, settings: Settings | None = None, *, source: Source | None = None,
                 data_dir: Path = BUNDLED_DIR, cache_dir: Path = DEFAULT_CACHE_DIR,
                 rest_client: BybitKlineClient | None = None, registry: InstrumentRegistry | None = None,
                 now_ms: Callable[[], int] = _wall_ms) -> None:
        self.settings = settings or Settings()
        self.source: str = source or self.settings.backtest.data_source
        if self.source not in SOURCES:
            raise DataSourceError(f"unknown data_source {self.source!r}; choose one of {', '.join(SOURCES)}")
        self.data_dir = Path(data_dir)
        self.cache = KlineCache(cache_dir)
        self._rest = rest_client
        self._registry = registry
        self.now_ms = now_ms

    @property
    def gap_policy(self) -> GapPolicy:
        return self.settings.backtest.gap_policy

    @property
    def rest(self) -> BybitKlineClient:
        if self._rest is None:
            self._rest = BybitKlineClient()
        return self._rest

    # ------------------------------------------------------------------ symbols
    def _check_symbol(self, symbol: str) -> str:
        sym = symbol.strip().upper()
        if not _SYMBOL_RE.match(sym):
            raise DataError(f"invalid symbol {symbol!r} (expected e.g. BTCUSDT)")
        if self.source == "bundled" and bundled_files(sym, self.data_dir):
            return sym
        registry = self._registry if self._registry is not None else InstrumentRegistry.bundled()
        bundled = ", ".join(bundled_symbols(self.data_dir)) or "none"
        if sym not in registry:
            raise DataError(f"unknown symbol {sym}: no bundled 1m data and not a Bybit linear instrument in the "
                            f"registry; bundled symbols: {bundled}")
        if self.source == "bundled":
            raise DataError(f"no bundled 1m data for {sym} (bundled symbols: {bundled}); set "
                            f"backtest.data_source='rest_api' to download it from Bybit")
        return sym

    # ------------------------------------------------------------------ sources
    def _bundled(self, sym: str) -> tuple[Columns, str, int | None]:
        """All bundled candles, a description of where they come from, and the CSV line offset (single file)."""
        files = bundled_files(sym, self.data_dir)
        parts = [read_kline_csv(p) for p in files]
        if len(parts) == 1:
            return parts[0], str(files[0]), 2
        cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
        where = " + ".join(p.name for p in files)
        hard = [i for i in validate_candles(cols, source=where) if not i.is_gap]
        if hard:
            raise DataError(summarize(hard))
        return cols, where, None

    def _from_cache_or_rest(self, sym: str, lo: int, hi: int, *, offline: bool) -> Columns:
        """Candles in ``[lo, hi)``: cached day files; missing days downloaded whole (then cached), today extended."""
        parts: list[Columns] = []
        missing: list[tuple[int, int, Columns | None]] = []  # (day start, fetch from, cached rows before that)
        day = utc_day_start(lo)
        while day < hi:
            hit = self.cache.read_day(sym, day)
            if hit is not None and hit[1] >= min(day + DAY_MS, hi):
                parts.append(hit[0])
            elif hit is not None:
                missing.append((day, hit[1], hit[0]))
            else:
                missing.append((day, day, None))
            day += DAY_MS
        if missing and offline:
            names = ", ".join(fmt_utc(d)[:10] for d, _, _ in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataSourceError(f"{sym}: kline cache {self.cache.root / sym} lacks {len(missing)} day(s) "
                                  f"({names}); use data_source='rest_api' to fill it")
        # Consecutive days go into one fetch so its pagination runs across day borders.
        runs: list[list[tuple[int, int, Columns | None]]] = []
        for m in missing:
            if runs and runs[-1][-1][0] + DAY_MS == m[0] and m[1] == m[0]:
                runs[-1].append(m)
            else:
                runs.append([m])
        for run in runs:
            res = self.rest.fetch(sym, run[0][1], run[-1][0] + DAY_MS)
            hard = [i for i in validate_candles(res.cols, source=f"{sym} Bybit REST") if not i.is_gap]
            if hard:  # refuse before caching, or a bad answer would be served from disk forever
                raise DataError(summarize(hard))
            t = res.cols["open_time_ms"]
            for d0, from_ms, old in run:
                i, j = np.searchsorted(t, [from_ms, d0 + DAY_MS])
                day_cols = {c: a[i:j] for c, a in res.cols.items()}
                if old is not None:
                    keep = old["open_time_ms"] < from_ms
                    day_cols = {c: np.concatenate([old[c][keep], day_cols[c]]) for c in COLUMNS}
                covered = min(d0 + DAY_MS, max(from_ms, res.covered_until_ms))
                if covered > from_ms:
                    self.cache.write_day(sym, d0, day_cols, covered)
                parts.append(day_cols)
        if not parts:
            return {c: np.empty(0, np.int64 if c == "open_time_ms" else np.float64) for c in COLUMNS}
        cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
        order = np.argsort(cols["open_time_ms"], kind="stable")
        t = cols["open_time_ms"][order]
        sel = order[(t >= lo) & (t < hi)]
        return {c: a[sel] for c, a in cols.items()}

    # ------------------------------------------------------------------ public
    def load_segments(self, symbol: str, *, days: float | None = None, start: TimeLike | None = None,
                      end: TimeLike | None = None) -> list[Candles]:
        """Validated candles of the window as contiguous segments (one unless gaps and ``gap_policy='split'``)."""
        if self.source == "recorded":
            raise DataSourceError(RECORDED_MSG)
        sym = self._check_symbol(symbol)
        default_days = float(self.settings.backtest.data_lookback_days)
        if self.source == "bundled":
            cols, where, line_offset = self._bundled(sym)
            t = cols["open_time_ms"]
            if len(t) == 0:
                raise DataError(f"{where}: no candles")
            lo, hi, phrase = _window(days, start, end, first_ms=int(t[0]), hi_default_ms=int(t[-1]) + MINUTE_MS,
                                     default_days=default_days)
            if lo < int(t[0]) or hi > int(t[-1]) + MINUTE_MS:  # never silently truncate a window
                raise DataError(f"{sym}: asked for {phrase}, but {describe(sym, cols, f'bundled ({where})')}")
            source_label = where
        else:
            now_closed = self.now_ms() // MINUTE_MS * MINUTE_MS
            lo, hi, phrase = _window(days, start, end, first_ms=None, hi_default_ms=now_closed,
                                     default_days=default_days)
            if hi > now_closed:
                raise DataError(f"{sym}: asked for {phrase}, which ends after the last closed candle "
                                f"({fmt_utc(now_closed - MINUTE_MS)})")
            cols = self._from_cache_or_rest(sym, lo, hi, offline=self.source == "cache")
            where = "Bybit REST" if self.source == "rest_api" else f"kline cache {self.cache.root / sym}"
            source_label, line_offset = f"{sym} {where}", None
            hard = [i for i in validate_candles(cols, source=source_label) if not i.is_gap]
            if hard:
                raise DataError(summarize(hard))
            t = cols["open_time_ms"]
            if len(t) == 0 or int(t[0]) > lo or int(t[-1]) < hi - MINUTE_MS:
                raise DataError(f"{sym}: asked for {phrase}, but in that span {describe(sym, cols, where)}")
        i, j = (int(x) for x in np.searchsorted(cols["open_time_ms"], [lo, hi]))
        sel = {c: a[i:j] for c, a in cols.items()}
        times = sel["open_time_ms"]
        gaps = gap_issues(times, source=source_label,
                          line_offset=None if line_offset is None else line_offset + i)
        if gaps and self.gap_policy != "split":
            raise DataError(summarize(gaps) + " (backtest.gap_policy='refuse'; set 'split' to run contiguous "
                            "segments, gaps are never interpolated)")
        if gaps:
            logger.warning(f"{sym}: {len(gaps)} gap(s) in {phrase}; split into {len(gaps) + 1} segments "
                           f"(first: {gaps[0].message})")
        return [Candles(symbol=sym, **{c: sel[c][a:b] for c in COLUMNS}) for a, b in segment_bounds(times)]

    def load(self, symbol: str, *, days: float | None = None, start: TimeLike | None = None,
             end: TimeLike | None = None) -> Candles:
        """One contiguous, validated window; gaps raise (under 'split' they point to :meth:`load_segments`)."""
        segs = self.load_segments(symbol, days=days, start=start, end=end)
        if len(segs) > 1:
            spans = "; ".join(fmt_span(int(s.open_time_ms[0]), int(s.open_time_ms[-1]) + MINUTE_MS) for s in segs[:3])
            raise DataError(f"{symbol}: window has {len(segs) - 1} gap(s), giving {len(segs)} segments ({spans}"
                            f"{' ...' if len(segs) > 3 else ''}); gap_policy='split' needs load_segments()")
        return segs[0]


def load_candles(symbol: str, *, days: float | None = None, start: TimeLike | None = None,
                 end: TimeLike | None = None, settings: Settings | None = None, source: Source | None = None,
                 **provider_kwargs: object) -> Candles:
    """Validated 1m candles of one symbol; ``source`` defaults to ``settings.backtest.data_source``."""
    provider = KlineProvider(settings, source=source, **provider_kwargs)  # type: ignore[arg-type]
    return provider.load(symbol, days=days, start=start, end=end)


def load_segments(symbol: str, *, days: float | None = None, start: TimeLike | None = None,
                  end: TimeLike | None = None, settings: Settings | None = None, source: Source | None = None,
                  **provider_kwargs: object) -> list[Candles]:
    """Like :func:`load_candles` but honours ``gap_policy='split'`` by returning contiguous segments."""
    provider = KlineProvider(settings, source=source, **provider_kwargs)  # type: ignore[arg-type]
    return provider.load_segments(symbol, days=days, start=start, end=end)
