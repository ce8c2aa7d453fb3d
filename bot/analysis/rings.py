"""The VolumeAnalyzer's incremental per-symbol state (STRATEGY.md §5.5, §5.6): the volume-bucket ring with its EMAs
and the trade-size ring with its seq cursor. Kept apart from the analyzer because it is the only state it carries;
both advance once per new bucket / trade however often ``compute`` runs."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

__all__ = ["Buckets", "SizeRing", "SymbolState"]

_add_reduce = np.add.reduce
_multiply = np.multiply


class Buckets:
    """§5.5 state: ring of completed bucket notionals, fast/slow EMAs, and the next bucket index to append.

    Bucket k covers [k·B, (k+1)·B); it is complete once now ≥ (k+1)·B. μ and σ of the ring change only when a bucket
    is appended, so they are cached then (population σ, ddof=0).
    """

    __slots__ = ("ema_fast", "ema_slow", "mu", "next_k", "ring", "sd")

    def __init__(self, capacity: int) -> None:
        self.next_k: int | None = None
        self.ring: deque[float] = deque(maxlen=capacity)
        self.ema_fast: float | None = None
        self.ema_slow: float | None = None
        self.mu = 0.0
        self.sd = 0.0


class SizeRing:
    """§5.6 trade-size ring: newest ≤ capacity trade notionals, none older than the look-back.

    A linear buffer of twice the capacity with a [lo, hi) live region: appends are slice copies and eviction is an
    index move; the region is compacted to the front only when the buffer end is reached (amortised O(1) per trade).
    Notionals and their squares are the two rows of one array, so both sums are one reduction along the rows: each
    row is still summed on its own, contiguous, by numpy's pairwise loop, the same bits as two 1-D reductions.
    """

    __slots__ = ("cap", "cursor", "hi", "lo", "mu", "n1", "n2", "nn", "sd", "ts")

    def __init__(self, capacity: int) -> None:
        self.cap = capacity
        self.cursor = 0  # storage seq numbers start at 1
        self.ts = np.empty(2 * capacity, dtype=np.float64)
        self.nn = np.empty((2, 2 * capacity), dtype=np.float64)  # notionals; squares, made once per trade
        self.n1, self.n2 = self.nn  # the two rows as 1-D views: cheaper to slice than the 2-D array for the appends
        self.lo = 0
        self.hi = 0
        self.mu = 0.0
        self.sd = 0.0

    def __len__(self) -> int:
        return self.hi - self.lo

    def feed(self, ts: np.ndarray, notional: np.ndarray) -> None:
        cap = self.cap
        k = len(ts)
        if k >= cap:
            ts, notional, k = ts[k - cap :], notional[k - cap :], cap
            self.lo = self.hi = 0
        elif self.hi + k > 2 * cap:
            keep_from = max(self.lo, self.hi - (cap - k))
            m = self.hi - keep_from
            self.ts[:m] = self.ts[keep_from : self.hi].copy()
            self.nn[:, :m] = self.nn[:, keep_from : self.hi].copy()
            self.lo, self.hi = 0, m
        hi = self.hi
        e = hi + k
        self.ts[hi:e] = ts
        self.n1[hi:e] = notional
        _multiply(notional, notional, self.n2[hi:e])
        self.hi = e
        if e - self.lo > cap:
            self.lo = e - cap

    def evict_before(self, cutoff: float) -> None:
        lo, hi = self.lo, self.hi
        if hi > lo and self.ts.item(lo) < cutoff:
            self.lo = lo + int(self.ts[lo:hi].searchsorted(cutoff, "left"))

    def refresh_stats(self) -> None:
        n = self.hi - self.lo
        if n == 0:
            self.mu = self.sd = 0.0
            return
        # numpy's pairwise sum per row, not BLAS: same bits anywhere
        s, s2 = _add_reduce(self.nn[:, self.lo : self.hi], axis=1).tolist()
        mu = s / n
        ex2 = s2 / n
        var = ex2 - mu * mu
        self.mu = mu
        # one pass; round-off ~1e-16·E[x²], so anything below 1e-12·E[x²] is equal sizes, not dispersion
        self.sd = math.sqrt(var) if var > 1e-12 * ex2 else 0.0


class SymbolState:
    __slots__ = ("buckets", "sizes")

    def __init__(self, bucket_capacity: int, size_capacity: int) -> None:
        self.buckets = Buckets(bucket_capacity)
        self.sizes = SizeRing(size_capacity)
