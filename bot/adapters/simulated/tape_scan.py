"""Which prints of a :class:`~bot.events.TradeBatch` can change the simulated exchange's state, found with numpy.

A batch holds hundreds of prints, and for a symbol with one resting order or an open position almost all of them
can change nothing: they trade above a resting buy, below a resting sell, and between the position's stop, take
profit and liquidation prices. :class:`SimExchange` runs its per-print logic (queue consumption, fills, TP/SL,
liquidation) only on the rows this module selects, in order. A row is selected when, against the state *before*
the batch's next print that changes anything:

- for the highest resting buy at ``bid`` ticks: it printed below ``bid`` (through: any aggressor), or at ``bid``
  with a Sell aggressor (it hit our side: every such print consumes queue ahead of us, so none may be skipped);
  mirrored for the lowest resting sell at ``ask``. Buys below the highest one are covered (a print below them is
  below ``bid``);
- at or beyond ``up`` or ``down``: the position's trigger prices (long: TP ≥, SL and liquidation ≤; short mirrored).

Both tests are exact or conservative: ticks are computed exactly as :class:`~bot.adapters.simulated.book.SimBook` does
(``round``, half to even), and TP/SL compare the float print with the float of the Decimal trigger, which selects
every print whose Decimal would trigger (rounding to float is monotone). A selected row that triggers nothing is
harmless: the per-print logic leaves the state untouched. After a row that did change the state (a fill, a cancel,
a trigger) the caller recomputes the selection for the rows after it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_INF = math.inf
_min = np.minimum.reduce
_max = np.maximum.reduce
SMALL_ROWS = 64
"""Up to this many rows the extremes are taken in Python."""


class Watch(NamedTuple):
    """What one symbol's state reacts to. ``bid``/``ask`` in ticks (−inf/+inf: no resting order on that side);
    ``up``/``down`` prices (+inf/−inf: nothing to trigger that way)."""

    bid: float
    ask: float
    up: float
    down: float

    @property
    def orders(self) -> bool:
        return self.bid != -_INF or self.ask != _INF


def watch_of(orders: list[tuple[int, int]], size: float, tp: float, sl: float, liq: float) -> Watch:
    """The watch for resting orders ``(sign, ticks)`` and a position of signed ``size`` with TP/SL (0: unset) and
    liquidation price ``liq``."""
    bid = max((t for s, t in orders if s > 0), default=-_INF)
    ask = min((t for s, t in orders if s < 0), default=_INF)
    up, down = _INF, -_INF
    if size > 0:
        up = tp if tp else _INF
        down = max(sl, liq)  # sl 0 = unset: liq > 0 wins
    elif size < 0:
        up = min(sl, liq) if sl else liq
        down = tp if tp else -_INF
    return Watch(float(bid), float(ask), up, down)


PRICE_LIMIT = 1e280
"""Prices within ±this have finite tick values for any tick above 1e-28 (no overflow to ±inf)."""


class Bounds(NamedTuple):
    """A watch's quiet zone, precomputed once per watch: a batch is quiet when its lowest tick value is above
    ``bid_hi`` (bid + ½), its highest below ``ask_lo`` (ask − ½) and its prices inside (``down``, ``up``).

    ``lo``/``hi``: with no resting order the tick tests hold for every finite price, so a batch whose prices lie
    strictly inside (``lo``, ``hi``) is quiet without its ticks (the caller needs no book); with an order resting
    the window is empty (``lo`` +inf)."""

    bid_hi: float
    ask_lo: float
    up: float
    down: float
    lo: float
    hi: float


def bounds_of(w: Watch) -> Bounds:
    if w.orders:
        lo, hi = _INF, -_INF
    else:  # (down, up) cut to prices whose ticks are finite: inside it, quiet() is True
        lo, hi = max(w.down, -PRICE_LIMIT), min(w.up, PRICE_LIMIT)
    return Bounds(w.bid + 0.5, w.ask - 0.5, w.up, w.down, lo, hi)


def quiet(p: np.ndarray, b: Bounds, inv_tick: float | None, tick: float) -> bool:
    """True if no row of ``p`` can be selected by the watch of ``b``: its extremes rule the whole batch out
    (x ↦ x·inv_tick and x / tick are monotone, and a tick value strictly above bid + ½ rounds above bid). Python's
    min/max of a short list beat two numpy reductions (~3 µs each) and give the same floats."""
    n = len(p)
    if not n:
        return True
    if n <= SMALL_ROWS:
        pl = p.tolist()
        lo, hi = min(pl), max(pl)
    else:
        lo, hi = float(_min(p)), float(_max(p))
    k_lo, k_hi = (lo * inv_tick, hi * inv_tick) if inv_tick is not None else (lo / tick, hi / tick)
    bid_hi, ask_lo, up, down, _, _ = b
    return k_lo > bid_hi and k_hi < ask_lo and hi < up and lo > down


def rows_to_check(price: np.ndarray, is_buy: np.ndarray, start: int, w: Watch, inv_tick: float | None,
                  tick: float) -> np.ndarray:
    """Indices ``>= start`` of the rows selected by ``w`` (module docstring), ascending. Ticks are
    ``round(price * inv_tick)`` (the exchange's book) or ``round(price / tick)`` (no book yet)."""
    p = price[start:] if start else price
    if quiet(p, bounds_of(w), inv_tick, tick):  # the usual batch reaches nothing
        return np.empty(0, dtype=np.intp)
    mask: np.ndarray | None = None
    if w.orders:
        key = np.rint(p * inv_tick) if inv_tick is not None else np.rint(p / tick)
        key += is_buy[start:] if start else is_buy  # tk + 1 for a Buy aggressor: one compare per side below
        if w.bid != -_INF:
            mask = key <= w.bid  # below bid, or at bid hit by a seller
        if w.ask != _INF:
            sells = key > w.ask  # above ask, or at ask lifted by a buyer
            mask = sells if mask is None else mask | sells
    for cond in (p >= w.up if w.up != _INF else None, p <= w.down if w.down != -_INF else None):
        if cond is not None:
            mask = cond if mask is None else mask | cond
    if mask is None:
        return np.empty(0, dtype=np.intp)
    idx = np.flatnonzero(mask)
    return idx + start if start else idx
