"""Reconnect delays as a small pure generator (STYLE.md §4: websockets' ``backoff``), with an injected RNG.

STRATEGY.md §2.10: the k-th retry waits ``min(delay·2^(k−1), max)``; retries never stop. Jitter spreads the
reconnects of many clients after a venue-wide drop, so each delay is scaled by a factor in ``[1 − jitter, 1]``
(never above the cap, never below ``(1 − jitter)·delay``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays"]


def backoff_delays(initial: float, maximum: float, *, jitter: float = 0.2,
                   rng: random.Random | None = None) -> Iterator[float]:
    """Endless delays: ``min(initial·2^(k−1), maximum)`` for k = 1, 2, ... each scaled by ``1 − jitter·U[0, 1)``."""
    if initial <= 0 or maximum < initial or not 0.0 <= jitter < 1.0:
        raise ValueError(f"backoff needs 0 < initial <= maximum and 0 <= jitter < 1, got {initial}, {maximum}, "
                         f"{jitter}")
    r = rng if rng is not None else random.Random()
    base = initial
    while True:
        yield base * (1.0 - jitter * r.random())
        base = min(base * 2.0, maximum)
