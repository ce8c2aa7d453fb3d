"""The §4.7 volume profile kept incrementally: a notional-per-bin histogram over the look-back window and its POC.

Split from :mod:`bot.analysis.imbalance` (which uses it once per evaluation). An evaluation moves the window by a few
dozen trades at each end, so the histogram, the queue of in-window trades and the arithmetic on them are plain Python
lists and floats: per-call numpy overhead (``np.add.at``, ``np.rint`` and friends on a few dozen values) was most of
the cost. numpy is used only where it pays: bins and weights of a dozen trades or more, a large batch of trades (a
rebuild). The rare full POC search is a C-level ``max`` and ``list.index`` over the live bin range: ``np.argmax`` of
the list spent nearly all its time converting the whole list to an array (a sixth of the profile's cost). Sketched in
the fifth pass, not adopted (not timed reliably on a shared machine): the histogram and the trade queue as numpy
arrays, ``np.add.at`` / ``np.subtract.at`` per move and ``argmax`` per POC; it counted fewer instructions than these
lists, though ``ufunc.at`` alone cost ~22k instructions a call and ``min`` / ``max`` on a few dozen values ~9k each.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PROFILE_MARGIN", "PROFILE_TRIM_EVERY", "PROFILE_UNITS", "VolumeProfile"]

PROFILE_UNITS = 100.0  # profile weights are whole cents of notional: exact float sums, so add/remove is lossless
PROFILE_MARGIN = 256  # spare bins on each side when the dense histogram is (re)allocated
PROFILE_TRIM_EVERY = 1000  # rebuild now and then so a trending price cannot grow the histogram without bound
_NP_PREP = 12  # from this many trades in one push, bins and weights are computed with numpy
_BULK = 64  # from this many, they are also added to the histogram with numpy
_COMPACT = 4096  # the trade queue drops its consumed head once it is this long and more than half of the list
_NO_MIN = 1 << 62  # rmin / rmax of an empty histogram
_NO_MAX = -(1 << 62)


class VolumeProfile:
    """Dense notional-per-bin histogram over the trades with seq in [first, last] (the look-back window).

    Weights are integer cents held in floats, so sums are exact and moving the window (add the trades that entered,
    subtract those that left) gives bit for bit the histogram a from-scratch rebuild would: the POC does not depend
    on the evaluation cadence. Each in-window trade's (bin index, weight) is kept in seq order, so a trade leaving the
    window is subtracted without querying storage again (storage seq numbers are consecutive). A bin index is
    ``round(price · inv)`` and a weight ``round(notional · 100)``, both rounded half to even: the values ``np.rint``
    gives (Python's ``round`` of a float is exact), so either path fills the same bins with the same weights.

    The POC bin is kept incrementally (``top``, an absolute bin index): adding weight can only move the maximum to a
    bin that received it, removing weight can only lose it if the maximum's own bin shrank (then it is searched again).
    Ties go to the lowest bin, as ``np.argmax`` does, so the POC is the one a full search would find.
    """

    __slots__ = ("base", "bin", "first", "hist", "inv", "last", "lo", "q_idx", "q_w", "rmax", "rmin", "top", "updates")

    def __init__(self) -> None:
        self.bin = 0.0
        self.inv = 0.0
        self.first = 0  # seq of the oldest trade in the window (0: empty)
        self.last = 0
        self.base = 0  # absolute bin index of hist[0]
        self.hist: list[float] = []
        self.q_idx: list[int] = []  # queue of in-window trades: live part is [lo, len)
        self.q_w: list[float] = []
        self.lo = 0
        self.updates = 0
        self.top: int | None = None  # absolute bin index of the maximum (None: unknown, search on demand)
        # absolute bins [rmin, rmax] hold every non-zero bin (empty: rmin > rmax); the POC search reads only them
        self.rmin = _NO_MIN
        self.rmax = _NO_MAX

    def _fit(self, imin: int, imax: int) -> None:
        """Make the histogram cover bins [imin, imax], keeping its contents."""
        base, n = self.base, len(self.hist)
        if n and imin >= base and imax < base + n:
            return
        lo = min(imin, base) if n else imin
        hi = max(imax, base + n - 1) if n else imax
        lo -= PROFILE_MARGIN
        hi += PROFILE_MARGIN
        if n:
            self.hist = [0.0] * (base - lo) + self.hist + [0.0] * (hi - base - n + 1)
        else:
            self.hist = [0.0] * (hi - lo + 1)
        self.base = lo

    def _push(self, price: np.ndarray, notional: np.ndarray) -> None:
        """Add trades (oldest first) to the histogram and the queue."""
        k = len(price)
        if k == 0:
            return
        if k < _NP_PREP:
            inv = self.inv
            idx = [round(p * inv) for p in price.tolist()]
            w = [float(round(x * PROFILE_UNITS)) for x in notional.tolist()]
        else:  # the same values (see the class docstring), cheaper from a dozen trades on
            idx_a = np.rint(price * self.inv).astype(np.int64)
            w_a = np.rint(notional * PROFILE_UNITS)
            idx, w = idx_a.tolist(), w_a.tolist()
        imin, imax = min(idx), max(idx)
        self._fit(imin, imax)
        if imin < self.rmin:
            self.rmin = imin
        if imax > self.rmax:
            self.rmax = imax
        base = self.base
        hist = self.hist
        top = self.top
        m = -1.0
        cand = 0
        if k < _BULK:
            if top is None:
                for i, x in zip(idx, w, strict=True):
                    hist[i - base] += x
            else:
                # the add loop also finds the largest touched bin (lowest index on a tie): weights are >= 0, so a bin's
                # value seen mid-loop never exceeds its final one, and the final one is seen at its last touch — the
                # same (m, cand) as a search over the final values
                for i, x in zip(idx, w, strict=True):
                    j = i - base
                    v = hist[j] + x
                    hist[j] = v
                    if v > m or (v == m and i < cand):
                        m, cand = v, i
        else:  # whole cents: any summation order gives the same sums, so the touched bins are binned at once
            lo, hi = imin - base, imax - base + 1
            add = np.bincount(idx_a - imin, weights=w_a, minlength=hi - lo).tolist()
            seg = [a + b for a, b in zip(hist[lo:hi], add, strict=True)]
            hist[lo:hi] = seg
            if top is not None:
                # the first largest bin of [imin, imax], touched or not: an untouched one is at most hist[top] and,
                # if equal to it, not below top (top is the first maximum), so the decision below is the one the
                # largest touched bin (lowest on a tie) would give
                m = max(seg)
                cand = imin + seg.index(m)
        if top is not None:  # the maximum stays, or moves to a bin that just grew (lowest such bin on a tie)
            best = hist[top - base]
            if m > best or (m == best and cand < top):
                self.top = cand
        self.q_idx += idx
        self.q_w += w

    def _pop(self, j: int) -> None:
        """Subtract the oldest ``j`` in-window trades."""
        lo = self.lo
        hi = lo + j
        hist, base = self.hist, self.base
        top = self.top
        if top is not None:
            top -= base
            best = hist[top]
        for i, x in zip(self.q_idx[lo:hi], self.q_w[lo:hi], strict=True):
            hist[i - base] -= x
        if hi >= _COMPACT and 2 * hi > len(self.q_idx):
            del self.q_idx[:hi]
            del self.q_w[:hi]
            hi = 0
        self.lo = hi
        # the other bins only shrank (or kept their weight), so the maximum stays unless its own bin shrank: then
        # search again on demand
        if top is not None and hist[top] != best:
            self.top = None

    def rebuild(self, view: Any, bin_size: float) -> None:
        self.bin = bin_size
        inv = 1.0 / bin_size
        # 1/0.1 etc. as the exact integer: bin prices come out as idx / 10 = 100.5, not idx · 0.1 = 100.50000000000001
        self.inv = float(round(inv)) if abs(inv - round(inv)) < 1e-6 * inv else inv
        self.hist = []
        self.base = 0
        self.first = self.last = 0
        self.q_idx, self.q_w, self.lo = [], [], 0
        self.top = None
        self.rmin, self.rmax = _NO_MIN, _NO_MAX
        self._push(view.price, view.notional)

    def update(self, view: Any, bin_size: float) -> None:
        """Move the window to ``view`` (the trades now in the look-back, oldest first)."""
        self.updates += 1
        k = len(view)
        if k == 0:
            self.first = self.last = 0
            self.q_idx, self.q_w, self.lo = [], [], 0
            self.hist = []
            self.top = None
            self.rmin, self.rmax = _NO_MIN, _NO_MAX
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
        top = self.top
        if top is None:
            top = self.top = self._search()
        return top / self.inv

    def _search(self) -> int:
        """The first maximal bin, as ``base + np.argmax(hist)``, searched over [rmin, rmax] only.

        Every bin outside that range is zero, so a positive maximum inside it is the histogram's maximum and its first
        occurrence there is the first overall. The range is first narrowed past zero bins at both ends (the window
        left them behind): each bin is stepped over once, however many searches follow. ``max`` keeps the first of
        equal values and ``list.index`` finds the first equal one, so ties go to the lowest bin as with np.argmax
        (no NaN: the weights are whole cents); an all-zero histogram falls back to the full search (its first bin).
        """
        hist, base = self.hist, self.base
        a, b = self.rmin - base, self.rmax - base
        while a < b and hist[a] == 0.0:
            a += 1
        while b > a and hist[b] == 0.0:
            b -= 1
        self.rmin, self.rmax = base + a, base + b
        seg = hist[a : b + 1]
        m = max(seg) if seg else 0.0
        if m > 0.0:
            return base + a + seg.index(m)
        return base + hist.index(max(hist))
