"""Trade ingest into one symbol's :class:`~bot.storage.tape.TradeTape`: validation, de-duplication, append.

Two input shapes, one set of rules (STRATEGY.md §3), and the same tape contents and counts for the same trades:
- ``Trade`` events (a list of one symbol's prints), built into columns here;
- a :class:`~bot.events.TradeBatch`, already columns: validated and de-duplicated as arrays, appended with numpy
  slices. Real tapes print thousands of trades a minute; no Python work per trade on the normal path.

A row is bad (dropped, counted) if ts, price or size is not finite, price or size is not > 0, the side is unknown or
a string id is empty. Then duplicates are dropped: string ids against the tape's two-generation id sets, int64 ids
against its high-water mark (:meth:`TradeTape.filter_int_ids`). Both functions return ``(bad, duplicates)`` for the
caller to report; the order of the checks (validate, then de-duplicate the valid rows) is the same for both shapes.

Tiny inputs (a print or a handful, the usual live frame) take a plain-Python path: per-call numpy overhead (~1 µs a
call) dominates arrays that short. It writes the same values (:meth:`TradeTape.append_rows`).
"""

from __future__ import annotations

import math
from operator import attrgetter

import numpy as np

from bot.events import Trade, TradeBatch
from bot.storage.tape import TradeTape

_TS, _PRICE, _SIZE, _SIDE, _ID = map(attrgetter, ("ts", "price", "size", "side", "trade_id"))
_INF = math.inf
_isfinite = math.isfinite
_dot = np.dot
_count = np.count_nonzero
_greater = np.greater
_minimum = np.minimum
_min_of = np.minimum.reduce

SMALL_BATCH = 16
"""``Trade`` lists up to this size are ingested with plain Python."""
SMALL_ARRAY_BATCH = 24
"""``TradeBatch``es up to this size are ingested with plain Python (``tolist`` of five short columns is cheaper than
the dozen numpy calls of the array path)."""


def append_trades(tape: TradeTape, trades: list[Trade], now: float) -> tuple[int, int]:
    """Ingest one symbol's ``Trade`` events; returns (bad rows dropped, duplicates dropped)."""
    m = len(trades)
    if m <= SMALL_BATCH:
        done = _append_trades_small(tape, trades, now)
        if done is not None:
            return 0, done
    t = np.fromiter(map(_TS, trades), np.float64, m)
    p = np.fromiter(map(_PRICE, trades), np.float64, m)
    v = np.fromiter(map(_SIZE, trades), np.float64, m)
    sides = list(map(_SIDE, trades))
    ids = list(map(_ID, trades))
    n_buy = sides.count("Buy")
    is_buy = np.fromiter(map("Buy".__eq__, sides), bool, m) if 0 < n_buy < m else np.full(m, n_buy > 0)
    # the normal case in a few numpy calls (as in append_batch): p, v > 0, then Σ t·notional finite
    ok_all = n_buy + sides.count("Sell") == m and "" not in ids and _count(_greater(_minimum(p, v), 0.0)) == m
    if ok_all:
        notional = p * v
        ok_all = _isfinite(_dot(t, notional))
    bad = 0
    if not ok_all:
        good = _good_rows(t, p, v)
        good &= np.fromiter((s in ("Buy", "Sell") and i != "" for s, i in zip(sides, ids, strict=True)), bool, m)
        bad = m - int(good.sum())
        if bad:
            idx = np.flatnonzero(good)
            t, p, v, is_buy = t[idx], p[idx], v[idx], is_buy[idx]
            ids = [ids[i] for i in idx.tolist()]
            if not ids:
                return bad, 0
        notional = p * v
    keep = tape.filter_ids(ids)
    dup = 0
    if keep is not None:
        dup = len(ids) - len(keep)
        if not keep:
            return bad, dup
        t, p, v, is_buy, notional = t[keep], p[keep], v[keep], is_buy[keep], notional[keep]
    tape.append(t, p, v, is_buy, now, notional)
    return bad, dup


def _append_trades_small(tape: TradeTape, trades: list[Trade], now: float) -> int | None:
    """The usual few prints, all valid: plain floats into :meth:`TradeTape.append_rows`; returns the duplicates
    dropped, or None (nothing done) if any print is invalid, leaving the reporting to the array path."""
    ts: list[float] = []
    ps: list[float] = []
    vs: list[float] = []
    buys: list[bool] = []
    ids: list[str] = []
    inf = _INF
    for tr in trades:
        t, p, v, side, tid = float(tr.ts), float(tr.price), float(tr.size), tr.side, tr.trade_id
        if not (-inf < t < inf and 0.0 < p < inf and 0.0 < v < inf) or tid == "":
            return None
        if side == "Buy":
            buys.append(True)
        elif side == "Sell":
            buys.append(False)
        else:
            return None
        ts.append(t)
        ps.append(p)
        vs.append(v)
        ids.append(tid)
    keep = tape.filter_ids(ids)
    if keep is None:
        tape.append_rows(ts, ps, vs, buys, now)
        return 0
    return _append_rows_kept(tape, ts, ps, vs, buys, keep, now)


def append_batch(tape: TradeTape, b: TradeBatch, now: float) -> tuple[int, int]:
    """Ingest a ``TradeBatch`` (columns of equal length); returns (bad rows dropped, duplicates dropped)."""
    t, p, v, is_buy, ids = b.ts, b.price, b.size, b.is_buy, b.trade_id
    m = len(t)
    int_ids = ids.dtype.kind in "iu"
    if m <= SMALL_ARRAY_BATCH:
        done = _append_batch_small(tape, b, int_ids, now)
        if done is not None:
            return 0, done
    str_ids: list[str] = [] if int_ids else ids.tolist()
    # normal case, in a few numpy calls: p, v > 0 (NaN fails); then every notional is > 0, so Σ t·notional is
    # finite iff every t, p and v is. The notional goes straight to the tape's free rows (None: reallocation due).
    if _min_of(_minimum(p, v)) > 0.0 and (int_ids or "" not in str_ids):  # min is NaN if any value is
        staged = tape.stage_notional(p, v)
        if staged is not None and _isfinite(_dot(t, staged)):
            keep = tape.filter_int_ids(ids) if int_ids else tape.filter_ids(str_ids)
            if keep is None:
                tape.append_staged(t, p, v, is_buy, now)
                return 0, 0
            if len(keep):
                tape.append(t[keep], p[keep], v[keep], is_buy[keep], now)
            return 0, m - len(keep)
    good = _good_rows(t, p, v)
    if not int_ids:
        good &= np.fromiter((i != "" for i in str_ids), bool, m)
    bad = m - int(_count(good))
    if bad:
        idx = np.flatnonzero(good)
        if not len(idx):
            return bad, 0
        t, p, v, is_buy, ids = t[idx], p[idx], v[idx], is_buy[idx], ids[idx]
        if not int_ids:
            str_ids = [str_ids[i] for i in idx.tolist()]
    keep = tape.filter_int_ids(ids) if int_ids else tape.filter_ids(str_ids)
    dup = 0
    if keep is not None:
        dup = len(t) - len(keep)
        if not len(keep):
            return bad, dup
        t, p, v, is_buy = t[keep], p[keep], v[keep], is_buy[keep]
    tape.append(t, p, v, is_buy, now)
    return bad, dup


def _append_batch_small(tape: TradeTape, b: TradeBatch, int_ids: bool, now: float) -> int | None:
    """:func:`_append_trades_small` for a short ``TradeBatch``; None if a row is invalid (the array path reports)."""
    inf = _INF
    if len(b.ts) == 1:  # the commonest frame: one print, no lists to build or filter
        t, p, v = b.ts.item(0), b.price.item(0), b.size.item(0)
        if not (-inf < t < inf and 0.0 < p < inf and 0.0 < v < inf):
            return None
        tid = b.trade_id.item(0)
        if int_ids:
            if tid <= tape.id_mark:
                return 1
            tape.id_mark = tid
        elif tid == "":
            return None
        elif not tape.is_new_id(tid):
            return 1
        tape.append_one(t, p, v, b.is_buy.item(0), now)
        return 0
    ts: list[float] = b.ts.tolist()
    ps: list[float] = b.price.tolist()
    vs: list[float] = b.size.tolist()
    for t, p, v in zip(ts, ps, vs, strict=True):
        if not (-inf < t < inf and 0.0 < p < inf and 0.0 < v < inf):
            return None
    ids = b.trade_id.tolist()
    if int_ids:
        keep = tape.filter_int_id_list(ids)
    else:
        if "" in ids:
            return None
        keep = tape.filter_ids(ids)
    if keep is None:
        tape.append_rows(ts, ps, vs, b.is_buy.tolist(), now)
        return 0
    return _append_rows_kept(tape, ts, ps, vs, b.is_buy.tolist(), keep, now)


def _append_rows_kept(tape: TradeTape, ts: list[float], ps: list[float], vs: list[float], buys: list[bool],
                      keep: list[int] | None, now: float) -> int:
    """Append the rows ``keep`` (all if None) with :meth:`TradeTape.append_rows`; returns the duplicates dropped."""
    dup = 0
    if keep is not None:
        dup = len(ts) - len(keep)
        if not keep:
            return dup
        ts, ps = [ts[i] for i in keep], [ps[i] for i in keep]
        vs, buys = [vs[i] for i in keep], [buys[i] for i in keep]
    tape.append_rows(ts, ps, vs, buys, now)
    return dup


def _good_rows(t: np.ndarray, p: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & np.isfinite(p) & np.isfinite(v) & (p > 0.0) & (v > 0.0)
