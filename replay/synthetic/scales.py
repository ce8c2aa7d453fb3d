"""Causal per-candle scales of the synthetic market: what the generator knows about the symbol at candle i.

The book and the print counts need a symbol scale (typical 1m range → modal spread, typical volume per minute →
touch and deep sizes and the print-count reference, price → level density). Measuring them over the whole candle
window would let minute 5 depend on day 29, so every scale of candle i is measured from candles 0 … i−1 only
(candle 0 uses itself):

- typical volume v̄_i: bias-corrected EWMA of the volume of candles < i (half-life ``scale_halflife_min`` candles;
  the bias correction makes it the plain expanding mean while i ≪ half-life, then an exponential average);
- typical range r̃_i: exp(EWMA of log(1 + range in ticks)) − 1 over candles < i — a causal robust stand-in for the
  median 1m range (for lognormal ranges exp(mean log) is the median; the +1 keeps flat minutes finite);
- level density q: from the open price of the candle that starts the current snapshot segment (UTC day, gap or run
  start), so the lattice is static between snapshots.

The EWMA is a sequential recursion (``itertools.accumulate``), so value i depends only on its prefix: a run truncated
after candle c has bit-identical scales for candles ≤ c (``test_truncation_invariance``).
``SymbolProfile`` (profile.py) remains a whole-window summary for reports only; the generator never reads it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from bot.instruments import Instrument
from replay.synthetic.candles import Candles, snapshot_flags
from replay.synthetic.params import GeneratorParams


def lagged_ewma(x: np.ndarray, halflife: float) -> np.ndarray:
    """y_0 = x_0; y_i = Σ_{j<i} w^{i−1−j} x_j / Σ_{j<i} w^{i−1−j} with w = 2^(−1/halflife)."""
    n = len(x)
    out = np.empty(n)
    if n == 0:
        return out
    w = 0.5 ** (1.0 / halflife)
    s = np.fromiter(itertools.accumulate(x.tolist(), lambda a, b: a * w + b), float, n)
    norm = (1.0 - w ** np.arange(1, n + 1, dtype=float)) / (1.0 - w)
    out[0] = x[0]
    out[1:] = s[:-1] / norm[:-1]
    return out


@dataclass(frozen=True)
class CausalScales:
    """Per-candle scales (N,), each a function of candles ≤ i (see module docstring)."""

    mean_volume: np.ndarray  # v̄_i, base coin per minute
    range_ticks: np.ndarray  # r̃_i
    spread_ticks: np.ndarray  # int64 ≥ 1: modal spread = max(1, round(spread_range_ratio · r̃_i))
    touch_units: np.ndarray  # level-1 size scale in qty steps (≥ 1)
    deep_units: np.ndarray  # ranks ≥ 2 size scale in qty steps (≥ 1)
    presence_q: np.ndarray  # level density of the candle's snapshot segment
    segment_start: np.ndarray  # index of the candle that opened the candle's snapshot segment

    def as_dict(self, i: int) -> dict[str, float]:
        return {"mean_volume_per_min": float(self.mean_volume[i]), "range_ticks": float(self.range_ticks[i]),
                "spread_ticks": int(self.spread_ticks[i]), "touch_units": float(self.touch_units[i]),
                "deep_units": float(self.deep_units[i]), "presence_q": float(self.presence_q[i])}


def causal_scales(candles: Candles, instrument: Instrument, params: GeneratorParams) -> CausalScales:
    tick, step = instrument.tick, instrument.step
    hl = params.scale_halflife_min
    vol = lagged_ewma(np.asarray(candles.volume, float), hl)
    rng = np.maximum(np.asarray(candles.high, float) - candles.low, 0.0) / tick
    r = np.expm1(lagged_ewma(np.log1p(rng), hl))
    spread = np.maximum(1, np.rint(params.spread_range_ratio * r)).astype(np.int64)
    touch = params.level1_size_per_minute_volume * vol / step
    snap = snapshot_flags(candles.open_time_ms)
    idx = np.arange(len(candles))
    seg = np.maximum.accumulate(np.where(snap, idx, 0)) if len(candles) else idx
    gap = params.level_gap_bps
    q = np.minimum(1.0, tick / np.asarray(candles.open, float)[seg] * 1e4 / gap)
    if not (np.isfinite(q).all() and (q > 0).all() and math.isfinite(gap)):
        raise ValueError(f"{candles.symbol}: level density not finite/positive (check prices and level_gap_bps)")
    return CausalScales(mean_volume=vol, range_ticks=r, spread_ticks=spread, touch_units=np.maximum(1.0, touch),
                        deep_units=np.maximum(1.0, touch * params.deep_level_rel), presence_q=q, segment_start=seg)
