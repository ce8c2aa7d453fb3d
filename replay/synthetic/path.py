"""Intrabar price paths: K points from open to close touching high and low exactly, inside [low, high], on ticks.

Point 0 is the open, point K−1 the close; the extremes not already at the open/close sit at random distinct
interior points. Which extreme comes first is random with P(low first) = logistic(a + b·body) fitted on real
5m candles from their 1m bars (body = (close−open)/(high−low)), so an up candle usually dips first but not always.
Between anchors the path is a Brownian bridge (σ per step = bridge_noise·range/√K) clipped to [low, high].

Pessimistic variant (live-cadence robustness report): the order is set against the previous candle's direction —
after an up candle the low comes first, after a down candle the high comes first (a trend follower entering on the
previous candle's direction is taken to the adverse extreme before the favourable one); a flat previous candle
keeps the random order.
"""

from __future__ import annotations

import numpy as np


def low_first_probability(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, intercept: float,
                          slope: float) -> np.ndarray:
    rng = h - lo
    body = np.divide(c - o, rng, out=np.zeros_like(rng, dtype=float), where=rng > 0)
    return 1.0 / (1.0 + np.exp(-(intercept + slope * body)))


def build_paths(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, K: int, low_first: np.ndarray,
                u_pos1: np.ndarray, u_pos2: np.ndarray, z: np.ndarray, bridge_noise: float) -> np.ndarray:
    """(N, K) int64 paths in ticks from int64 tick OHLC; ``low_first`` bool, ``u_pos*`` uniforms, ``z`` (N, K)."""
    if K < 4:
        raise ValueError(f"intrabar_points_per_candle must be >= 4 (open, close and two interior extremes), got {K}")
    n = len(o)
    need_hi = (h > o) & (h > c)
    need_lo = (lo < o) & (lo < c)
    both = need_hi & need_lo
    p1 = 1 + np.floor(u_pos1 * (K - 2)).astype(np.int64)
    p2 = 1 + np.floor(u_pos2 * (K - 3)).astype(np.int64)
    p2 = p2 + (p2 >= p1)
    first, second = np.minimum(p1, p2), np.maximum(p1, p2)
    lo_pos = np.where(both, np.where(low_first, first, second), p1)
    hi_pos = np.where(both, np.where(low_first, second, first), p1)
    rows = np.arange(n)
    ar = np.arange(K)
    is_a = np.zeros((n, K), bool)
    val = np.zeros((n, K))
    is_a[:, 0] = is_a[:, -1] = True
    val[:, 0], val[:, -1] = o, c
    is_a[rows[need_hi], hi_pos[need_hi]] = True
    val[rows[need_hi], hi_pos[need_hi]] = h[need_hi]
    is_a[rows[need_lo], lo_pos[need_lo]] = True
    val[rows[need_lo], lo_pos[need_lo]] = lo[need_lo]
    left = np.maximum.accumulate(np.where(is_a, ar, 0), axis=1)
    right = np.minimum.accumulate(np.where(is_a, ar, K - 1)[:, ::-1], axis=1)[:, ::-1]
    span = right - left
    frac = np.divide(ar - left, span, out=np.zeros((n, K)), where=span > 0)
    vl = np.take_along_axis(val, left, 1)
    vr = np.take_along_axis(val, right, 1)
    W = np.cumsum(z, axis=1)
    wl = np.take_along_axis(W, left, 1)
    wr = np.take_along_axis(W, right, 1)
    bridge = W - (wl + (wr - wl) * frac)
    sigma = (bridge_noise * (h - lo) / np.sqrt(K))[:, None]
    path = np.rint(vl + (vr - vl) * frac + sigma * bridge)
    # before the second extreme's anchor the path may not touch it, so "which extreme comes first" is exact
    before_second = both[:, None] & (ar[None, :] < second[:, None])
    upper = np.where(before_second & low_first[:, None], h[:, None] - 1, h[:, None])
    lower = np.where(before_second & ~low_first[:, None], lo[:, None] + 1, lo[:, None])
    path = np.clip(path, lower, upper).astype(np.int64)
    path[is_a] = val[is_a].astype(np.int64)
    return path
