"""O(1) range min/max over an append-only float array (the trade price column).

A full-hour ``np.min``+``np.max`` over ~100k BTC trades costs ~25 µs, too much for a query the volatility
analyzer makes every evaluation. Instead the array is cut into blocks of ``BLOCK`` entries and we keep:

- ``pmin/pmax[i]``: min/max from the start of i's block up to i (filled at append, so partial blocks work);
- ``smin/smax[i]``: min/max from i to the end of i's block (filled when a block completes);
- a sparse table over complete-block minima/maxima (level k covers 2**k blocks), extended as blocks complete.

A query spanning several blocks is then suffix(first block) ∘ sparse-table(middle blocks) ∘ prefix(last block):
a handful of scalar reads. Queries inside a single block scan at most ``BLOCK`` values.
Append cost is O(1) amortised (O(log n) numpy slices per completed block).
"""

from __future__ import annotations

import numpy as np

BLOCK = 64
_SHIFT = 6  # log2(BLOCK)


class RangeMinMax:
    """Range min/max index over ``values[0:n]``; ``values`` is owned by the caller and only ever appended to."""

    __slots__ = ("_levels", "_n", "pmax", "pmin", "smax", "smin", "stmax", "stmin", "values")

    def __init__(self, values: np.ndarray) -> None:
        cap = len(values)
        nb = max(1, cap >> _SHIFT)
        self.values = values
        self.pmin = np.empty(cap)
        self.pmax = np.empty(cap)
        self.smin = np.empty(cap)
        self.smax = np.empty(cap)
        self._levels = max(1, nb.bit_length())
        self.stmin = np.empty((self._levels, nb))
        self.stmax = np.empty((self._levels, nb))
        self._n = 0

    def extend(self, n_new: int) -> None:
        """Index ``values[self._n:n_new]`` (already written by the caller)."""
        n0 = self._n
        if n_new <= n0:
            return
        v = self.values
        # prefix min/max within blocks
        i = n0
        while i < n_new:
            blk_end = ((i >> _SHIFT) + 1) << _SHIFT
            e = min(blk_end, n_new)
            if i & (BLOCK - 1) == 0 and e == blk_end and n_new - i >= 2 * BLOCK:
                # run of whole blocks: vectorise over them
                nb = (n_new - i) >> _SHIFT
                e = i + (nb << _SHIFT)
                seg = v[i:e].reshape(nb, BLOCK)
                np.minimum.accumulate(seg, axis=1, out=self.pmin[i:e].reshape(nb, BLOCK))
                np.maximum.accumulate(seg, axis=1, out=self.pmax[i:e].reshape(nb, BLOCK))
            else:
                np.minimum.accumulate(v[i:e], out=self.pmin[i:e])
                np.maximum.accumulate(v[i:e], out=self.pmax[i:e])
                if i & (BLOCK - 1):
                    np.minimum(self.pmin[i:e], self.pmin[i - 1], out=self.pmin[i:e])
                    np.maximum(self.pmax[i:e], self.pmax[i - 1], out=self.pmax[i:e])
            i = e
        # newly completed blocks: suffix min/max and the sparse table
        j0, j1 = n0 >> _SHIFT, n_new >> _SHIFT
        if j1 > j0:
            s, e = j0 << _SHIFT, j1 << _SHIFT
            seg = v[s:e].reshape(j1 - j0, BLOCK)[:, ::-1]
            smin = self.smin[s:e].reshape(j1 - j0, BLOCK)[:, ::-1]
            smax = self.smax[s:e].reshape(j1 - j0, BLOCK)[:, ::-1]
            np.minimum.accumulate(seg, axis=1, out=smin)
            np.maximum.accumulate(seg, axis=1, out=smax)
            ends = np.arange(s + BLOCK - 1, e, BLOCK)
            self.stmin[0, j0:j1] = self.pmin[ends]
            self.stmax[0, j0:j1] = self.pmax[ends]
            if j1 - j0 <= 2:
                self._table_scalar(j0, j1)
                self._n = n_new
                return
            k = 1
            while k < self._levels and (1 << k) <= j1:
                half = 1 << (k - 1)
                lo = max(0, j0 - (1 << k) + 1)
                hi = j1 - (1 << k) + 1
                if hi > lo:
                    st = self.stmin
                    np.minimum(st[k - 1, lo:hi], st[k - 1, lo + half : hi + half], out=st[k, lo:hi])
                    st = self.stmax
                    np.maximum(st[k - 1, lo:hi], st[k - 1, lo + half : hi + half], out=st[k, lo:hi])
                k += 1
        self._n = n_new

    def _table_scalar(self, j0: int, j1: int) -> None:
        """Sparse-table entries made computable by blocks ``[j0, j1)``, one scalar per level (few new blocks:
        cheaper than numpy slicing, which costs ~1 µs per call whatever the length)."""
        stmin, stmax = self.stmin, self.stmax
        for j in range(j0, j1):
            k = 1
            while k < self._levels and (1 << k) <= j + 1:
                s = j - (1 << k) + 1
                t = s + (1 << (k - 1))
                a, b = stmin[k - 1, s], stmin[k - 1, t]
                stmin[k, s] = a if a < b else b
                a, b = stmax[k - 1, s], stmax[k - 1, t]
                stmax[k, s] = a if a > b else b
                k += 1

    def query(self, a: int, b: int) -> tuple[float, float]:
        """(min, max) of ``values[a:b]``; requires ``a < b <= n``."""
        ba, bb = a >> _SHIFT, (b - 1) >> _SHIFT
        if ba == bb:
            if a & (BLOCK - 1) == 0:
                return float(self.pmin[b - 1]), float(self.pmax[b - 1])
            seg = self.values[a:b]
            return float(seg.min()), float(seg.max())
        lo = min(self.smin[a], self.pmin[b - 1])
        hi = max(self.smax[a], self.pmax[b - 1])
        m0, m1 = ba + 1, bb  # whole blocks strictly between
        if m1 > m0:
            k = (m1 - m0).bit_length() - 1
            r = m1 - (1 << k)
            st = self.stmin[k]
            lo = min(lo, st[m0], st[r])
            st = self.stmax[k]
            hi = max(hi, st[m0], st[r])
        return float(lo), float(hi)
