"""Candle validation: a pure check that lists every problem, and a raise-on-error wrapper.

Bad candles must never reach the synthetic market as silently wrong numbers: every issue names its source and the
row (``line N`` for CSV files, header = line 1) or the span, and gaps are never interpolated — they are refused or
split into contiguous segments by ``backtest.gap_policy``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from replay.data.errors import DataError
from replay.data.timeutil import MINUTE_MS, fmt_span, fmt_utc

COLUMNS = ("open_time_ms", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
GapPolicy = Literal["refuse", "split"]

# Order in which problems are reported first: the most basic problem explains the later ones.
_KIND_ORDER = ("empty", "nan", "misaligned", "unsorted", "duplicate", "price", "ohlc", "volume", "gap")


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One problem found in a candle series; ``row`` is the 0-based data row, ``time_ms`` its candle open time."""

    kind: str
    message: str
    row: int | None = None
    time_ms: int | None = None
    end_ms: int | None = None  # gaps: open time of the next present candle
    missing: int = 0  # gaps: number of missing minutes

    @property
    def is_gap(self) -> bool:
        return self.kind == "gap"


def as_columns(data: Any) -> dict[str, np.ndarray]:
    """The six columns of a DataFrame, a ``Candles`` or a mapping, as numpy arrays (no copy when possible)."""
    if isinstance(data, Mapping):
        get = data.__getitem__
    elif hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas DataFrame
        missing = [c for c in COLUMNS if c not in data.columns]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
        return {c: data[c].to_numpy() for c in COLUMNS}
    else:
        def get(name: str) -> Any:
            return getattr(data, name)
    try:
        return {c: np.asarray(get(c)) for c in COLUMNS}
    except (KeyError, AttributeError) as e:
        raise DataError(f"missing column {e}; expected {','.join(COLUMNS)}") from None


def _v(x: float) -> str:
    return repr(float(x))


def _labeler(source: str, line_offset: int | None, t: np.ndarray) -> Callable[[int], str]:
    def label(i: int) -> str:
        where = f"line {i + line_offset}" if line_offset is not None else f"row {i}"
        ti = t[i]
        when = f" ({fmt_utc(int(ti))})" if np.isfinite(ti) else ""
        return f"{source}: {where}{when}"

    return label


def _cap(issues: list[DataIssue], kind: str, total: int, max_per_kind: int, source: str) -> list[DataIssue]:
    if total > max_per_kind:
        issues.append(DataIssue(kind, f"{source}: ... and {total - max_per_kind} more {kind} problem(s)"))
    return issues


def validate_candles(
    data: Any, *, source: str = "<candles>", line_offset: int | None = None, max_per_kind: int = 20
) -> list[DataIssue]:
    """Every problem in a 1m candle series, most basic first; an empty list means the series is usable as is.

    Checks: non-empty, finite values, minute-aligned open times, sorted, unique minutes, no gaps, positive prices,
    ``high >= max(open, close)``, ``low <= min(open, close)``, ``high >= low``, ``volume >= 0``.
    At most ``max_per_kind`` issues per kind are listed, then one summary issue with the remaining count.
    """
    cols = as_columns(data)
    t = cols["open_time_ms"].astype(np.float64, copy=False)
    n = len(t)
    if n == 0:
        return [DataIssue("empty", f"{source}: no candles (empty file or header only)")]
    lengths = {c: len(a) for c, a in cols.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{source}: columns have different lengths {lengths}")
    label = _labeler(source, line_offset, t)
    f = {c: cols[c].astype(np.float64, copy=False) for c in COLUMNS[1:]}
    out: list[DataIssue] = []

    # Non-finite values: named per row and column.
    bad = {c: ~np.isfinite(a) for c, a in {"open_time_ms": t, **f}.items()}
    rows = np.flatnonzero(np.logical_or.reduce(list(bad.values())))
    nan_issues = [
        DataIssue("nan", f"{label(int(i))}: NaN/empty value in {', '.join(c for c in bad if bad[c][i])}", int(i),
                  int(t[i]) if np.isfinite(t[i]) else None)
        for i in rows[:max_per_kind]
    ]
    out += _cap(nan_issues, "nan", len(rows), max_per_kind, source)

    valid = np.flatnonzero(np.isfinite(t))
    tv = t[valid]
    mis = valid[np.mod(tv, MINUTE_MS) != 0]
    out += _cap([DataIssue("misaligned", f"{label(int(i))}: open time {int(t[i])} is not on a whole minute", int(i),
                           int(t[i])) for i in mis[:max_per_kind]], "misaligned", len(mis), max_per_kind, source)

    d = np.diff(tv)
    dec = np.flatnonzero(d < 0)
    out += _cap([DataIssue("unsorted", f"{label(int(valid[k + 1]))}: earlier than the previous row "
                           f"({fmt_utc(int(tv[k]))}); rows must be sorted by open_time_ms", int(valid[k + 1]),
                           int(tv[k + 1])) for k in dec[:max_per_kind]], "unsorted", len(dec), max_per_kind, source)

    order = np.argsort(tv, kind="stable")
    ts = tv[order]
    dup_at = np.flatnonzero(ts[1:] == ts[:-1])
    dup_issues = []
    for k in dup_at[:max_per_kind]:
        a, b = sorted((int(valid[order[k]]), int(valid[order[k + 1]])))
        where = f"line {a + line_offset} and line {b + line_offset}" if line_offset is not None else f"rows {a} and {b}"
        dup_issues.append(DataIssue("duplicate", f"{source}: duplicated minute {fmt_utc(int(ts[k]))} at {where}", b,
                                    int(ts[k])))
    out += _cap(dup_issues, "duplicate", len(dup_at), max_per_kind, source)

    with np.errstate(invalid="ignore"):
        price_bad = {c: f[c] <= 0 for c in PRICE_COLUMNS}
        rows = np.flatnonzero(np.logical_or.reduce(list(price_bad.values())))
        out += _cap([DataIssue("price", f"{label(int(i))}: non-positive price "
                               + ", ".join(f"{c}={_v(f[c][i])}" for c in PRICE_COLUMNS if price_bad[c][i]), int(i))
                     for i in rows[:max_per_kind]], "price", len(rows), max_per_kind, source)

        o, h, lo, c, v = f["open"], f["high"], f["low"], f["close"], f["volume"]
        hi_bad = h < np.maximum(o, c)
        lo_bad = lo > np.minimum(o, c)
        hl_bad = h < lo
        rows = np.flatnonzero(hi_bad | lo_bad | hl_bad)
        ohlc_issues = []
        for i in rows[:max_per_kind]:
            why = []
            if hl_bad[i]:
                why.append(f"high {_v(h[i])} < low {_v(lo[i])}")
            if hi_bad[i]:
                why.append(f"high {_v(h[i])} < max(open {_v(o[i])}, close {_v(c[i])})")
            if lo_bad[i]:
                why.append(f"low {_v(lo[i])} > min(open {_v(o[i])}, close {_v(c[i])})")
            ohlc_issues.append(DataIssue("ohlc", f"{label(int(i))}: {'; '.join(why)}", int(i), int(t[i])))
        out += _cap(ohlc_issues, "ohlc", len(rows), max_per_kind, source)

        rows = np.flatnonzero(v < 0)
        out += _cap([DataIssue("volume", f"{label(int(i))}: negative volume {_v(v[i])}", int(i), int(t[i]))
                     for i in rows[:max_per_kind]], "volume", len(rows), max_per_kind, source)

    # Gaps are only meaningful on a clean, sorted, unique, aligned time axis.
    if len(valid) == n and not (len(mis) or len(dec) or len(dup_at)):
        out += gap_issues(t.astype(np.int64), source=source, line_offset=line_offset)
    out.sort(key=lambda x: _KIND_ORDER.index(x.kind))
    return out


def gap_issues(times: np.ndarray, *, source: str = "<candles>", line_offset: int | None = None) -> list[DataIssue]:
    """One issue per gap in a sorted, unique int64 minute axis: ``2025-06-01T10:03Z → 10:07Z (4 missing minutes)``."""
    d = np.diff(times)
    out = []
    for k in np.flatnonzero(d > MINUTE_MS):
        start, end = int(times[k]) + MINUTE_MS, int(times[k + 1])
        missing = (end - start) // MINUTE_MS
        if line_offset is not None:
            between = f"line {k + line_offset} and line {k + 1 + line_offset}"
        else:
            between = f"rows {k} and {k + 1}"
        out.append(DataIssue("gap", f"{source}: gap {fmt_span(start, end)} ({missing} missing minute"
                             f"{'s' if missing != 1 else ''}) between {between}", int(k + 1), start, end, missing))
    return out


def segment_bounds(times: np.ndarray) -> list[tuple[int, int]]:
    """``[(i, j), ...]`` index ranges of the contiguous 1m runs of a sorted, unique minute axis."""
    if len(times) == 0:
        return []
    cuts = (np.flatnonzero(np.diff(times) != MINUTE_MS) + 1).tolist()
    edges = [0, *cuts, len(times)]
    return list(itertools.pairwise(edges))


def summarize(issues: list[DataIssue]) -> str:
    """One line: the first issue, then how many more and of which kinds."""
    first = issues[0].message
    rest = issues[1:]
    if not rest:
        return first
    kinds = Counter(i.kind for i in rest)
    return f"{first} [+{len(rest)} more: " + ", ".join(f"{k}×{n}" for k, n in kinds.items()) + "]"


def ensure_valid(
    data: Any, *, source: str = "<candles>", line_offset: int | None = None, gap_policy: GapPolicy = "refuse"
) -> list[tuple[int, int]]:
    """Raise :class:`DataError` on any problem; return the contiguous segments (one when there is no gap).

    Gaps raise under ``gap_policy='refuse'``; under ``'split'`` they only cut the series into segments.
    """
    issues = validate_candles(data, source=source, line_offset=line_offset)
    hard = [i for i in issues if not i.is_gap]
    if hard:
        raise DataError(summarize(hard))
    gaps = [i for i in issues if i.is_gap]
    if gaps and gap_policy != "split":
        raise DataError(summarize(gaps) + " (backtest.gap_policy='refuse'; set 'split' to run contiguous segments)")
    return segment_bounds(as_columns(data)["open_time_ms"].astype(np.int64))
