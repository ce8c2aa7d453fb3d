"""Intrabar price paths and the touch they imply: K points from open to close (K = 12 by default: one per 5 s).

**Path.** A Brownian bridge from the open to the close (σ per step from the candle's range, ``BRIDGE_SIGMA_FACTOR``).
Where its excursion above max(open, close) or below min(open, close) falls short of the candle's high or low it is
stretched to reach it; then the path is folded (reflected) into [low, high], so an overshoot comes back by as much as
it went beyond and the moves keep their size instead of piling up on the extreme (stretching every excursion onto the
wick made plateaus: 47% of the points at an extreme against the 20% two touches need at K = 12). The nearest interior
point is then put exactly on each extreme. The bridge gives the extremes the timing a random walk has (often near the
ends), where placing them at uniform interior points made the path revert: the first seconds' move predicted the
opposite move for the rest of the minute (corr −0.2…−0.4, real ≈ 0). Points 0 and K−1 are the open and the close; the
path is on the tick grid and inside [low, high].

Pessimistic variant (live-cadence robustness report): the bridge is mirrored when needed, and the path then kept short
of the wrong extreme until the right one is visited, so that after an up candle the low comes first and after a down
candle the high comes first (a flat previous candle keeps the drawn order).

**Touch.** The direction of a point is the sign of its move; a flat point keeps the previous direction (after an
uptick the price stays at the ask). After an up move the path price is the best ask (a buy printed it), after a down
move the best bid; either way the last trade of a point prints the path price (flow.py), so the extremes are printed.
No trade may leave [low, high]: where the ask is above the high (price at the high after a down move) buys cannot
print, and where the bid is below the low sells cannot; a spread wider than one tick is narrowed where the far side
would leave the range while price is inside it. Those are the places the candle's extremes shape what the bot sees
(measured by the leak probes). A candle with high == low prints one side only, as a real one-price minute does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANGE_TO_STEP_SIGMA = 1.6
"""E[range] of an n-step random walk ≈ 1.6·σ·√n: the typical 1 s move of a symbol is its typical range / (1.6·√n)."""
BRIDGE_SIGMA_FACTOR = 1.6
"""The bridge's σ per step is this × range / (1.6·√(K−1)): real 1m bodies are large next to their ranges
(E[body²]/E[range²] = 0.53 on BTCUSDT against 0.36 for a random walk), so a random walk's σ leaves the drift dominant
and the first seconds' move predicts the rest. Measured on 5 days of BTCUSDT at K = 12, corr(first 10 s, rest) /
corr(first 30 s, rest): −0.05 / +0.18 at 1.0, +0.07 / +0.06 at 1.6, +0.09 / +0.02 at 2.5; the real recordings show
≈ 0 (−0.11 and −0.03, each ± 0.8 with under 6 minutes of data)."""


def build_paths(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, K: int, z: np.ndarray,
                low_first: np.ndarray | None = None) -> np.ndarray:
    """(N, K) int64 paths in ticks from int64 tick OHLC; ``z`` (N, K−1) standard normal increments.

    ``low_first`` (pessimistic mode) forces which extreme the path visits first where the candle has both; None
    keeps the bridge's own order.
    """
    if K < 4:
        raise ValueError(f"intrabar_points_per_candle must be >= 4, got {K}")
    n = K - 1
    fo, fh, fl, fc = (np.asarray(x, float)[:, None] for x in (o, h, lo, c))
    W = np.zeros((len(o), K))
    np.cumsum(z, axis=1, out=W[:, 1:])
    frac = np.arange(K) / n
    B = (W - frac * W[:, -1:]) * (BRIDGE_SIGMA_FACTOR * (fh - fl) / (RANGE_TO_STEP_SIGMA * np.sqrt(n)))
    base = fo + (fc - fo) * frac
    both = (h > np.maximum(o, c)) & (lo < np.minimum(o, c))
    if low_first is not None:
        y = base + B
        natural_low_first = np.argmin(y, axis=1) < np.argmax(y, axis=1)
        flip = both & (natural_low_first != low_first)
        B = np.where(flip[:, None], -B, B)
    y = base + B
    top, bot = np.maximum(fo, fc), np.minimum(fo, fc)
    y = _reach(y, top, fh, +1)
    y = _reach(y, bot, fl, -1)
    y = _fold(y, fl, fh)
    y = _touch_extremes(y, fh, fl, top, bot)
    path = np.clip(np.rint(y), fl, fh).astype(np.int64)
    path[:, 0], path[:, -1] = o, c
    if low_first is not None:
        _enforce_order(path, np.asarray(h), np.asarray(lo), low_first, both)
    return path


def _enforce_order(path: np.ndarray, h: np.ndarray, lo: np.ndarray, low_first: np.ndarray, rows_ok: np.ndarray
                   ) -> None:
    """Pessimistic mode: where the mirrored bridge still visits the wrong extreme first, keep the path a tick short of
    it until the other extreme is reached, then visit it at the path's highest (lowest) later interior point."""
    K = path.shape[1]
    for want_low in (True, False):
        first_x, other = (lo, h) if want_low else (h, lo)
        sign = 1 if want_low else -1  # the extreme that must wait is `other`
        rows = np.flatnonzero((low_first == want_low) & rows_ok)
        if not len(rows):
            continue
        sub = path[rows]
        i_first = np.argmax(sub == first_x[rows, None], axis=1)
        i_other = np.argmax(sub == other[rows, None], axis=1)
        bad = i_other < i_first
        for r in np.flatnonzero(bad):
            row, a = rows[r], min(int(i_first[r]), K - 3)  # leave room for the other extreme after it
            path[row, a] = first_x[row]
            cap = other[row] - sign
            seg = path[row, 1:a]
            path[row, 1:a] = np.minimum(seg, cap) if sign > 0 else np.maximum(seg, cap)
            later = path[row, a + 1:K - 1]
            if len(later) and not np.any(later == other[row]):
                j = a + 1 + int(np.argmax(sign * later))
                path[row, j] = other[row]


def _reach(y: np.ndarray, level: np.ndarray, extreme: np.ndarray, sign: int) -> np.ndarray:
    """Where the bridge's excursion beyond ``level`` (above for +1, below for −1) falls short of the candle's extreme,
    stretch it linearly so it reaches it; where it never went beyond, raise the interior point closest to it."""
    exc = sign * (y - level)
    m = exc.max(axis=1, keepdims=True)
    need = sign * (extreme - level)
    short = (m > 0) & (m < need)
    scale = np.where(short, need / np.where(m > 0, m, 1.0), 1.0)
    out = np.where(exc > 0, level + sign * exc * scale, y)
    miss = ((m <= 0) & (need > 0))[:, 0]
    if miss.any():
        rows = np.flatnonzero(miss)
        k = 1 + np.argmax(exc[rows, 1:-1], axis=1)
        out[rows, k] = extreme[rows, 0]
    return out


def _fold(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Reflect the path into [lo, hi] (a triangle wave): an overshoot comes back by as much as it went beyond, so the
    1 s moves keep their size instead of piling up on the extreme."""
    R = np.where(hi > lo, hi - lo, 1.0)
    z = np.mod(y - lo, 2 * R)
    return np.where(hi > lo, lo + np.where(z <= R, z, 2 * R - z), lo)


def _touch_extremes(y: np.ndarray, hi: np.ndarray, lo: np.ndarray, top: np.ndarray, bot: np.ndarray) -> np.ndarray:
    """Folding lands within a fraction of a tick of the extremes, not on them: put the interior point nearest to each
    extreme the open and close do not already print exactly on it."""
    rows = np.arange(len(y))
    for ext, edge, sign in ((hi, top, 1), (lo, bot, -1)):
        need = (sign * (ext - edge) > 0)[:, 0]
        k = 1 + np.argmax(sign * y[:, 1:-1], axis=1)
        r = rows[need]
        y[r, k[need]] = ext[r, 0]
    return y


@dataclass(frozen=True)
class PathTouch:
    """Per point: direction (±1), best bid and ask in ticks, and which aggressor sides can print."""

    direction: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    can_buy: np.ndarray
    can_sell: np.ndarray


def directions(path: np.ndarray, first_dir: np.ndarray) -> np.ndarray:
    """(N, K) ±1: sign of each move, flat points keep the previous direction; ``first_dir`` (N,) is point 0's when
    its move from the previous close is flat."""
    N, K = path.shape
    d = np.empty((N, K), np.int64)
    d[:, 1:] = np.sign(np.diff(path, axis=1))
    d[:, 0] = first_dir
    idx = np.where(d != 0, np.arange(K), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(d, idx, axis=1)


def touch_from_path(path: np.ndarray, direction: np.ndarray, spread: np.ndarray, h: np.ndarray,
                    lo: np.ndarray) -> PathTouch:
    """Best bid/ask around the path price; ``spread`` (N, K) ticks ≥ 1 is narrowed to keep both sides' prints
    inside [low, high]."""
    up = direction > 0
    H, L = h[:, None], lo[:, None]
    room = np.where(up, path - L, H - path)  # ticks the far side may move away before leaving the range
    s = np.where(room > 0, np.minimum(spread, room), spread)  # at the extreme itself: keep it, that side cannot print
    bid = np.where(up, path - s, path)
    ask = np.where(up, path, path + s)
    return PathTouch(direction, bid, ask, can_buy=ask <= H, can_sell=bid >= L)
