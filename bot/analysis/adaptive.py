"""Volatility-adaptive analysis windows (STRATEGY.md §5.2), shared by both analyzers.

Pure functions of (base window, σ = std% of this evaluation) so the same σ scales every window of one evaluation the
same way, and so the rule can be tested without any market data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AdaptParams:
    """The ``adaptive`` settings section, copied once so hot paths do plain attribute reads."""

    enabled: bool = True
    base_volatility_threshold: float = 1.0
    low_volatility_multiplier: float = 1.5
    high_volatility_multiplier: float = 0.7
    max_window_expansion: float = 2.0
    min_window_reduction: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> AdaptParams:
        a = settings.adaptive
        return cls(
            enabled=bool(a.enable_adaptive_windows),
            base_volatility_threshold=float(a.base_volatility_threshold),
            low_volatility_multiplier=float(a.low_volatility_multiplier),
            high_volatility_multiplier=float(a.high_volatility_multiplier),
            max_window_expansion=float(a.max_window_expansion),
            min_window_reduction=float(a.min_window_reduction),
        )


def window_multiplier(sigma: float, p: AdaptParams) -> float:
    """m of §5.2: calm markets widen the windows (more data per estimate), hectic ones shorten them."""
    if not p.enabled:
        return 1.0
    if sigma <= 0.7 * p.base_volatility_threshold:
        return p.low_volatility_multiplier
    if sigma >= 2.0 * p.base_volatility_threshold:
        return p.high_volatility_multiplier
    return 1.0


def adapt(w: float, sigma: float, p: AdaptParams) -> float:
    """adapt(w, σ) = clamp(w·m, min_window_reduction·w, max_window_expansion·w)."""
    m = window_multiplier(sigma, p)
    return adapt_with(w, m, p)


def adapt_with(w: float, m: float, p: AdaptParams) -> float:
    """adapt() with the multiplier already known (one multiplier per evaluation, many windows)."""
    x = w * m
    lo = p.min_window_reduction * w
    hi = p.max_window_expansion * w
    return lo if x < lo else hi if x > hi else x
