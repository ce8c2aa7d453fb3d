"""Generator coefficients: fitted defaults (``defaults.json``) plus a few design choices, adjustable by calibration.

Every fitted value is in ``defaults.json`` with its unit, sources and method (written by ``python -m calibration
fit-defaults``). Volume scales are notional (USDT) per minute; ``VOLUME_REF`` only makes the level coefficients
readable (the value at 1M USDT/min).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

DEFAULTS_PATH = Path(__file__).resolve().parent / "defaults.json"
VOLUME_REF = 1e6
"""USDT per minute at which the level coefficients (``*_coef``) are stated."""

_TUPLES = ("spread_ticks_pmf", "buy_prob_by_move")
_INTS = ("imbalance_levels",)


@dataclass(frozen=True)
class GeneratorParams:
    """All coefficients of the synthetic market (see the modules that use them for the model)."""

    # trade flow (flow.py): one trade per maker fill
    fill_notional_coef: float  # mean fill notional (USDT) at VOLUME_REF USDT/min of typical volume
    fill_notional_elasticity: float  # d log(mean fill notional) / d log(typical volume), across symbols
    fill_rate_elasticity: float  # d log(mean fill notional) / d log(local volume rate), within a symbol
    fill_log_sigma: float  # σ of log(fill notional) in the lognormal body
    large_fill_share: float  # share of fills drawn from the Pareto tail
    large_fill_mult: float  # tail threshold as a multiple of the body median
    large_fill_alpha: float  # Pareto tail index
    single_fill_share: float  # P(an aggressor order is one fill)
    multi_fill_mean: float  # mean fill count of the orders with ≥ 2 fills
    activity_shape: float  # gamma shape of the per-second activity (burstiness of the order arrivals)
    activity_move_coef: float  # extra activity per unit of |1 s move| / typical 1 s move
    buy_prob_by_move: tuple[float, float, float]  # P(order buys) in a second whose price went down / flat / up
    buy_trend_coef: float  # logit shift per unit of (price − candle open) / typical 1m range
    # book (book.py)
    spread_ticks_pmf: tuple[float, ...]  # P(spread = j ticks), j = 1..
    touch_fill_multiple: float  # median level-1 notional / mean fill notional (the touch holds typical fills)
    touch_size_log_sigma: float
    depth_density_coef: float  # median notional per bps of distance beyond the touch, at VOLUME_REF
    depth_density_elasticity: float
    depth_size_log_sigma: float
    level_gap_bps: float  # mean distance between consecutive levels where the tick is finer than this
    imbalance_std: float
    imbalance_momentum_coef: float
    # design
    volume_blend_power: float = 2.0  # weight (t/60)^p of the candle's own volume in the per-second schedule
    imbalance_levels: int = 3  # top ranks per side carrying the causal imbalance factor
    level_refresh_s: float = 300.0  # each deep level's size is redrawn once per this period (staggered per price)
    depth_log_clip: float = 2.5  # |z| cap of the lognormal size noise
    max_large_mult: float = 50.0  # cap of a tail fill over the tail threshold (real p99.9 ≈ 30× on Binance BTC)
    scale_halflife_min: float = 240.0  # half-life (candles) of the causal volume/range scales (scales.py)
    recent_halflife_min: float = 2.0  # half-life (candles) of the recent volume that paces a candle's first seconds

    def __post_init__(self) -> None:
        for name in ("fill_notional_coef", "large_fill_mult", "large_fill_alpha", "multi_fill_mean",
                     "activity_shape", "touch_fill_multiple", "depth_density_coef", "level_gap_bps",
                     "level_refresh_s", "scale_halflife_min", "recent_halflife_min", "volume_blend_power"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"GeneratorParams.{name} must be finite and > 0, got {v}")
        for name in ("fill_log_sigma", "touch_size_log_sigma", "depth_size_log_sigma", "imbalance_std",
                     "activity_move_coef"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"GeneratorParams.{name} must be finite and >= 0, got {v}")
        for name in ("large_fill_share", "single_fill_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"GeneratorParams.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.multi_fill_mean < 2:
            raise ValueError(f"GeneratorParams.multi_fill_mean must be >= 2, got {self.multi_fill_mean}")
        if len(self.buy_prob_by_move) != 3 or not all(0 < p < 1 for p in self.buy_prob_by_move):
            raise ValueError(f"buy_prob_by_move must be three probabilities in (0, 1): {self.buy_prob_by_move}")
        pmf = self.spread_ticks_pmf
        if len(pmf) == 0 or min(pmf) < 0 or sum(pmf) <= 0:
            raise ValueError(f"spread_ticks_pmf must be non-negative with a positive sum: {pmf}")
        if self.imbalance_levels < 1:
            raise ValueError("imbalance_levels must be >= 1")

    # ---------------------------------------------------------------------------------------------- derived
    @property
    def mean_fills_per_order(self) -> float:
        return self.single_fill_share + (1.0 - self.single_fill_share) * self.multi_fill_mean

    @property
    def fill_notional_mean_factor(self) -> float:
        """E[fill] / body median for the body/tail mixture: the lognormal body capped at the tail threshold, the
        Pareto tail capped at ``max_large_mult`` times it."""
        s, a, m, cap = self.fill_log_sigma, self.large_fill_alpha, self.large_fill_mult, self.max_large_mult
        lm = math.log(m)
        # E[min(e^{sZ}, m)]
        body = math.exp(s * s / 2) * _phi((lm - s * s) / s) + m * (1 - _phi(lm / s)) if s > 0 else min(1.0, m)
        # E[min(X, cap)] for X Pareto(α) on [1, ∞), α ≠ 1
        tail = (a - cap ** (1 - a)) / (a - 1) if abs(a - 1) > 1e-9 else 1 + math.log(cap)
        return (1 - self.large_fill_share) * body + self.large_fill_share * m * tail

    def fill_notional_at(self, volume_notional: ArrayLike) -> np.ndarray:
        """Mean fill notional (USDT) for a typical volume of ``volume_notional`` USDT/min."""
        return self.fill_notional_coef * _rel(volume_notional) ** self.fill_notional_elasticity

    def touch_notional_at(self, volume_notional: ArrayLike) -> np.ndarray:
        """Median level-1 notional (USDT) per side: a fitted multiple of the mean fill at that volume."""
        return self.touch_fill_multiple * self.fill_notional_at(volume_notional)

    def depth_density_at(self, volume_notional: ArrayLike) -> np.ndarray:
        """Median notional per bps of distance from the touch, beyond level 1."""
        return self.depth_density_coef * _rel(volume_notional) ** self.depth_density_elasticity

    @property
    def imbalance_log_sigma(self) -> float:
        """σ of the log factor on the top ranks that reproduces the fitted imbalance std to first order:
        with a share f of a side's top-50 notional in the modulated ranks, (B−A)/(B+A) ≈ f·tanh(ρ/2)."""
        return 2.0 * math.atanh(min(0.9, self.imbalance_std / self.modulated_depth_share))

    @property
    def modulated_depth_share(self) -> float:
        """Rough share of a side's top-50 notional in the modulated ranks (level 1 ≈ a third of it on real books)."""
        return min(0.9, 0.35 + 0.02 * (self.imbalance_levels - 1))

    # ------------------------------------------------------------------------------------------------- load
    @classmethod
    def load_defaults(cls, path: Path = DEFAULTS_PATH) -> GeneratorParams:
        return _load(path)

    @classmethod
    def fitted_names(cls) -> list[str]:
        """The coefficients that have no design default: the ones a fit must provide."""
        return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]

    @classmethod
    def from_fitted(cls, fitted: Mapping[str, Any]) -> GeneratorParams:
        """Build from the ``{"name": {"value": ...}}`` mapping of defaults.json (extra keys are information)."""
        vals: dict[str, Any] = {}
        for f in fields(cls):
            entry = fitted.get(f.name)
            if entry is None:
                continue
            vals[f.name] = _coerce(f.name, entry["value"] if isinstance(entry, Mapping) else entry)
        missing = [n for n in cls.fitted_names() if n not in vals]
        if missing:
            raise ValueError(f"generator defaults: missing fitted values {missing} (re-run python -m calibration "
                             "fit-defaults)")
        return cls(**vals)

    # ------------------------------------------------------------------------------------------ calibration
    def calibrate_from_ws_stats(self, stats: Mapping[str, Any]) -> GeneratorParams:
        """A copy with the given coefficients replaced (a calibration file's ``generator`` block or a fit).

        Keys are field names of this class; keys starting with ``_`` are metadata and skipped; an unknown key raises
        (a typo is never silently ignored); values go through the same validation as the defaults. A whole
        calibration file (``calibration.json`` or ``calibration fit``'s output) is read through its ``generator``
        block.
        """
        if isinstance(stats.get("generator"), Mapping):
            stats = stats["generator"]
        names = {f.name for f in fields(self)}
        upd: dict[str, Any] = {}
        for key, val in stats.items():
            if key.startswith("_"):
                continue
            if key not in names:
                raise ValueError(f"calibrate_from_ws_stats: unknown key {key!r}; known: {sorted(names)}")
            upd[key] = _coerce(key, val["value"] if isinstance(val, Mapping) else val)
        return replace(self, **upd)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _rel(volume_notional: ArrayLike) -> np.ndarray:
    return np.maximum(np.asarray(volume_notional, float), 1e-9) / VOLUME_REF


def _coerce(name: str, val: Any) -> Any:
    if name in _TUPLES:
        seq = tuple(float(x) for x in val)
        if name == "spread_ticks_pmf" and sum(seq) > 0:
            seq = tuple(x / sum(seq) for x in seq)
        return seq
    if name in _INTS:
        return int(val)
    fv = float(val)
    if not math.isfinite(fv):
        raise ValueError(f"generator coefficient {name}={val!r} is not finite")
    return fv


@lru_cache(maxsize=4)
def _load(path: Path) -> GeneratorParams:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: generator defaults missing; run python -m calibration fit-defaults") \
            from None
    return GeneratorParams.from_fitted(data)
