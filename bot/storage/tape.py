"""Per-symbol trade tape: numpy columns, retention pruning, prefix sums, O(log n) window queries (STRATEGY.md §3).

Layout: live trades are ``[lo, n)`` of fixed-capacity column buffers. Pruning only advances ``lo``; when a batch
does not fit, the live part is copied into *fresh* buffers (doubling if more than half is live). Old buffers are
never written below ``n`` again, so :class:`TradeView` slices handed out earlier stay valid snapshots.
Unused ``ts`` slots hold +inf so ``searchsorted`` can run on the whole buffer without slicing.

Prefix sums ``cum[i]`` (sum over ``[0, i)``) in one ``(cap + 1, 6)`` float64 matrix so a window aggregate is a
single row difference. Columns: buy count, buy notional, sell notional, Σq, Σq², Σ|Δp| with q = price − ref; ref is
re-chosen (and every sum recomputed from scratch) at each reallocation, which keeps q small and also resets the
round-off accumulated by the running sums. Round-off of a window's Σq² is ~1e-16 · Σ(q²) over the buffer.

Ingest only writes the columns; prefix sums and the min/max index are brought up to date lazily (``_sync``) by
the first aggregate query after new trades, or at ingest once ``SYNC_BACKLOG`` rows are pending. Batching that work
is what makes ingest cheap (the same numpy call covers many batches), and the backlog bound caps a query's cost.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import numpy as np

from bot.storage.minmax import RangeMinMax
from bot.storage.prefix_rows import prefix_rows
from bot.storage.trade_ids import TradeIds
from bot.storage.types import PriceStats, SideSums, TradeView

_C_NBUY, _C_NOTBUY, _C_NOTSELL, _C_Q, _C_Q2, _C_ADP = range(6)
_NCUM = 6
_NAN = math.nan
_EMPTY_STATS = PriceStats(0, _NAN, _NAN, _NAN, _NAN, _NAN)
_EMPTY_SUMS = SideSums(0, 0, 0.0, 0.0)
_add_accumulate = np.add.accumulate

DEFAULT_CAPACITY = 4096
SYNC_BACKLOG = 2048
SMALL_SYNC = 14
"""Up to this many rows, :meth:`TradeTape._sync` computes in Python floats (numpy's per-call overhead dominates)."""
_ROW_BYTES = 8 * _NCUM
_PACKERS: dict[int, Callable[..., None]] = {}
"""Per row count k: ``Struct(f"{6k}d").pack_into`` (the small catch-up's row writer, made on first use)."""
_accumulate_max = np.maximum.accumulate
_multiply = np.multiply
_subtract = np.subtract
_abs = np.absolute
_add = np.add


def _read_only(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class TradeTape(TradeIds):
    """The trade series of one symbol. ``seq`` of buffer index i is ``seq0 + i``; the first trade ever is seq 1.
    Its trade-id memory (de-duplication) is :class:`bot.storage.trade_ids.TradeIds`."""

    def __init__(self, retention_sec: float, capacity: int = DEFAULT_CAPACITY) -> None:
        self.retention_sec = float(retention_sec)
        self.lo = 0
        self.n = 0
        self.seq0 = 1
        self.ref = 0.0
        self.last_ts = -math.inf
        self.last_price: float | None = None
        self.synced = 0  # prefix sums and min/max cover rows [0, synced)
        TradeIds.__init__(self)
        self._alloc(max(64, capacity))

    # --- buffers ------------------------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        self.cap = cap
        self.ts = np.full(cap, np.inf)
        self.price = np.empty(cap)
        self.size = np.empty(cap)
        self.notional = np.empty(cap)
        self.is_buy = np.empty(cap, dtype=bool)
        self.seq = np.arange(self.seq0, self.seq0 + cap, dtype=np.int64)  # fixed per buffer: seq0 + index
        self.cum = np.empty((cap + 1, _NCUM))
        self.cum[0] = 0.0
        # the prefix sums as one flat memoryview: a query reads its few values (column j of row i at 6i + j) as the
        # stored doubles, without a gather, slice and tolist (each a numpy call)
        self._cmv = memoryview(self.cum.reshape(-1))
        self._ccols = tuple(self.cum[1:, j] for j in range(_NCUM))  # column j of row i + 1 is _ccols[j][i]
        self.mm = RangeMinMax(self.price)
        self.cols = (self.ts, self.price, self.size, self.notional, self.is_buy, self.seq)
        # memoryviews of the five written columns: an element write through one stores the same double (or bool)
        # as ndarray.__setitem__ at about half the cost (the one-trade and few-trade appends write element-wise)
        self.mvs = tuple(map(memoryview, self.cols[:5]))
        self.ro_cols = tuple(map(_read_only, self.cols))  # slices of a read-only view are read-only: no flag per view

    def _reallocate(self, need: int) -> None:
        """Move live trades ``[lo, n)`` to fresh buffers at index 0 with room for ``need`` more; rebuild indexes."""
        live = self.n - self.lo
        cap = self.cap
        while live + need > cap // 2:  # keep at least half free: reallocation stays amortised O(1)
            cap *= 2
        old = self.cols
        lo, n = self.lo, self.n
        self.seq0 += lo
        self._alloc(cap)
        for dst, src in zip(self.cols[:5], old[:5], strict=True):
            dst[:live] = src[lo:n]
        self.lo, self.n, self.synced = 0, live, 0
        self._sync()

    def _sync(self) -> None:
        """Extend prefix sums and the min/max index over rows ``[synced, n)``.

        The rows are built in place in ``cum`` and accumulated there: per-call numpy overhead, not arithmetic,
        is the cost for the usual few dozen rows, so this keeps to one ufunc call per column. The arithmetic
        (and so every bit of the sums) is that of ``cumsum(rows) + cum[s]``.
        """
        s, e = self.synced, self.n
        if s >= e:
            return
        if e - s <= SMALL_SYNC:
            self._sync_small(s, e)
            return
        if s == 0:
            self._sync_rebase(e)
            return
        # each column of the new rows is a 1-D slice of a cached column view (cheaper than 2-D indexing), and every
        # ufunc gets its output positionally (no keyword parsing): the same operations on the same values
        c0, c1, c2, c3, c4, c5 = self._ccols
        price = self.price
        p = price[s:e]
        buy = self.is_buy[s:e]
        notional = self.notional[s:e]
        c0[s:e] = buy
        nb = c1[s:e]
        _multiply(notional, buy, nb)
        _subtract(notional, nb, c2[s:e])
        q = c3[s:e]
        _subtract(p, self.ref, q)
        _multiply(q, q, c4[s:e])
        adp = c5[s:e]
        _subtract(p, price[s - 1 : e - 1], adp)
        _abs(adp, adp)
        cum = self.cum
        rows = cum[s + 1 : e + 1]
        _add_accumulate(rows, 0, None, rows)
        _add(rows, cum[s], rows)
        self.mm.extend(e)
        self.synced = e

    def _sync_rebase(self, e: int) -> None:
        """:meth:`_sync` of rows ``[0, e)`` (after a reallocation): ``ref`` is re-chosen as the first price, so q
        stays small relative to the prices actually held, and the first row's |Δp| is 0."""
        p = self.price[:e]
        self.ref = float(p[0])
        cum = self.cum
        rows = cum[1 : e + 1]
        buy = self.is_buy[:e]
        notional = self.notional[:e]
        rows[:, _C_NBUY] = buy
        nb = rows[:, _C_NOTBUY]
        np.multiply(notional, buy, out=nb)
        np.subtract(notional, nb, out=rows[:, _C_NOTSELL])
        q = rows[:, _C_Q]
        np.subtract(p, self.ref, out=q)
        np.multiply(q, q, out=rows[:, _C_Q2])
        adp = rows[:, _C_ADP]
        adp[0] = 0.0
        np.subtract(p[1:], p[:-1], out=adp[1:])
        np.abs(adp, out=adp)
        _add_accumulate(rows, axis=0, out=rows)
        rows += cum[0]
        self.mm.extend(e)
        self.synced = e

    def _sync_small(self, s: int, e: int) -> None:
        """:meth:`_sync` for a few rows, in Python floats: the same IEEE operations on the same values in the same
        order (each row's terms, their running sum from the first new row, plus ``cum[s]``), so the same bits, for
        a fraction of the ~20 numpy calls (no −0.0 can occur, so starting the running sums at the first row is
        exactly numpy's accumulate; see :func:`~bot.storage.prefix_rows.prefix_rows`). One ``struct.pack_into`` writes
        the new rows: each Python float is stored as its C double, the bits ``ndarray.__setitem__`` of the list
        would store, without numpy's per-element conversion of a list (~3× the cost)."""
        price = self.price
        if s:
            pl = price[s - 1 : e].tolist()  # the previous price, then the new ones
        else:
            pl = price[:e].tolist()
            self.ref = pl[0]  # rebase (as in the numpy path); |Δp| of the first row is |p0 − p0| = 0.0
            pl.insert(0, pl[0])
        ref = self.ref
        buys = self.is_buy[s:e].tolist()
        nots = self.notional[s:e].tolist()
        out = prefix_rows(pl, buys, nots, self.cum[s].tolist(), ref)
        k = e - s
        pack = _PACKERS.get(k)
        if pack is None:
            pack = _PACKERS[k] = struct.Struct(f"{k * _NCUM}d").pack_into
        pack(self.cum, (s + 1) * _ROW_BYTES, *out)
        del pl[0]
        self.mm.extend(e, pl)
        self.synced = e

    # --- ingest -------------------------------------------------------------------------------------------------

    def append(
        self,
        ts: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
        is_buy: np.ndarray,
        now: float,
        notional: np.ndarray | None = None,
    ) -> None:
        """Append validated, de-duplicated trades (in arrival order); ts is clamped monotone into the buffer (the
        arguments are never written: a :class:`~bot.events.TradeBatch`'s columns are shared)."""
        m = len(ts)
        if m == 0:
            return
        if self.n + m > self.cap:
            self.prune(now)
            self._reallocate(m)
        nb = self.notional[self.n : self.n + m]
        if notional is None:
            _multiply(price, size, out=nb)
        else:
            nb[:] = notional
        self.append_staged(ts, price, size, is_buy, now)

    def stage_notional(self, price: np.ndarray, size: np.ndarray) -> np.ndarray | None:
        """Write price·size of ``len(price)`` rows about to be appended into the free part of the notional buffer
        and return that slice (the caller validates with it), or None if they do not fit without reallocating.
        Rows at or past ``n`` are never read, so a staged batch that is then refused needs no undo."""
        s = self.n
        e = s + len(price)
        if e > self.cap:
            return None
        nb = self.notional[s:e]
        _multiply(price, size, out=nb)
        return nb

    def append_staged(
        self, ts: np.ndarray, price: np.ndarray, size: np.ndarray, is_buy: np.ndarray, now: float
    ) -> None:
        """Append rows whose notional is already in place (:meth:`stage_notional`, capacity checked)."""
        s = self.n
        e = s + len(ts)
        tsb = self.ts[s:e]
        _accumulate_max(ts, out=tsb)
        last_ts = self.last_ts
        if tsb.item(0) < last_ts:
            np.maximum(tsb, last_ts, out=tsb)
        self.price[s:e] = price
        self.size[s:e] = size
        self.is_buy[s:e] = is_buy
        self.n = e
        self.last_ts = tsb.item(-1)
        self.last_price = self.price.item(e - 1)
        if e - self.synced >= SYNC_BACKLOG:
            self._sync()
        self.prune(now)

    def append_rows(
        self, ts: list[float], price: list[float], size: list[float], is_buy: list[bool], now: float
    ) -> None:
        """:meth:`append` for a few validated trades given as lists: element writes instead of array building
        (per-call numpy overhead dominates a batch of one to a handful of prints). Same values: the running-max
        clamp of ts, and notional = price·size with the same float multiply."""
        m = len(ts)
        if m == 0:
            return
        if self.n + m > self.cap:
            self.prune(now)
            self._reallocate(m)
        s = self.n
        cts, cp, cs, cn, cb = self.mvs
        hi = self.last_ts
        for i in range(m):
            t = ts[i]
            if t > hi:
                hi = t
            p = price[i]
            v = size[i]
            j = s + i
            cts[j] = hi
            cp[j] = p
            cs[j] = v
            cn[j] = p * v
            cb[j] = is_buy[i]
        e = s + m
        self.n = e
        self.last_ts = float(hi)
        self.last_price = float(price[-1])
        if e - self.synced >= SYNC_BACKLOG:
            self._sync()
        self.prune(now)

    def append_one(self, t: float, p: float, v: float, is_buy: bool, now: float) -> None:
        """:meth:`append_rows` for one trade (the commonest frame): the same values, no lists or loop, and the
        prune check inline."""
        j = self.n
        if j == self.cap:
            self.prune(now)
            self._reallocate(1)
            j = self.n
        hi = self.last_ts
        if t > hi:
            hi = t
        ts, cp, cs, cn, cb = self.mvs
        ts[j] = hi
        cp[j] = p
        cs[j] = v
        cn[j] = p * v
        cb[j] = is_buy
        e = j + 1
        self.n = e
        self.last_ts = float(hi)  # as append_rows: a Python float whatever the batch's dtype
        self.last_price = float(p)
        if e - self.synced >= SYNC_BACKLOG:
            self._sync()
        cutoff = now - self.retention_sec  # prune(now), inline
        lo = self.lo
        if lo < e and ts[lo] < cutoff:
            self.lo = int(self.ts.searchsorted(cutoff, "left"))

    def prune(self, now: float) -> None:
        """Drop trades with ts < now − retention (advance ``lo``; memory is reclaimed at the next reallocation)."""
        cutoff = now - self.retention_sec
        lo = self.lo
        if lo < self.n and self.mvs[0][lo] < cutoff:
            self.lo = int(self.ts.searchsorted(cutoff, "left"))

    # --- queries ------------------------------------------------------------------------------------------------

    def _bounds(self, t0: float, t1: float) -> tuple[int, int]:
        lo = self.lo
        a = int(self.ts.searchsorted(t0, "left"))
        # the usual right edge is now/inf, past the newest trade: no search needed
        b = self.n if t1 > self.last_ts else int(self.ts.searchsorted(t1, "left"))
        if a < lo:
            a = lo
        if b < a:
            b = a
        return a, b

    def view(self, a: int, b: int) -> TradeView:
        return TradeView(self.ro_cols, a, b)

    def since(self, t: float) -> TradeView:
        a = int(self.ts.searchsorted(t, "left"))
        lo = self.lo
        return TradeView(self.ro_cols, a if a > lo else lo, self.n)

    def between(self, t0: float, t1: float) -> TradeView:
        ts = self.ts  # _bounds, inline (the commonest query)
        a = int(ts.searchsorted(t0, "left"))
        b = self.n if t1 > self.last_ts else int(ts.searchsorted(t1, "left"))
        lo = self.lo
        if a < lo:
            a = lo
        if b < a:
            b = a
        return TradeView(self.ro_cols, a, b)

    def last_n(self, k: int) -> TradeView:
        n = self.n
        return TradeView(self.ro_cols, max(self.lo, n - max(0, k)), n)

    def after_seq(self, seq: int) -> TradeView:
        n = self.n
        a = seq - self.seq0 + 1
        lo = self.lo
        if a < lo:
            a = lo
        if a > n:
            a = n
        return TradeView(self.ro_cols, a, n)

    def count_between(self, t0: float, t1: float) -> int:
        ts = self.ts  # _bounds, inline
        a = int(ts.searchsorted(t0, "left"))
        b = self.n if t1 > self.last_ts else int(ts.searchsorted(t1, "left"))
        lo = self.lo
        if a < lo:
            a = lo
        return b - a if b > a else 0

    def side_sums(self, t0: float, t1: float) -> SideSums:
        if self.synced < self.n:
            self._sync()
        a, b = self._bounds(t0, t1)
        if a == b:
            return _EMPTY_SUMS
        nb, vb, vs = (self.cum[b, :3] - self.cum[a, :3]).tolist()
        nbuy = round(nb)
        return SideSums(nbuy, b - a - nbuy, vb, vs)

    def side_sums_multi(self, t0s: Sequence[float], t1: float) -> list[SideSums]:
        """``[side_sums(t0, t1) for t0 in t0s]`` with one searchsorted and one gather (bit-identical: the same
        float64 row differences, done in Python floats)."""
        if self.synced < self.n:
            self._sync()
        k = len(t0s)
        if t1 > self.last_ts:
            idx = self.ts.searchsorted(t0s, "left").tolist()
            idx.append(self.n)
        else:
            idx = self.ts.searchsorted([*t0s, t1], "left").tolist()
        lo = self.lo
        b = idx[k]
        for i in range(k):
            if idx[i] < lo:
                idx[i] = lo
        if b < lo:
            b = lo
        idx[k] = b
        mv = self._cmv  # the same stored doubles a gather of the rows would give
        r = b * _NCUM
        nb1, vb1, vs1 = mv[r], mv[r + 1], mv[r + 2]
        out: list[SideSums] = []
        for i in range(k):
            a = idx[i]
            if a >= b:
                out.append(_EMPTY_SUMS)
                continue
            r = a * _NCUM
            nbuy = round(nb1 - mv[r])
            out.append(SideSums(nbuy, b - a - nbuy, vb1 - mv[r + 1], vs1 - mv[r + 2]))
        return out

    def price_stats(self, t0: float, t1: float) -> PriceStats:
        if self.synced < self.n:
            self._sync()
        a, b = self._bounds(t0, t1)
        k = b - a
        if k == 0:
            return _EMPTY_STATS
        mv = self._cmv  # rows a and b (and a + 1) read as the stored doubles
        ra = a * _NCUM
        rb = b * _NCUM
        sq = mv[rb + _C_Q] - mv[ra + _C_Q]
        sq2 = mv[rb + _C_Q2] - mv[ra + _C_Q2]
        mean_q = sq / k
        if k > 1:
            var = (sq2 - sq * mean_q) / (k - 1)
            std = math.sqrt(var) if var > 0.0 else 0.0
            mac = (mv[rb + _C_ADP] - mv[ra + _NCUM + _C_ADP]) / (k - 1)
        else:
            std = 0.0
            mac = 0.0
        lo, hi = self.mm.query(a, b)
        mean = self.ref + mean_q
        # round-off can put the mean a hair outside [min, max] for flat windows
        mean = min(max(mean, lo), hi)
        return PriceStats(k, lo, hi, mean, std, mac)

    def last_seq(self) -> int:
        return self.seq0 + self.n - 1

    def __len__(self) -> int:
        return self.n - self.lo
