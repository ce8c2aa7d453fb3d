"""O(1) range min/max over an append-only float array (the trade price column), O(new values) per update.

A full-hour ``np.min``+``np.max`` over ~100k BTC trades costs ~25 µs, too much for a query the volatility
analyzer makes every evaluation. Two levels of blocks, all kept as Python floats in lists:

- blocks of ``BLOCK`` values: their min/max, the running min/max of the incomplete tail block, and per block the
  min/max from the start of its superblock (prefix) and to the end of it (suffix, once the superblock is full);
- superblocks of ``SUPER`` blocks: their min/max and a sparse table over them (``smin[k][j]`` = min of superblocks
  ``[j, j + 2**k)``), which gets one entry per level when a superblock completes.

A typical update is a few dozen trades: it costs one ``tolist`` of the new values, a Python ``min``/``max`` per
block touched and O(1) list appends per completed block (plus O(SUPER + log) per completed superblock) — no
per-entry numpy arrays, whose per-call overhead (~1.5 µs a call) dominated the previous design. A query is
partial(first block) ∘ blocks-in-superblock ∘ superblock table ∘ blocks-in-superblock ∘ partial(last block);
a partial block is scanned (≤ ``BLOCK`` values) unless it is whole or the running tail.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

BLOCK = 64
_SHIFT = 6  # log2(BLOCK)
_MASK = BLOCK - 1
SUPER = 32
"""Blocks per superblock."""
_SSHIFT = 5  # log2(SUPER)
_SMASK = SUPER - 1
_BULK_BLOCKS = 16
"""From this many newly completed blocks in one update, whole blocks are reduced with numpy."""

_INF = float("inf")


class RangeMinMax:
    """Range min/max index over ``values[0:n]``; ``values`` is owned by the caller and only ever appended to."""

    __slots__ = (
        "_cur_max",
        "_cur_min",
        "_n",
        "bmax",
        "bmin",
        "pmax",
        "pmin",
        "smax",
        "smin",
        "sufmax",
        "sufmin",
        "values",
    )

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.bmin: list[float] = []  # per complete block
        self.bmax: list[float] = []
        self.pmin: list[float] = []  # per complete block: over its superblock's blocks up to it
        self.pmax: list[float] = []
        self.sufmin: list[float] = []  # per block of a complete superblock: over its superblock's blocks from it
        self.sufmax: list[float] = []
        self.smin: list[list[float]] = [[]]  # sparse table over complete superblocks
        self.smax: list[list[float]] = [[]]
        self._cur_min = _INF  # running min/max of the incomplete block [len(bmin) * BLOCK, n)
        self._cur_max = -_INF
        self._n = 0

    def extend(self, n_new: int, new: list[float] | None = None) -> None:
        """Index ``values[self._n:n_new]`` (already written by the caller; ``new``: the same values as a list, when
        the caller has them at hand)."""
        n0 = self._n
        if n_new <= n0:
            return
        if (n_new >> _SHIFT) - (n0 >> _SHIFT) >= _BULK_BLOCKS:
            self._extend_bulk(n0, n_new)
            return
        if new is None:
            new = self.values[n0:n_new].tolist()
        pos = n0
        lo, hi = self._cur_min, self._cur_max
        while True:
            blk_end = ((pos >> _SHIFT) + 1) << _SHIFT
            if blk_end > n_new:
                part = new[pos - n0 :]
                m, x = min(part), max(part)
                self._cur_min = lo if lo < m else m
                self._cur_max = hi if hi > x else x
                break
            part = new[pos - n0 : blk_end - n0]
            m, x = min(part), max(part)
            self._push(lo if lo < m else m, hi if hi > x else x)
            lo, hi = _INF, -_INF
            self._cur_min, self._cur_max = lo, hi
            pos = blk_end
            if pos == n_new:
                break
        self._n = n_new

    def _push(self, lo: float, hi: float) -> None:
        """Append one complete block (and complete its superblock if it is the last one of it)."""
        bmin = self.bmin
        j = len(bmin)
        bmin.append(lo)
        self.bmax.append(hi)
        if j & _SMASK:
            a = self.pmin[-1]
            self.pmin.append(a if a < lo else lo)
            a = self.pmax[-1]
            self.pmax.append(a if a > hi else hi)
        else:
            self.pmin.append(lo)
            self.pmax.append(hi)
        if j & _SMASK == _SMASK:
            self._push_super(j + 1 - SUPER, j + 1)

    def _push_super(self, s: int, e: int) -> None:
        """Blocks ``[s, e)`` form a complete superblock: suffix minima/maxima and one sparse-table entry per level
        (level k's new entry combines the level k−1 entry 2**(k−1) superblocks back with the one just added)."""
        self.sufmin.extend(reversed(list(accumulate(reversed(self.bmin[s:e]), min))))
        self.sufmax.extend(reversed(list(accumulate(reversed(self.bmax[s:e]), max))))
        lo, hi = self.pmin[e - 1], self.pmax[e - 1]
        smin, smax = self.smin, self.smax
        j = len(smin[0])
        smin[0].append(lo)
        smax[0].append(hi)
        k, w = 1, 2
        while w <= j + 1:
            if k == len(smin):
                smin.append([])
                smax.append([])
            i = j + 1 - w
            a = smin[k - 1][i]
            if a < lo:
                lo = a
            a = smax[k - 1][i]
            if a > hi:
                hi = a
            smin[k].append(lo)
            smax[k].append(hi)
            k += 1
            w <<= 1

    def _extend_bulk(self, n0: int, n_new: int) -> None:
        """Many blocks at once (a rebuild after reallocation, a large backlog): reduce whole blocks with numpy."""
        v = self.values
        first_end = ((n0 >> _SHIFT) + 1) << _SHIFT
        start = n0
        if n0 & _MASK:
            part = v[n0:first_end].tolist()
            m, x = min(part), max(part)
            lo, hi = self._cur_min, self._cur_max
            self._push(lo if lo < m else m, hi if hi > x else x)
            start = first_end
        j1 = n_new >> _SHIFT
        full = v[start : j1 << _SHIFT].reshape(-1, BLOCK)
        push = self._push
        mins = np.minimum.reduce(full, axis=1).tolist()
        maxs = np.maximum.reduce(full, axis=1).tolist()
        for m, x in zip(mins, maxs, strict=True):
            push(m, x)
        if n_new & _MASK:
            part = v[j1 << _SHIFT : n_new].tolist()
            self._cur_min, self._cur_max = min(part), max(part)
        else:
            self._cur_min, self._cur_max = _INF, -_INF
        self._n = n_new

    def _scan(self, a: int, b: int) -> tuple[float, float]:
        seg = self.values[a:b].tolist()
        return min(seg), max(seg)

    def _blocks(self, m0: int, m1: int) -> tuple[float, float]:
        """(min, max) over complete blocks ``[m0, m1)``, ``m0 < m1``."""
        s0, s1 = m0 >> _SSHIFT, (m1 - 1) >> _SSHIFT
        if s0 == s1:
            if m0 & _SMASK == 0:
                return self.pmin[m1 - 1], self.pmax[m1 - 1]
            if m1 & _SMASK == 0:
                return self.sufmin[m0], self.sufmax[m0]
            return min(self.bmin[m0:m1]), max(self.bmax[m0:m1])
        lo, hi = self.sufmin[m0], self.sufmax[m0]  # m0's superblock is complete: a later one exists
        m, x = self.pmin[m1 - 1], self.pmax[m1 - 1]
        if m < lo:
            lo = m
        if x > hi:
            hi = x
        if s1 > s0 + 1:  # whole superblocks strictly between
            k = (s1 - s0 - 1).bit_length() - 1
            r = s1 - (1 << k)
            lv = self.smin[k]
            m = lv[s0 + 1]
            if m < lo:
                lo = m
            m = lv[r]
            if m < lo:
                lo = m
            lv = self.smax[k]
            x = lv[s0 + 1]
            if x > hi:
                hi = x
            x = lv[r]
            if x > hi:
                hi = x
        return lo, hi

    def query(self, a: int, b: int) -> tuple[float, float]:
        """(min, max) of ``values[a:b]``; requires ``a < b <= n``."""
        ba, bb = a >> _SHIFT, (b - 1) >> _SHIFT
        if ba == bb:
            if a & _MASK == 0:
                if b & _MASK == 0:
                    return self.bmin[ba], self.bmax[ba]
                if b == self._n:
                    return self._cur_min, self._cur_max
            return self._scan(a, b)
        if a & _MASK:
            lo, hi = self._scan(a, (ba + 1) << _SHIFT)
            m0 = ba + 1
        else:
            lo, hi = _INF, -_INF
            m0 = ba
        if b & _MASK == 0:
            m1 = bb + 1
        else:
            m1 = bb
            if b == self._n:
                m, x = self._cur_min, self._cur_max
            else:
                m, x = self._scan(bb << _SHIFT, b)
            if m < lo:
                lo = m
            if x > hi:
                hi = x
        if m1 > m0:
            m, x = self._blocks(m0, m1)
            if m < lo:
                lo = m
            if x > hi:
                hi = x
        return lo, hi
