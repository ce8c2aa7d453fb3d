"""Exponential backoff with jitter, as a generator of delays (websockets' ``backoff`` shape).

Delay ``k`` (1-based) is ``min(base·2^(k−1), cap)`` scaled by a jitter factor drawn in [0.5, 1.0] from the injected
RNG: never below half the nominal step (the configured minimum still spaces attempts), never above the cap, and two
bots restarted together do not reconnect in lockstep. The generator never ends: retries never stop (§2.10).
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def backoff_delays(base: float, cap: float, rng: random.Random | None = None) -> Iterator[float]:
    r = rng or random.Random()
    k = 0
    while True:
        nominal = min(base * 2.0 ** k, cap)
        if nominal < cap:
            k += 1
        yield nominal * (0.5 + 0.5 * r.random())
