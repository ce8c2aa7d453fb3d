"""Token buckets for order-mutating requests (STRATEGY.md §2.1: place, amend, cancel, trading-stop share them).

Time is the injected clock and waits are ``asyncio.sleep`` on the running loop, so replay spends no wall time and
the limits behave the same live and in virtual time.
"""

from __future__ import annotations

import asyncio

from bot.clock import Clock

# epoch seconds (~1.8e9) resolve to ~0.24 µs, so refills carry float dust: a wait this short counts as none
# (and a sub-µs sleep would not even move clock.now(), so waiting for it could spin)
WAIT_TOLERANCE_SEC = 1e-4


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second."""

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError(f"token bucket needs capacity > 0 and rate > 0, got {capacity}, {rate}")
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.t = now

    def _refill(self, now: float) -> None:
        if now > self.t:
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


class OrderRateLimiter:
    """Per-second and per-minute buckets; ``acquire`` waits until both have a token, then takes one from each."""

    def __init__(self, clock: Clock, per_second: int, per_minute: int) -> None:
        now = clock.now()
        self._clock = clock
        self._buckets = (TokenBucket(per_second, per_second, now), TokenBucket(per_minute, per_minute / 60.0, now))
        self._lock = asyncio.Lock()
        self.waited_sec = 0.0   # total throttling, for bot.log / metrics

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: requests leave in the order they asked
            while True:
                now = self._clock.now()
                wait = max(b.wait_time(now) for b in self._buckets)
                if wait <= WAIT_TOLERANCE_SEC:
                    for b in self._buckets:
                        b.take(now)
                    return
                self.waited_sec += wait
                await asyncio.sleep(wait)
