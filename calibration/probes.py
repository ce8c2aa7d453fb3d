"""Leak probes: does what the bot can see early in a synthetic minute give away how the minute ends?

- **reversal**: corr(move over the first 10 s of a minute, move over its remaining 50 s). Real prices are close to a
  martingale (≈ 0); a generator that puts both extremes at random interior points makes the path revert (−0.2…−0.4).
  Real: every 60 s window of the recording starting on a whole second (sliding), with a standard error from the
  number of non-overlapping minutes; synthetic: candle-aligned minutes (where an artifact would sit).
- **perturb**: change only candle m's high, low or close; every event released before the first point where the path
  differs must be identical. Reported: share of probes with any earlier event changed, and share of those events.
- **volume**: double only candle m's volume; ratio of the volume traded in its first 5 s (1.0 = no dependence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bot.events import BookDelta, BookSnapshot, TradeBatch, as_levels
from calibration.recordings import Recording
from replay.synthetic import Candles, SyntheticMarketBuilder

FIRST_SEC = 10
VOLUME_SEC = 5


@dataclass(frozen=True)
class ProbeResult:
    reversal_corr_real: float
    reversal_corr_real_se: float
    reversal_corr_synthetic: float
    reversal_candles: int
    perturb_probes: int
    perturb_changed_share: float  # share of probes with any pre-divergence event changed
    perturb_event_changed_share: float  # share of pre-divergence events changed
    volume_first5s_ratio: float

    @property
    def reversal_within_noise(self) -> bool:
        return abs(self.reversal_corr_synthetic - self.reversal_corr_real) <= 2 * self.reversal_corr_real_se


def reversal_real(rec: Recording) -> tuple[float, float]:
    ms, px = rec.trade_ms, rec.trade_price
    s0 = int(ms[0] // 1000) + 1
    s1 = int(ms[-1] // 1000) - 60
    starts = np.arange(s0, s1) * 1000
    if len(starts) < 2:
        return math.nan, math.nan

    def at(t: np.ndarray) -> np.ndarray:  # last trade price at or before t
        return px[np.maximum(np.searchsorted(ms, t, side="right") - 1, 0)]

    p0, p1, p2 = at(starts), at(starts + FIRST_SEC * 1000), at(starts + 60_000)
    c = _corr(p1 - p0, p2 - p1)
    n_ind = max((ms[-1] - ms[0]) / 60_000.0, 1.0)
    return c, 1.0 / math.sqrt(n_ind)


def reversal_synthetic(builder: SyntheticMarketBuilder, candles: Candles) -> float:
    path = builder.path_prices(candles, 0, len(candles))
    K = path.shape[1]
    k10 = max(1, round(FIRST_SEC * K / 60)) - 1  # the point that closes the first 10 s
    return _corr(path[:, k10] - candles.open, candles.close - path[:, k10])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _same(x: object, y: object) -> bool:
    if isinstance(x, TradeBatch) and isinstance(y, TradeBatch):
        return all(np.array_equal(getattr(x, f), getattr(y, f)) for f in ("ts", "price", "size", "is_buy", "trade_id"))
    if isinstance(x, BookDelta | BookSnapshot) and isinstance(y, BookDelta | BookSnapshot):
        return (type(x) is type(y) and (x.symbol, x.ts, x.update_id) == (y.symbol, y.ts, y.update_id)
                and as_levels(x.bids) == as_levels(y.bids) and as_levels(x.asks) == as_levels(y.asks))
    return x == y


def _with(c: Candles, i: int, **cols: float) -> Candles:
    arrays = {f: getattr(c, f).copy() for f in ("open", "high", "low", "close", "volume")}
    for k, v in cols.items():
        arrays[k][i] = v
    return replace(c, **arrays)


def perturb_probe(builder: SyntheticMarketBuilder, candles: Candles, idx: np.ndarray) -> tuple[int, float, float]:
    tick = builder.instrument.tick
    probes = changed = ev_total = ev_changed = 0
    for i in idx.tolist():
        h, lo, c = candles.high[i], candles.low[i], candles.close[i]
        rng = max(h - lo, tick)
        step = max(tick, round(rng / 4 / tick) * tick)
        variants = [_with(candles, i, high=h + step), _with(candles, i, low=max(lo - step, tick))]
        if h > lo:  # move the close inside the range
            nc = lo if c > lo else h
            variants.append(_with(candles, i, close=nc, high=max(h, nc), low=min(lo, nc)))
        base_path = builder.path_prices(candles, i, i + 1)[0]
        base = builder.candle_events(i, candles)
        for v in variants:
            path = builder.path_prices(v, i, i + 1)[0]
            diff = np.flatnonzero(path != base_path)
            d = int(diff[0]) if len(diff) else len(path)
            other = builder.candle_events(i, v)
            cut = candles.open_time_ms[i] / 1000.0 + d * 60.0 / builder.K  # releases before point d's start
            early, early_o = [x for x in base if x[0] <= cut], [x for x in other if x[0] <= cut]
            n_ev = n_bad = 0
            if len(early) != len(early_o):
                n_bad += max(1, abs(len(early) - len(early_o)))
            for (_, b1), (_, b2) in zip(early, early_o, strict=False):
                n_ev += len(b1)
                if len(b1) != len(b2):
                    n_bad += len(b1)
                    continue
                n_bad += sum(not _same(x, y) for x, y in zip(b1, b2, strict=True))
            probes += 1
            changed += n_bad > 0
            ev_total += n_ev
            ev_changed += n_bad
    return probes, changed / max(probes, 1), ev_changed / max(ev_total, 1)


def volume_probe(builder: SyntheticMarketBuilder, candles: Candles, idx: np.ndarray) -> float:
    def early(c: Candles, i: int) -> float:
        vol = 0.0
        t_cut = c.open_time_ms[i] / 1000.0 + VOLUME_SEC
        for _, batch in (x for x in builder.candle_events(i, c) if x[0] <= t_cut):
            vol += sum(float(ev.size.sum()) for ev in batch if isinstance(ev, TradeBatch))
        return vol

    base = sum(early(candles, i) for i in idx.tolist())
    doubled = sum(early(_with(candles, i, volume=2 * candles.volume[i]), i) for i in idx.tolist())
    return doubled / base if base > 0 else math.nan


def run_probes(rec: Recording, builder_long: SyntheticMarketBuilder, long_candles: Candles, samples: int = 24,
               seed: int = 7) -> ProbeResult:
    """The real reversal on ``rec``; the synthetic probes on ``long_candles`` (many minutes of the symbol), the
    perturbation probes on ``samples`` of them drawn with ``seed``."""
    rc, se = reversal_real(rec)
    rs = reversal_synthetic(builder_long, long_candles)
    rng = np.random.default_rng(seed)
    pool = np.arange(1, len(long_candles))
    idx = np.sort(rng.choice(pool, size=min(samples, len(pool)), replace=False))
    probes, share, ev_share = perturb_probe(builder_long, long_candles, idx)
    vr = volume_probe(builder_long, long_candles, idx)
    return ProbeResult(rc, se, rs, len(long_candles), probes, share, ev_share, vr)
