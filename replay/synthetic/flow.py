"""Synthetic trade flow at real granularity: one trade per maker fill, aggressor orders that sweep several fills.

Per candle and point k (one second by default), in time order:

1. **Schedule.** The point's volume target blends a causal expectation with the candle's own volume:
   ``target_k = (1 − w_k)·(v̄/K)·a_k + w_k·avail_k·a_k / (a_k + K−1−k)`` with ``w_k = ((k+1)/K)^p``. ``v̄`` is the causal
   recent volume (a short EWMA of the candles before this one), ``a_k`` the point's activity (lognormal burstiness times
   ``1 + c·|move_k| / typical move``: more trading when price moves), ``avail_k`` what is left of the candle's volume
   after the units reserved for the points that must print (below). Early seconds therefore hardly depend on the
   candle's total volume, later ones increasingly absorb it, and the last point takes exactly the remainder: the sizes
   sum to the candle volume on the qty-step grid; a point also never takes more than ``PACE_CAP`` times its even share
   of what is left, so a candle quieter than expected trades slowly throughout rather than running dry. These are
   the dependences on the candle the volume constraint forces; the leak probes measure them (doubling only the volume
   changes the first seconds' volume by a few %).
2. **Orders.** ``n_k = ⌊target_k / (mean order size) + u⌋`` aggressor orders (at least one at a point that must print),
   each of 1 fill with the fitted probability, else 2 + geometric fills; all fills of an order share one millisecond,
   one side and one price (the touch: buys at the ask, sells at the bid), as on real tapes.
3. **Sizes.** Fill notional = lognormal body (capped at the tail threshold) or, with the fitted share, a Pareto tail;
   its mean is the causal mean fill notional at the symbol's typical volume, scaled by (local rate / expected rate)^e,
   so busy seconds carry bigger orders and the trade count grows less than proportionally with volume (e fitted on
   real seconds: moving vs flat). Units are integers of the qty step, at least the instrument's minimum order notional
   (real tapes pile up there: 21% of Binance BTC trades are its 100 USDT minimum); a point never takes more than its
   available units (a budget-cut fill may be smaller).
4. **Sides.** P(buy) = the fitted probability for the second's move (down / flat / up), shifted in logit by the move
   since the candle's open over the typical 1m range: sellers dominate falling minutes as on real tapes. The first
   order of the candle prints the open (side of point 0's direction) and the last order of every point is on its
   direction, so the last trade price follows the path and the high/low/close are printed.

Points that must print: 0 (open), the first point at the high, the first at the low, K−1 (close). Three units (close,
high, low) are held back while scheduling, one released as each extreme point passes (knowing a point is the candle's
extreme is the only look-ahead, and it moves at most a unit of volume); they only bind when a candle's volume is
nearly exhausted. Every draw is a counter-based hash of
(candle time, point, slot), so a candle regenerates alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replay.synthetic.params import GeneratorParams
from replay.synthetic.path import PathTouch
from replay.synthetic.rng import CandleDraws

# draw purposes (keys of the counter-based streams, see rng.py)
_ACT, _NORD, _NFILL, _NGEO, _OTIME, _OSIDE, _FLARGE, _FPAR, _FBODY = (0x7A10 + i for i in range(9))
MAX_FILLS_PER_MINUTE = 1_000_000
PACE_CAP = 3.0
"""Point k never takes more than PACE_CAP·√(K/(k+1)) times its even share of the candle's remaining volume, nor so much
that less than ``PACE_FLOOR`` of an even schedule is left for the rest of the candle: a candle quieter than its causal
expectation trades slowly throughout instead of running dry and falling silent before its close. The bound depends on
the candle's volume, so it is loose early (the first seconds stay causal) and tight late."""
PACE_FLOOR = 0.25
"""Trade ids are minute index · this + rank in the minute."""


@dataclass(frozen=True)
class FlowScales:
    """Causal per-candle inputs (N,): typical volume per minute in qty units, mean fill size in units at that volume,
    typical per-point |move| σ in ticks and typical 1m range in ticks."""

    volume_units: np.ndarray
    fill_units: np.ndarray
    move_sigma: np.ndarray
    range_ticks: np.ndarray
    min_units: np.ndarray  # smallest ordinary fill: the instrument's minimum order notional (≥ 1 step)


@dataclass(frozen=True)
class TradeArrays:
    """Flat trades of a chunk, ordered by (candle, point, time)."""

    row: np.ndarray  # point row in the chunk (candle·K + k)
    ts_ms: np.ndarray
    price_ticks: np.ndarray
    units: np.ndarray
    is_buy: np.ndarray
    seq: np.ndarray  # rank in time within the candle

    def __len__(self) -> int:
        return len(self.ts_ms)


def must_print(path: np.ndarray, h: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """(N, K) bool: open, close and the first points at the high and at the low."""
    N, K = path.shape
    m = np.zeros((N, K), bool)
    m[:, 0] = m[:, -1] = True
    rows = np.arange(N)
    m[rows, np.argmax(path == h[:, None], axis=1)] = True
    m[rows, np.argmax(path == lo[:, None], axis=1)] = True
    return m


def _geometric(u: np.ndarray, mean: float) -> np.ndarray:
    """Geometric on {0, 1, ...} with the given mean, by inversion of one uniform."""
    if mean <= 0:
        return np.zeros(len(u), np.int64)
    q = mean / (1.0 + mean)  # P(X ≥ 1)
    return np.floor(np.log(u) / np.log(q)).astype(np.int64)


def build_flow(*, path: np.ndarray, prev_close: np.ndarray, touch: PathTouch, o: np.ndarray, h: np.ndarray,
               lo: np.ndarray, volume_units: np.ndarray, open_ms: np.ndarray, scales: FlowScales, draws: CandleDraws,
               params: GeneratorParams) -> TradeArrays:
    """The trades of N candles (see the module docstring); ``path`` (N, K) ticks."""
    N, K = path.shape
    p = params
    prev = np.concatenate([prev_close[:, None], path[:, :-1]], axis=1)
    move = path - prev
    ms = np.maximum(scales.move_sigma, 1e-9)[:, None]
    excite = 1.0 + p.activity_move_coef * np.abs(move) / ms
    # the open continues the previous close (its "move" is a gap, usually none): point 0 gets the average excitation
    # instead of the flat-point minimum, or every minute would open with a quiet first point
    excite[:, 0] = 1.0 + 0.8 * p.activity_move_coef
    # the fitted burstiness is per second; a point of d seconds sums d of them (CV / √d)
    s_a = float(np.sqrt(np.log1p(1.0 / (p.activity_shape * max(60.0 / K, 1.0)))))
    # normalise the excitation by its running mean in the candle (prior: 1 + 0.8·c for 10 points), so the causal
    # expectation v̄/K·a stays unbiased whatever the tick grid does to |move|
    prior_n = 10.0
    run = (prior_n * (1.0 + 0.8 * p.activity_move_coef) + np.cumsum(excite, axis=1)) / (prior_n + np.arange(1, K + 1))
    act = np.exp(s_a * draws.normal(_ACT, K) - s_a * s_a / 2) * excite / run
    forced = must_print(path, h, lo) & (volume_units > 0)[:, None]
    # one unit held back for each point that may still have to print (close, high, low): 3 minus the extreme points
    # already passed, so the reservation never says where a later extreme lies
    interior = forced.copy()
    interior[:, -1] = False
    passed = np.cumsum(interior, axis=1) - interior[:, :1]  # point 0 (the open) is not an extreme to wait for
    reserve_after = np.maximum(3 - passed, 1)
    reserve_after[:, -1] = 0
    # side probabilities per point (causal: this point's move and the move since the candle's open)
    pb = np.asarray(p.buy_prob_by_move)[np.sign(move) + 1]
    logit = np.log(pb / (1 - pb)) + p.buy_trend_coef * (path - o[:, None]) / np.maximum(scales.range_ticks, 1)[:, None]
    p_buy = 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))
    e_base = scales.volume_units / K
    fill_mean_factor = p.fill_notional_mean_factor
    rows = np.arange(N)
    cum = np.zeros(N, np.int64)
    vol_units = volume_units.astype(float)
    out: list[tuple[np.ndarray, ...]] = []
    u_nord = draws.uniform(_NORD, K)
    for k in range(K):
        avail = np.maximum(volume_units - cum - reserve_after[:, k], 0)
        a = act[:, k]
        w = ((k + 1) / K) ** p.volume_blend_power
        share = a / (a + (K - 1 - k))  # this point's share of what is left, at the expected later activity
        target = (1 - w) * e_base * a + w * avail * share
        floor_after = PACE_FLOOR * vol_units * (K - 1 - k) / K  # left for the rest of the candle
        cap = PACE_CAP * np.sqrt(K / (k + 1))  # loose early (causal pacing), tight late (no running dry)
        bound = np.minimum(cap * avail * share, np.maximum(avail - floor_after, 0))
        bound = np.where(forced[:, k] & (avail > 0), np.maximum(bound, 1), bound)  # the point must print
        target = np.minimum(target, bound)
        rate = np.clip(target / np.maximum(e_base, 1e-12), 0.05, 20.0)
        fill_mean = np.maximum(scales.fill_units * rate ** p.fill_rate_elasticity, 1.0)
        lam = target / (fill_mean * p.mean_fills_per_order)
        n = np.floor(lam + u_nord[:, k]).astype(np.int64)
        n = np.where(forced[:, k], np.maximum(n, 1), n)
        if k == K - 1:
            n = np.maximum(n, 1)
        n = np.where(avail > 0, n, 0)
        n_ord = int(n.sum())
        if n_ord == 0:
            continue
        ocand = np.repeat(rows, n)
        ostart = np.cumsum(n) - n
        oj = np.arange(n_ord) - ostart[ocand]
        # order times (sorted within the point), then sides on the sorted orders
        u_t = draws.uniform_at(_OTIME, ocand, k * 1_000_000 + oj)
        order = np.lexsort((u_t, ocand))
        u_t = u_t[order]
        start = open_ms[ocand] + (k * 60_000) // K
        end = open_ms[ocand] + ((k + 1) * 60_000) // K
        ots = start + 2 + np.floor(u_t * (end - start - 1)).astype(np.int64)
        ots = np.minimum(ots, end)
        is_buy = draws.uniform_at(_OSIDE, ocand, k * 1_000_000 + oj) < p_buy[ocand, k]
        up = touch.direction[ocand, k] > 0
        last = oj == n[ocand] - 1
        is_buy = np.where(last, up, is_buy)
        if k == 0:
            is_buy = np.where(oj == 0, up, is_buy)
        is_buy = np.where(touch.can_buy[ocand, k], is_buy, False)
        is_buy = np.where(touch.can_sell[ocand, k], is_buy, True)
        # fills per order
        u_nf = draws.uniform_at(_NFILL, ocand, k * 1_000_000 + oj)
        nf = np.where(u_nf < p.single_fill_share, 1,
                      2 + _geometric(draws.uniform_at(_NGEO, ocand, k * 1_000_000 + oj), p.multi_fill_mean - 2))
        fo = np.repeat(np.arange(n_ord), nf)
        fcand = ocand[fo]
        per_cand = np.bincount(fcand, minlength=N)
        fstart = np.cumsum(per_cand) - per_cand
        fj = np.arange(len(fo)) - fstart[fcand]
        big = draws.uniform_at(_FLARGE, fcand, k * 1_000_000 + fj) < p.large_fill_share
        tail = p.large_fill_mult * np.minimum(
            draws.uniform_at(_FPAR, fcand, k * 1_000_000 + fj) ** (-1.0 / p.large_fill_alpha), p.max_large_mult)
        body = np.minimum(np.exp(p.fill_log_sigma * draws.normal_at(_FBODY, fcand, k * 1_000_000 + fj)),
                          p.large_fill_mult)
        rel = np.where(big, tail, body) / fill_mean_factor
        units = np.maximum(scales.min_units[fcand], np.rint(rel * fill_mean[fcand])).astype(np.int64)
        # the budget goes first to the fill that must print (the last order of a point that prints an extreme or
        # the close), then to the others in time order
        first_fill = np.ones(len(fo), bool)
        first_fill[1:] = fo[1:] != fo[:-1]
        guard = first_fill & (last & forced[ocand, k])[fo]
        prio = np.lexsort((np.arange(len(fo)), ~guard, fcand))
        up_ = units[prio]
        cs = np.cumsum(up_)
        before = cs - up_ - (cs[fstart[fcand]] - up_[fstart[fcand]])
        budget = np.floor(bound[fcand]).astype(np.int64)  # realised sizes are random: cut at the pace bound too
        if k < K - 1:
            up_ = np.where(before < budget, np.minimum(up_, budget - before), 0)
        else:
            up_ = _exact(up_, fcand, fstart, per_cand, avail)
        units = np.empty_like(up_)
        units[prio] = up_
        keep = units > 0
        got = np.bincount(fcand, weights=units, minlength=N).astype(np.int64)
        cum += got
        fsel = np.flatnonzero(keep)
        fo_k = fo[fsel]
        out.append((fcand[fsel] * K + k, ots[fo_k], np.where(is_buy[fo_k], touch.ask[fcand[fsel], k],
                                                               touch.bid[fcand[fsel], k]),
                    units[fsel], is_buy[fo_k], fo_k))
    if not out:
        e = np.zeros(0, np.int64)
        return TradeArrays(e, e, e, e, np.zeros(0, bool), e)
    row, ts, price, units, is_buy, oseq = (np.concatenate(c) for c in zip(*out, strict=True))
    srt = np.lexsort((oseq, ts, row))
    row, ts, price, units, is_buy = row[srt], ts[srt], price[srt], units[srt], is_buy[srt]
    cand = row // K
    cnt = np.bincount(cand, minlength=N)
    seq = np.arange(len(row)) - (np.cumsum(cnt) - cnt)[cand]
    return TradeArrays(row, ts, price, units, is_buy, seq)


def _exact(units: np.ndarray, fcand: np.ndarray, fstart: np.ndarray, per_cand: np.ndarray,
           avail: np.ndarray) -> np.ndarray:
    """Rescale each candle's fills of the last point so they sum exactly to ``avail`` (integers ≥ 1 while the budget
    allows one unit per fill; fills beyond the budget get 0): cumulative-floor allocation of the weights."""
    n = per_cand[fcand]
    j = np.arange(len(units)) - fstart[fcand]
    total = avail[fcand]
    active = j < np.minimum(n, total)
    w = np.where(active, units, 0).astype(float)
    cs = np.cumsum(w)
    grp_cs = cs - (cs[fstart[fcand]] - w[fstart[fcand]])
    grp_tot = np.bincount(fcand, weights=w, minlength=len(per_cand))[fcand]
    n_act = np.minimum(n, total)
    rest = (total - n_act).astype(float)
    cum = np.floor(np.divide(grp_cs, grp_tot, out=np.zeros_like(grp_cs), where=grp_tot > 0) * rest)
    cum = np.where(j >= n_act - 1, rest, np.minimum(cum, rest))
    prev = np.where(j > 0, np.roll(cum, 1), 0.0)
    prev = np.where(j > 0, prev, 0.0)
    return np.where(active, 1 + (cum - prev), 0).astype(np.int64)
