"""A whole-window summary of a symbol's candles, for REPORTS only (no per-symbol constants).

The generator never reads it: a whole-window scale would let minute 5 depend on day 29 (look-ahead). The generator's
scales are causal per-candle arrays (scales.py) that ``SyntheticMarketBuilder`` measures from the candles it is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bot.instruments import Instrument
from replay.synthetic.candles import Candles

TREND_WINDOW = 15  # candles per window of the trending/flat classification
TREND_EFFICIENCY = 0.5  # |net move| / window range at or above this → the window is "trending"


@dataclass(frozen=True)
class SymbolProfile:
    """Per-symbol summary over the whole window (report-facing; not an input of the generator).

    volatility_pct: median 1m range (high−low)/low in %; mean_volume_per_min: mean candle volume (base coin);
    median_price: median close; spread_bps: estimated modal spread (bps), at least one tick at the median price;
    trend_share: share of TREND_WINDOW-candle windows whose net move is ≥ TREND_EFFICIENCY of their range
    (the generator's extremes order uses each candle's own shape).
    """

    symbol: str
    volatility_pct: float
    mean_volume_per_min: float
    median_price: float
    spread_bps: float
    trend_share: float

    def spread_ticks(self, tick: float) -> int:
        """Modal spread on the tick grid (≥ 1)."""
        return max(1, round(self.spread_bps * self.median_price / 1e4 / tick))

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def profile_from_candles(candles: Candles, instrument: Instrument) -> SymbolProfile:
    """Measure a profile from candles. The spread is the generator's modal spread: one tick, as on the liquid perps
    the L2 recordings cover (``spread_ticks_pmf``)."""
    if len(candles) == 0:
        raise ValueError(f"profile_from_candles({candles.symbol}): no candles")
    h, lo, c = candles.high, candles.low, candles.close
    med_price = float(np.median(c))
    vol_pct = float(np.median((h - lo) / lo) * 100.0)
    tick = instrument.tick
    spread_ticks = 1
    n_win = len(candles) // TREND_WINDOW
    if n_win:
        m = n_win * TREND_WINDOW
        net = np.abs(c[:m].reshape(-1, TREND_WINDOW)[:, -1] - candles.open[:m].reshape(-1, TREND_WINDOW)[:, 0])
        rng = h[:m].reshape(-1, TREND_WINDOW).max(1) - lo[:m].reshape(-1, TREND_WINDOW).min(1)
        trend = float(np.mean(net >= TREND_EFFICIENCY * np.where(rng > 0, rng, np.inf)))
    else:
        trend = 0.0
    return SymbolProfile(
        symbol=candles.symbol,
        volatility_pct=vol_pct,
        mean_volume_per_min=float(np.mean(candles.volume)),
        median_price=med_price,
        spread_bps=spread_ticks * tick / med_price * 1e4,
        trend_share=trend,
    )
