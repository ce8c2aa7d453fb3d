"""Analysis layer (STRATEGY.md §4–§6): the two analyzers and the SignalGenerator, plus the §10 step-2 sequence.

:func:`evaluate` is the one place that orders the calls (volume first, so the imbalance analyzer gets *this*
evaluation's σ), shared by the orchestrator and the benchmark so both measure and run the same thing.
"""

from __future__ import annotations

from typing import Any

from bot.analysis.adaptive import AdaptParams, adapt
from bot.analysis.imbalance import ImbalanceAnalyzer
from bot.analysis.results import (
    BayesianBelief,
    ClusterStats,
    Confirmation,
    DepthStats,
    FrequencyStats,
    ImbalanceResult,
    LargeOrderFlow,
    TapeStats,
    VolumeResult,
)
from bot.analysis.signals import BUY, HOLD, SELL, Signal, SignalGenerator
from bot.analysis.volume import VolumeAnalyzer

__all__ = [
    "BUY",
    "HOLD",
    "SELL",
    "AdaptParams",
    "BayesianBelief",
    "ClusterStats",
    "Confirmation",
    "DepthStats",
    "FrequencyStats",
    "ImbalanceAnalyzer",
    "ImbalanceResult",
    "LargeOrderFlow",
    "Signal",
    "SignalGenerator",
    "TapeStats",
    "VolumeAnalyzer",
    "VolumeResult",
    "adapt",
    "evaluate",
]


def evaluate(
    sym: str,
    now: float,
    storage: Any,
    vol_an: VolumeAnalyzer,
    imb_an: ImbalanceAnalyzer,
    sig_gen: SignalGenerator,
) -> Signal:
    """§10 step 2 for one symbol: vol → imb(σ = vol.recent_volatility) → spread → signal.

    With an invalid or stale book no analyzer runs and no state changes (§10 step 1); the HOLD insufficient_data
    signal returned then is for the caller to log or drop.
    """
    if not storage.book_valid(sym, now):
        return sig_gen.insufficient(sym, now)
    vol = vol_an.compute(sym, now)
    imb = imb_an.compute(sym, now, vol.recent_volatility, vol_an.trades_fed(sym))
    return sig_gen.generate(sym, now, imb, vol, storage.spread_bps(sym), book_valid=imb.valid)
