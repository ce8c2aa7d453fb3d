"""Causal per-candle scales of the synthetic market: what the generator knows about the symbol at candle i.

The book, the trade sizes and the per-second volume schedule need symbol scales (typical volume per minute → depth,
mean fill size and expected volume; typical 1m range → the size of a 1 s move; price and tick → level density). Measured
over the whole window they would let minute 5 depend on day 29, so every scale of candle i comes from candles 0 … i−1
only (candle 0 uses itself):

- typical volume v̄_i: bias-corrected EWMA of the volume of candles < i (half-life ``scale_halflife_min`` candles; the
  bias correction makes it the plain expanding mean while i ≪ half-life); its notional uses candle i's open price
  (known at i's start);
- recent volume: the same EWMA with a half-life of ``recent_halflife_min`` (2) candles, the causal expectation of
  this candle's volume that paces its first seconds (minute volumes cluster: on 30 days of BTCUSDT the median
  |log(volume / EWMA)| is 0.60 at a 2-candle half-life, 0.89 at 240);
- typical range r̃_i: exp(EWMA of log(1 + range in ticks)) − 1 over candles < i, a causal robust stand-in for the
  median 1m range;
- level-1 notional, depth density per bps and mean fill notional: the fitted power laws of the typical notional volume
  (``GeneratorParams.*_at``), converted to qty steps at the open price;
- level density q = min(1, tick_bps / level_gap_bps) at the open of the candle that starts the current snapshot segment
  (UTC day, gap or run start), so the level lattice is static between snapshots; a deep level's median size is the
  depth density times the mean level spacing in bps (coarse-tick symbols: one tick, hence long queues).

The EWMA is a sequential recursion (``itertools.accumulate``), so value i depends only on its prefix: a run truncated
after candle c has bit-identical scales for candles ≤ c. ``SymbolProfile`` (profile.py) is a whole-window summary for
reports only; the generator never reads it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bot.instruments import Instrument
from replay.synthetic.candles import Candles, snapshot_flags
from replay.synthetic.params import GeneratorParams


def lagged_ewma(x: np.ndarray, halflife: float, prior: float | None = None) -> np.ndarray:
    """y_0 = x_0; y_i = Σ_{j<i} w^{i−1−j} x_j / Σ_{j<i} w^{i−1−j} with w = 2^(−1/halflife).

    With a ``prior`` the series is taken to have a long history at that value: y_0 = prior and
    y_i = w·y_{i−1} + (1 − w)·x_{i−1}.
    """
    n = len(x)
    out = np.empty(n)
    if n == 0:
        return out
    w = 0.5 ** (1.0 / halflife)
    if prior is not None:
        s = np.fromiter(itertools.accumulate(x[:-1].tolist(), lambda a, b: a * w + (1.0 - w) * b,
                                             initial=float(prior)), float, n)
        out[:] = s
        return out
    s = np.fromiter(itertools.accumulate(x.tolist(), lambda a, b: a * w + b), float, n)
    norm = (1.0 - w ** np.arange(1, n + 1, dtype=float)) / (1.0 - w)
    out[0] = x[0]
    out[1:] = s[:-1] / norm[:-1]
    return out


@dataclass(frozen=True)
class ScalePrior:
    """A history the window does not contain (e.g. a short recording): typical volume per minute (base coin) and
    typical 1m range (ticks), as if seen for a long time before the first candle. Replay runs use none."""

    volume: float
    range_ticks: float


@dataclass(frozen=True)
class CausalScales:
    """Per-candle scales (N,), each a function of candles ≤ i (see module docstring)."""

    mean_volume: np.ndarray  # v̄_i, base coin per minute
    recent_volume: np.ndarray  # short-half-life EWMA of the volume of candles < i (paces the volume schedule)
    range_ticks: np.ndarray  # r̃_i
    touch_units: np.ndarray  # median level-1 size in qty steps (≥ 1)
    deep_units: np.ndarray  # median size of a deeper level in qty steps (≥ 1)
    fill_units: np.ndarray  # mean fill size in qty steps at the typical volume (≥ 1)
    presence_q: np.ndarray  # level density of the candle's snapshot segment
    segment_start: np.ndarray  # index of the candle that opened the candle's snapshot segment

    def as_dict(self, i: int) -> dict[str, float]:
        return {"mean_volume_per_min": float(self.mean_volume[i]), "range_ticks": float(self.range_ticks[i]),
                "touch_units": float(self.touch_units[i]), "deep_units": float(self.deep_units[i]),
                "fill_units": float(self.fill_units[i]), "presence_q": float(self.presence_q[i])}


def causal_scales(candles: Candles, instrument: Instrument, params: GeneratorParams,
                  prior: ScalePrior | None = None) -> CausalScales:
    tick, step = instrument.tick, instrument.step
    hl = params.scale_halflife_min
    price = np.asarray(candles.open, float)
    v_in = np.asarray(candles.volume, float)
    vol = lagged_ewma(v_in, hl, None if prior is None else prior.volume)
    recent = lagged_ewma(v_in, params.recent_halflife_min, None if prior is None else prior.volume)
    rng = np.maximum(np.asarray(candles.high, float) - candles.low, 0.0) / tick
    r = np.expm1(lagged_ewma(np.log1p(rng), hl, None if prior is None else float(np.log1p(prior.range_ticks))))
    notional = vol * price
    unit_notional = price * step
    snap = snapshot_flags(candles.open_time_ms)
    idx = np.arange(len(candles))
    seg = np.maximum.accumulate(np.where(snap, idx, 0)) if len(candles) else idx
    gap = params.level_gap_bps
    tick_bps = tick / price * 1e4
    q = np.minimum(1.0, tick_bps[seg] / gap)
    if not (np.isfinite(q).all() and (q > 0).all() and np.isfinite(notional).all()):
        raise ValueError(f"{candles.symbol}: causal scales not finite/positive (check prices and volumes)")
    touch = params.touch_notional_at(notional) / unit_notional
    density = params.depth_density_at(notional)
    deep = density * np.maximum(tick_bps, gap) / unit_notional
    fill = params.fill_notional_at(notional) / unit_notional
    return CausalScales(mean_volume=vol, recent_volume=recent, range_ticks=r, touch_units=np.maximum(1.0, touch),
                        deep_units=np.maximum(1.0, deep), fill_units=np.maximum(1.0, fill), presence_q=q,
                        segment_start=seg)
