"""The exchange's own copy of one symbol's order book, kept from the market events it receives.

Prices are stored as integer ticks (``round(price / tickSize)``), so a feed price like ``60000.100000000006`` and an
order price ``Decimal('60000.1')`` meet on the same key. Only the top levels are kept (the feed is depth-50); a
level beyond them is trimmed lazily when the dict grows, which keeps a delta O(levels in the delta).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.events import Level, as_levels

KEEP_LEVELS = 50
_TRIM_AT = 4 * KEEP_LEVELS


_CACHE_MAX = 1 << 16
"""Feed prices remembered with their ticks (cleared when full: a few MB at most)."""


def _tick_of(keys: dict[float, int], p: float, inv: float) -> int:
    """``round(p · inv)``, remembered in ``keys`` (cleared when full: a few MB at most). A feed repeats the same few
    thousand price floats, so a delta level costs a dict lookup instead of a multiply and a ``round`` call. ``keys`` is
    a plain dict, not a subclass with ``__missing__``: CPython looks up a dict subclass's ``[]`` through a slot wrapper
    at several times the cost of the plain dict's specialised subscript, so a miss is caught as a ``KeyError``."""
    if len(keys) >= _CACHE_MAX:
        keys.clear()
    k = keys[p] = round(p * inv)
    return k


class SimBook:
    __slots__ = ("_keys", "asks", "bids", "inv_tick")

    def __init__(self, tick: float) -> None:
        self.inv_tick = 1.0 / tick
        self._keys: dict[float, int] = {}  # feed price -> ticks (see _tick_of)
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}

    def ticks(self, price: float) -> int:
        return round(price * self.inv_tick)

    def snapshot(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        inv = self.inv_tick
        self.bids = {round(p * inv): s for p, s in bids if s > 0}
        self.asks = {round(p * inv): s for p, s in asks if s > 0}
        self._trim()

    def delta(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        keys = self._keys
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            if levels.__class__ is not list:
                levels = as_levels(levels)  # type: ignore[arg-type]
            pop = side.pop
            # s > 0.0, not s > 0: the same truth for every size, but a float-float compare CPython specialises
            for p, s in levels:
                try:
                    k = keys[p]
                except KeyError:
                    k = _tick_of(keys, p, self.inv_tick)
                if s > 0.0:
                    side[k] = s
                else:
                    pop(k, None)
        if len(self.bids) > _TRIM_AT or len(self.asks) > _TRIM_AT:
            self._trim()

    def _trim(self) -> None:
        if len(self.bids) > KEEP_LEVELS:
            self.bids = {k: self.bids[k] for k in sorted(self.bids, reverse=True)[:KEEP_LEVELS]}
        if len(self.asks) > KEEP_LEVELS:
            self.asks = {k: self.asks[k] for k in sorted(self.asks)[:KEEP_LEVELS]}

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None

    def size_at(self, is_bid: bool, ticks: int) -> float:
        return (self.bids if is_bid else self.asks).get(ticks, 0.0)

    def levels_to_take(self, buy: bool, limit: int | None) -> list[tuple[int, float]]:
        """Opposite-side levels a taker ``buy``/sell may consume, best first, not beyond ``limit`` ticks."""
        if buy:
            keys = sorted(k for k in self.asks if limit is None or k <= limit)
            return [(k, self.asks[k]) for k in keys]
        keys = sorted((k for k in self.bids if limit is None or k >= limit), reverse=True)
        return [(k, self.bids[k]) for k in keys]

    def consume(self, buy: bool, ticks: int, size: float) -> None:
        """Our taker fill removed ``size`` from a level; the next delta for that level overrides it."""
        side = self.asks if buy else self.bids
        left = side.get(ticks, 0.0) - size
        if left > 1e-12:
            side[ticks] = left
        else:
            side.pop(ticks, None)
