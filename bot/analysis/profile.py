"""The §4.7 volume profile kept incrementally: a notional-per-bin histogram over the look-back window and its POC.

Split from :mod:`bot.analysis.imbalance` (which uses it once per evaluation). An evaluation moves the window by a few
dozen trades at each end (median 16, mean 34 a day of BTCUSDT). The histogram is a numpy array and the queue of
in-window trades two numpy buffers, so a move of many trades is one ``ufunc.at`` each way and the POC search one
C-level ``argmax``; a move of a few trades goes through memoryviews of the same arrays in a plain loop (numpy's fixed
cost per call, some 6–10k instructions, is more than a few trades cost in Python). The sixth pass measured this
against the lists it replaces (per-trade loops, ``max`` over Python floats for the POC): ~40% fewer instructions per
update on a recorded day of updates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PROFILE_MARGIN", "PROFILE_TRIM_EVERY", "PROFILE_UNITS", "VolumeProfile"]

PROFILE_UNITS = 100.0  # profile weights are whole cents of notional: exact float sums, so add/remove is lossless
PROFILE_MARGIN = 256  # spare bins on each side when the dense histogram is (re)allocated
PROFILE_TRIM_EVERY = 1000  # rebuild now and then so a trending price cannot grow the histogram without bound
_SMALL = 8  # below this many trades, a push runs as a Python loop over memoryviews
_QUEUE = 1024  # initial queue capacity (it doubles when the live part needs more than half of it)

_rint = np.rint
_mul = np.multiply
_sub = np.subtract
_umax = np.maximum.reduce
_add_at = np.add.at
_sub_at = np.subtract.at
_U64 = np.uint64


class VolumeProfile:
    """Dense notional-per-bin histogram over the trades with seq in [first, last] (the look-back window).

    Weights are integer cents held in floats, so sums are exact and moving the window (add the trades that entered,
    subtract those that left) gives bit for bit the histogram a from-scratch rebuild would, in any order of the
    additions: the POC depends neither on the evaluation cadence nor on which path (loop or ``ufunc.at``) moved a
    trade. Each in-window trade's bin (relative to ``base``) and weight are queued in seq order, so a trade leaving
    the window is subtracted without querying storage again (storage seq numbers are consecutive). A bin index is
    ``round(price · inv)`` and a weight ``round(notional · 100)``, both rounded half to even: the values ``np.rint``
    gives (Python's ``round`` of a float is exact), so both paths fill the same bins with the same weights.

    The POC is the first maximal bin, ``base + argmax(hist)`` (ties to the lowest bin; an all-zero histogram gives
    its first bin). ``top`` caches it as an absolute bin index: a loop push can only move the maximum to a bin it
    added to (it tracks the largest one), a pop can only lose it if the maximum's own bin shrank; a ``ufunc.at`` push
    drops it and the next :meth:`poc` searches again.
    """

    __slots__ = ("base", "bin", "first", "hi", "hist", "hv", "inv", "last", "lo", "q_rel", "q_u", "q_w", "qrv", "qwv",
                 "top", "updates")

    def __init__(self) -> None:
        self.bin = 0.0
        self.inv = 0.0
        self.first = 0  # seq of the oldest trade in the window (0: empty)
        self.last = 0
        self.base = 0  # absolute bin index of hist[0]
        self._set_hist(np.zeros(0))
        self._set_queue(np.zeros(_QUEUE, np.int64), np.zeros(_QUEUE), 0, 0)
        self.updates = 0
        self.top: int | None = None  # absolute bin index of the maximum (None: unknown, search on demand)

    def _set_hist(self, hist: np.ndarray) -> None:
        self.hist = hist
        self.hv = memoryview(hist)  # element access as Python floats, ~5× cheaper than ndarray indexing

    def _set_queue(self, q_rel: np.ndarray, q_w: np.ndarray, lo: int, hi: int) -> None:
        """Queue buffers: bins relative to ``base`` (int64; ``q_u`` is the same memory as uint64) and weights; the
        live part is [lo, hi)."""
        self.q_rel, self.q_w = q_rel, q_w
        self.q_u = q_rel.view(_U64)
        self.qrv, self.qwv = memoryview(q_rel), memoryview(q_w)
        self.lo, self.hi = lo, hi

    def _fit(self, imin: int, imax: int) -> None:
        """Make the histogram cover absolute bins [imin, imax], keeping its contents (and the queued bins' meaning)."""
        base, n = self.base, len(self.hist)
        if n and imin >= base and imax < base + n:
            return
        lo = min(imin, base) if n else imin
        hi = max(imax, base + n - 1) if n else imax
        lo -= PROFILE_MARGIN
        hi += PROFILE_MARGIN
        hist = np.zeros(hi - lo + 1)
        if n:
            hist[base - lo : base - lo + n] = self.hist
            live = self.q_rel[self.lo : self.hi]
            live += base - lo
        self._set_hist(hist)
        self.base = lo

    def _room(self, k: int) -> int:
        """Make room for ``k`` more queued trades; returns where they go."""
        lo, hi = self.lo, self.hi
        cap = len(self.q_rel)
        if hi + k <= cap:
            return hi
        live = hi - lo
        if 2 * (live + k) > cap:
            cap = 2 * (live + k)
            q_rel, q_w = np.zeros(cap, np.int64), np.zeros(cap)
        else:
            q_rel, q_w = self.q_rel, self.q_w  # compact in place (the live part moves towards the front)
        q_rel[:live] = self.q_rel[lo:hi]
        q_w[:live] = self.q_w[lo:hi]
        self._set_queue(q_rel, q_w, 0, live)
        return live

    def _push(self, price: np.ndarray, notional: np.ndarray) -> None:
        """Add trades (oldest first) to the histogram and the queue."""
        k = len(price)
        if k == 0:
            return
        h = self._room(k)
        e = h + k
        if k < _SMALL:
            self._push_loop(price, notional, h)
        else:
            q_rel = self.q_rel[h:e]
            q_w = self.q_w[h:e]
            q_rel[...] = _rint(price * self.inv)  # integral floats → int64, exact
            _rint(_mul(notional, PROFILE_UNITS, out=q_w), out=q_w)
            base = self.base
            _sub(q_rel, base, out=q_rel)
            # one unsigned max checks 0 ≤ bin − base < len(hist) for every trade (a negative one is huge unsigned)
            if not len(self.hist) or _umax(self.q_u[h:e]) >= len(self.hist):
                q_rel += base
                self._fit(int(q_rel.min()), int(q_rel.max()))
                _sub(q_rel, self.base, out=q_rel)
            _add_at(self.hist, q_rel, q_w)
            self.top = None
        self.hi = e

    def _push_loop(self, price: np.ndarray, notional: np.ndarray, h: int) -> None:
        """:meth:`_push` of a few trades, queued from ``h``: per-trade Python on memoryviews, POC kept."""
        inv = self.inv
        idx = [round(p * inv) for p in price.tolist()]
        w = [float(round(x * PROFILE_UNITS)) for x in notional.tolist()]
        self._fit(min(idx), max(idx))
        base = self.base
        hv, qrv, qwv = self.hv, self.qrv, self.qwv
        top = self.top
        if top is None:
            for i, x in zip(idx, w, strict=True):
                j = i - base
                hv[j] += x
                qrv[h] = j
                qwv[h] = x
                h += 1
            return
        # the loop also finds the largest touched bin (lowest index on a tie): weights are >= 0, so a bin's value
        # seen mid-loop never exceeds its final one, and the final one is seen at its last touch — the same
        # (m, cand) as a search over the final values
        m = -1.0
        cand = 0
        for i, x in zip(idx, w, strict=True):
            j = i - base
            v = hv[j] + x
            hv[j] = v
            qrv[h] = j
            qwv[h] = x
            h += 1
            if v > m or (v == m and i < cand):
                m, cand = v, i
        best = hv[top - base]  # the maximum stays, or moves to a bin that just grew (lowest such bin on a tie)
        if m > best or (m == best and cand < top):
            self.top = cand

    def _pop(self, j: int) -> None:
        """Subtract the oldest ``j`` in-window trades."""
        lo = self.lo
        hi = lo + j
        hv = self.hv
        top = self.top
        if top is not None:
            top -= self.base
            best = hv[top]
        if j < _SMALL:
            for i, x in zip(self.qrv[lo:hi], self.qwv[lo:hi], strict=True):
                hv[i] -= x
        else:
            _sub_at(self.hist, self.q_rel[lo:hi], self.q_w[lo:hi])
        self.lo = hi
        # the other bins only shrank (or kept their weight), so the maximum stays unless its own bin shrank: then
        # search again on demand
        if top is not None and hv[top] != best:
            self.top = None

    def rebuild(self, view: Any, bin_size: float) -> None:
        self.bin = bin_size
        inv = 1.0 / bin_size
        # 1/0.1 etc. as the exact integer: bin prices come out as idx / 10 = 100.5, not idx · 0.1 = 100.50000000000001
        self.inv = float(round(inv)) if abs(inv - round(inv)) < 1e-6 * inv else inv
        self._clear()
        self._push(view.price, view.notional)

    def _clear(self) -> None:
        self._set_hist(np.zeros(0))
        self.base = 0
        self.first = self.last = 0
        self.lo = self.hi = 0
        self.top = None

    def update(self, view: Any, bin_size: float) -> None:
        """Move the window to ``view`` (the trades now in the look-back, oldest first)."""
        self.updates += 1
        k = len(view)
        if k == 0:
            self._clear()
            return
        seq = view.seq
        new_first, new_last = seq.item(0), seq.item(k - 1)
        if (
            bin_size != self.bin
            or self.first == 0
            or new_first < self.first  # look-back grew (σ regime change): older trades needed, start over
            or new_first > self.last
            or new_last - new_first + 1 != k  # seq not consecutive (never with DataStorage): be safe, rebuild
            or self.updates % PROFILE_TRIM_EVERY == 0
        ):
            self.rebuild(view, bin_size)
        else:
            if new_first > self.first:
                self._pop(new_first - self.first)
            j = self.last + 1 - new_first  # trades of the view already in the histogram
            if j < k:
                self.first = new_first
                self._push(view.price[j:], view.notional[j:])
        self.first, self.last = new_first, new_last

    def poc(self) -> float:
        """The POC's price: the first maximal bin (see the class docstring) times the bin size."""
        top = self.top
        # an all-zero window (only trades under half a cent) has no maximum to track: its POC is the histogram's first
        # bin, which moves whenever the histogram is re-allocated, so a cached zero bin is searched again
        if top is None or not self.hv[top - self.base]:
            top = self.top = self.base + int(self.hist.argmax())
        return top / self.inv
