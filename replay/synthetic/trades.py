"""Synthetic prints per candle: count from volume, heavy-tailed sizes summing exactly to the volume, sides from moves.

Aggregation (stated): a real minute holds hundreds to thousands of trades; the generator emits at most
``max_prints_per_point`` prints per intrabar point, each standing for a group of real trades. The emitted count per
minute is n = target·K·(v/v̄)^b·exp(σε − σ²/2) (b, σ fitted on Binance trades-vs-volume; target·K capped by the real
intensity), clipped to [1, cap·K] and to the number of qty steps in the volume, so count *ratios* between minutes
follow the real elasticity even though absolute counts are scaled down.

Sizes: weight = lognormal(body σ) capped at the large threshold, or with the fitted large-print probability
threshold × Pareto(α) (capped). Exact volume: the candle volume is rounded half-up to the qty step
(V units); every print gets 1 unit plus its cumulative-floor share of the remaining V − n units (print j gets
⌊S_j·(V−n)⌋ − ⌊S_{j−1}·(V−n)⌋ with S the cumulative weight share and the last print closing the sum), so the sizes
are integers of the step and add up to V exactly.

Sides and prices: the last print of each point is on the side of the point's move (so the last trade price is the
path price); the others are buys with probability clip(α + β·K·Δp/range) (α, β fitted: taker-buy share vs body
ratio), which reproduces the fitted candle-level share. Buys print at min(best ask, high), sells at
max(best bid, low): at or inside the touch of the book emitted at that point, and within the candle's range.
Print times are uniform order statistics inside the point's interval (a Poisson arrival conditioned on the count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replay.synthetic.params import GeneratorParams
from replay.synthetic.rng import CandleDraws

# draw purposes (keys of the counter-based streams, see rng.py)
_COUNT, _PT, _TIME, _LARGE, _PARETO, _SIDE, _SIZE = (0x7A00 + i for i in range(7))


@dataclass(frozen=True)
class TradeArrays:
    """Flat prints of a chunk, ordered by (candle, point, time)."""

    row: np.ndarray  # point row in the chunk (candle·K + k)
    ts_ms: np.ndarray
    price_ticks: np.ndarray
    units: np.ndarray
    is_buy: np.ndarray
    seq: np.ndarray  # rank in time within the candle


def print_counts(volume_units: np.ndarray, volume: np.ndarray, mean_volume: np.ndarray, z: np.ndarray, K: int,
                 params: GeneratorParams) -> np.ndarray:
    """Emitted prints per candle; ``mean_volume`` is the causal per-candle reference volume (scales.py)."""
    cap = params.max_prints_per_point * K
    target = min(params.target_prints_per_point * K, params.real_trades_per_min_at_mean)
    s = params.trade_count_resid_sigma
    rel = np.where(volume > 0, volume / np.maximum(mean_volume, 1e-300), 0.0)
    n = np.rint(target * rel ** params.trade_count_elasticity * np.exp(s * z - s * s / 2))
    n = np.clip(n, 1, cap).astype(np.int64)
    return np.where(volume_units > 0, np.minimum(n, volume_units), 0)


def allocate_units(weights: np.ndarray, n: np.ndarray, volume_units: np.ndarray) -> np.ndarray:
    """(N, M) integer units: 1 + cumulative-floor share of V − n for the first n slots of each row, 0 elsewhere."""
    M = weights.shape[1]
    col = np.arange(M)
    active = col[None, :] < n[:, None]
    w = np.where(active, weights, 0.0)
    cs = np.cumsum(w, axis=1)
    tot = np.where(cs[:, -1] > 0, cs[:, -1], 1.0)
    rest = (volume_units - n).astype(np.float64)
    cum = np.floor(cs / tot[:, None] * rest[:, None])
    cum = np.minimum(cum, rest[:, None])
    cum = np.where(col[None, :] >= (n - 1)[:, None], rest[:, None], cum)
    extra = np.diff(cum, axis=1, prepend=0.0)
    return np.where(active, 1 + extra, 0).astype(np.int64)


def build_trades(*, path: np.ndarray, prev_close: np.ndarray, h: np.ndarray, lo: np.ndarray, bid: np.ndarray,
                 ask: np.ndarray, direction: np.ndarray, volume: np.ndarray, volume_units: np.ndarray,
                 open_ms: np.ndarray, mean_volume: np.ndarray, draws: CandleDraws, params: GeneratorParams
                 ) -> TradeArrays:
    """``path``/``bid``/``ask``/``direction`` are (N, K) ticks; ``draws`` are the chunk's per-candle streams.

    Slot j of candle i draws from (candle time, j) only, so the prints do not depend on the chunk; only the active
    slots are drawn (the arrays are as wide as the busiest candle of the chunk).
    """
    N, K = path.shape
    n = print_counts(volume_units, volume, mean_volume, draws.normal(_COUNT, 1)[:, 0], K, params)
    M = max(int(n.max()) if N else 0, 1)
    col = np.arange(M)
    active = col[None, :] < n[:, None]
    ar, ac = np.nonzero(active)

    def slots(purpose: int, normal: bool = False) -> np.ndarray:
        out = np.zeros((N, M))
        out[ar, ac] = draws.normal_at(purpose, ar, ac) if normal else draws.uniform_at(purpose, ar, ac)
        return out

    u_pt, u_t, u_large, u_par, u_side = (slots(p) for p in (_PT, _TIME, _LARGE, _PARETO, _SIDE))
    z_size = slots(_SIZE, normal=True)
    # points: slot 0 at the high's point, slot 1 at the low's point (the tape touches both), others uniform
    pt = np.minimum(np.floor(u_pt * K).astype(np.int64), K - 1)
    pt[:, 0] = np.argmax(path == h[:, None], axis=1)
    if M > 1:
        pt[:, 1] = np.argmax(path == lo[:, None], axis=1)
    # sizes
    thr = params.large_print_threshold_mult
    body = np.minimum(np.exp(params.trade_size_body_sigma * z_size), thr)
    big = thr * np.minimum(np.where(active, u_par, 1.0) ** (-1.0 / params.large_print_pareto_alpha),
                           params.max_pareto_mult)
    w = np.where(u_large < params.large_print_share, big, body)
    units = allocate_units(w, n, volume_units)
    # time order inside the candle: by point, then by time uniform
    key = np.where(active, pt + u_t * 0.999, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    pt = np.take_along_axis(pt, order, 1)
    u_t = np.take_along_axis(u_t, order, 1)
    units = np.take_along_axis(units, order, 1)
    u_side = np.take_along_axis(u_side, order, 1)
    active = np.take_along_axis(active, order, 1)
    rows = np.arange(N)[:, None]
    # side probability from the local move
    prev = np.concatenate([prev_close[:, None], path[:, :-1]], axis=1)
    rng = (h - lo).astype(float)
    move = np.divide((path - prev) * K, rng[:, None], out=np.zeros((N, K)), where=rng[:, None] > 0)
    p_buy = np.clip(params.taker_buy_intercept + params.taker_buy_slope * move, 0.02, 0.98)
    is_buy = u_side < p_buy[rows, pt]
    nxt_pt = np.concatenate([pt[:, 1:], np.full((N, 1), -1)], axis=1)
    nxt_active = np.concatenate([active[:, 1:], np.zeros((N, 1), bool)], axis=1)
    last_of_point = active & ~(nxt_active & (nxt_pt == pt))
    is_buy = np.where(last_of_point, direction[rows, pt] > 0, is_buy)
    price = np.where(is_buy, np.minimum(ask[rows, pt], h[:, None]), np.maximum(bid[rows, pt], lo[:, None]))
    # times (ms): strictly after the point's book (start + 1 ms), before its release (end)
    start = open_ms[:, None] + (pt * 60_000) // K
    end = open_ms[:, None] + ((pt + 1) * 60_000) // K
    ts = start + 2 + np.floor(u_t * (end - start - 2)).astype(np.int64)
    seq = np.broadcast_to(col, (N, M))
    sel = active.ravel()
    return TradeArrays(
        row=(rows * K + pt).ravel()[sel],
        ts_ms=ts.ravel()[sel],
        price_ticks=price.ravel()[sel],
        units=units.ravel()[sel],
        is_buy=is_buy.ravel()[sel],
        seq=seq.ravel()[sel],
    )
