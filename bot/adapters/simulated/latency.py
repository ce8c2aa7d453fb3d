"""Latency models: the two timed legs between the bot and the matching engine (STYLE.md §1, hftbacktest).

A request reaches the matching engine after an *entry* latency (``amend``/``cancel`` have their own); whatever the
engine produced (the REST answer and the private events) reaches the bot after a *response* latency. Every draw
comes from a seeded generator, so a run is reproducible draw for draw.
"""

from __future__ import annotations

import math
import random
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LatencyModel(Protocol):
    """Seconds for each leg; each call is one draw."""

    def entry(self) -> float: ...
    def response(self) -> float: ...
    def amend(self) -> float: ...
    def cancel(self) -> float: ...


class ConstantLatency:
    """Fixed legs (milliseconds in, seconds out); the model for scripted tests."""

    def __init__(self, entry_ms: float = 0.0, response_ms: float = 0.0, amend_ms: float | None = None,
                 cancel_ms: float | None = None) -> None:
        for name, v in (("entry_ms", entry_ms), ("response_ms", response_ms), ("amend_ms", amend_ms),
                        ("cancel_ms", cancel_ms)):
            if v is not None and v < 0:
                raise ValueError(f"ConstantLatency: {name} must be >= 0, got {v}")
        self._entry = entry_ms / 1e3
        self._response = response_ms / 1e3
        self._amend = (entry_ms if amend_ms is None else amend_ms) / 1e3
        self._cancel = (entry_ms if cancel_ms is None else cancel_ms) / 1e3

    def entry(self) -> float:
        return self._entry

    def response(self) -> float:
        return self._response

    def amend(self) -> float:
        return self._amend

    def cancel(self) -> float:
        return self._cancel


class LogNormalLatency:
    """Each leg ~ median·exp(sigma·N(0,1)): right-skewed like real round trips, never negative.

    One ``random.Random`` feeds all legs, so the sequence of draws (and therefore every race between a cancel and
    a fill) is fixed by the seed and the order of requests.
    """

    def __init__(self, median_ms: float, sigma: float, rng: random.Random, *, response_ms: float | None = None,
                 amend_ms: float | None = None, cancel_ms: float | None = None) -> None:
        """``median_ms`` is the entry leg's median; the other legs default to it."""
        legs = {"entry": median_ms, "response": median_ms if response_ms is None else response_ms,
                "amend": median_ms if amend_ms is None else amend_ms,
                "cancel": median_ms if cancel_ms is None else cancel_ms}
        if min(legs.values()) < 0 or sigma < 0:
            raise ValueError(f"LogNormalLatency: medians and sigma must be >= 0, got {legs}, sigma={sigma}")
        self._med = {k: v / 1e3 for k, v in legs.items()}
        self._sigma = sigma
        self._rng = rng

    def _draw(self, leg: str) -> float:
        return self._med[leg] * math.exp(self._sigma * self._rng.gauss(0.0, 1.0))

    def entry(self) -> float:
        return self._draw("entry")

    def response(self) -> float:
        return self._draw("response")

    def amend(self) -> float:
        return self._draw("amend")

    def cancel(self) -> float:
        return self._draw("cancel")


def latency_from_settings(backtest: Any, seed: int) -> LatencyModel:
    """Build the model named by ``settings.backtest.latency_model`` ("constant" | "lognormal")."""
    kind = backtest.latency_model
    e, r = float(backtest.latency_entry_ms), float(backtest.latency_response_ms)
    a, c = float(backtest.latency_amend_ms), float(backtest.latency_cancel_ms)
    if kind == "constant":
        return ConstantLatency(e, r, a, c)
    if kind == "lognormal":
        return LogNormalLatency(e, float(backtest.latency_sigma), random.Random(seed), response_ms=r, amend_ms=a,
                                cancel_ms=c)
    raise ValueError(f"unknown backtest.latency_model {kind!r}: expected 'constant' or 'lognormal'")
