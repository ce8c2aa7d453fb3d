"""Result types of the analyzers (STRATEGY.md §4 and §5 outputs).

Frozen msgspec structs: cheap to build (the replay evaluates millions of times) and immutable, so a result handed to
the SignalGenerator, the log and the RiskManager cannot be changed behind anyone's back. Categorical outputs are plain
strings (the values below) because they go straight into signals.csv.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

# §4.6 Bayesian signal
BULLISH: Final = "BULLISH"
BEARISH: Final = "BEARISH"
NEUTRAL: Final = "NEUTRAL"
BayesianSignal = Literal["BULLISH", "BEARISH", "NEUTRAL"]

# §5.6 informed direction
STRONG_BUY: Final = "STRONG_BUY"
MEDIUM_BUY: Final = "MEDIUM_BUY"
MEDIUM_SELL: Final = "MEDIUM_SELL"
STRONG_SELL: Final = "STRONG_SELL"
InformedDirection = Literal["STRONG_BUY", "MEDIUM_BUY", "NEUTRAL", "MEDIUM_SELL", "STRONG_SELL"]

# §5.7 frequency regime
VERY_HIGH: Final = "VERY_HIGH"
HIGH: Final = "HIGH"
NORMAL: Final = "NORMAL"
VERY_LOW: Final = "VERY_LOW"
UNKNOWN: Final = "UNKNOWN"
FrequencyRegime = Literal["VERY_HIGH", "HIGH", "NORMAL", "VERY_LOW", "UNKNOWN"]

# §5.8 volume confirmation
CONFIRMED: Final = "CONFIRMED"
MODERATE: Final = "MODERATE"
WEAK: Final = "WEAK"
ConfirmationStatus = Literal["CONFIRMED", "MODERATE", "WEAK", "NEUTRAL"]


class TapeStats(msgspec.Struct, frozen=True):
    """§5.4 over the adapted short window."""

    large_buys: int = 0
    large_sells: int = 0
    large_net: int = 0
    acceleration: float = 0.0
    spike: bool = False
    absorb_bull: bool = False
    absorb_bear: bool = False


class FrequencyStats(msgspec.Struct, frozen=True):
    """§5.7; ``ratio`` is None when the baseline is too thin (regime UNKNOWN)."""

    regime: str = UNKNOWN
    ratio: float | None = None
    baseline_per_min: float = 0.0
    current_per_min: float = 0.0


class Confirmation(msgspec.Struct, frozen=True):
    """§5.8; ``direction`` ∈ {−1, 0, +1} is the sign of the price move (0 when the move is too small)."""

    status: str = NEUTRAL
    direction: int = 0
    price_change_pct: float = 0.0


class LargeOrderFlow(msgspec.Struct, frozen=True):
    """§5.6; ``threshold`` is the notional above which a trade counted as large (None without enough samples)."""

    direction: str = NEUTRAL
    buy_count: int = 0
    sell_count: int = 0
    buy_notional: float = 0.0
    sell_notional: float = 0.0
    buy_ratio: float | None = None
    samples: int = 0
    threshold: float | None = None


class VolumeResult(msgspec.Struct, frozen=True):
    """Everything §5 outputs for one evaluation."""

    data_ok: bool
    short_trades_count: int
    volatility_trades_count: int
    short_window_sec: float
    momentum_windows_sec: tuple[float, ...]
    momentum_score: float
    momentum_components: tuple[float, ...]
    tape: TapeStats
    volatility: float  # range%
    recent_volatility: float  # std% (σ fed to the ImbalanceAnalyzer)
    volatility_score: float
    range_pct: float
    atr_pct: float
    std_pct: float
    volume_z: float | None
    ema_ratio: float | None
    current_volume: float
    ema_fast: float | None
    ema_slow: float | None
    bucket_count: int
    frequency: FrequencyStats
    confirmation: Confirmation
    large_orders: LargeOrderFlow


class DepthStats(msgspec.Struct, frozen=True):
    """§4.3 over the top depth_levels; ``d`` = (ratio − 0.5)·200."""

    bid_liq: float = 0.0
    ask_liq: float = 0.0
    ratio: float = 0.5
    d: float = 0.0


class ClusterStats(msgspec.Struct, frozen=True):
    """§4.7; ``poc_price`` is None with fewer than 10 trades in the look-back."""

    poc_price: float | None = None
    poc_distance_pct: float = 0.0
    trades: int = 0
    lookback_min: float = 0.0
    bin_size: float = 0.0


class BayesianBelief(msgspec.Struct, frozen=True):
    """§4.6 belief p ∈ [0, 1] and its reading."""

    p: float = 0.5
    signal: str = NEUTRAL
    confidence: float = 0.0


class ImbalanceResult(msgspec.Struct, frozen=True):
    """Everything §4 outputs for one evaluation; ``valid`` is False for the neutral no-book result."""

    valid: bool = False
    imbalance_score: float = 0.0  # I_t (smoothed)
    raw_imbalance: float = 0.0
    bid_notional: float = 0.0  # B after the spoof filter
    ask_notional: float = 0.0  # A after the spoof filter
    spoof_filtered_volume: float = 0.0
    historical_imbalance: float = 0.0
    imbalance_trend: float = 0.0
    imbalance_volatility: float = 0.0
    history_size: int = 0
    combined_imbalance: float = 0.0
    depth: DepthStats = msgspec.field(default_factory=DepthStats)
    weighted_imbalance: float = 0.0
    effective_imbalance: float = 0.0
    cluster: ClusterStats = msgspec.field(default_factory=ClusterStats)
    bayesian: BayesianBelief = msgspec.field(default_factory=BayesianBelief)


NEUTRAL_IMBALANCE: Final = ImbalanceResult()
"""What the ImbalanceAnalyzer returns without a valid book (§4: neutral zeros, state unchanged)."""
