"""Result types handed out by :class:`~bot.storage.DataStorage` (STRATEGY.md §3).

Queries sit on the analyzers' hot path (~15 per evaluation), so results are msgspec structs (cheap to build,
immutable) and trade windows are views into the tape's buffers, never copies.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

BookSide = Literal["bid", "ask"]


class SideSums(msgspec.Struct, frozen=True, gc=False):
    """Aggressor-split trade counts and notionals (USDT) over a half-open window [t0, t1)."""

    count_buy: int
    count_sell: int
    notional_buy: float
    notional_sell: float

    @property
    def count(self) -> int:
        return self.count_buy + self.count_sell

    @property
    def notional(self) -> float:
        return self.notional_buy + self.notional_sell


class PriceStats(msgspec.Struct, frozen=True, gc=False):
    """Per-trade, unweighted price statistics over [t0, t1).

    ``std`` is the *sample* standard deviation (ddof=1, as ``statistics.stdev``), 0.0 for a single trade.
    ``mean_abs_change`` is mean |p_i − p_{i−1}| over consecutive trades inside the window, 0.0 below two trades.
    With ``n == 0`` every float is NaN: callers must check ``n`` (there is no honest number to return).
    """

    n: int
    min: float
    max: float
    mean: float
    std: float
    mean_abs_change: float


class BookTop(msgspec.Struct, frozen=True, gc=False):
    """Touch of one book. ``valid`` already folds in staleness (book_stale_sec against the storage clock)."""

    best_bid: float
    best_ask: float
    bid_size: float
    ask_size: float
    ts: float
    update_id: int
    valid: bool


class SuspiciousOrder(msgspec.Struct, frozen=True, gc=False):
    """A large level that vanished inside the tracked range before spoof_lifetime_ms (times: exchange seconds)."""

    side: BookSide
    price: float
    notional: float
    placed_ts: float
    removed_ts: float


IssueKind = Literal[
    "duplicate",  # book delta with u == last u
    "out_of_order",  # book delta with u < last u
    "gap",  # book delta with u > last u + 1, or a delta before any snapshot
    "rejected",  # update would leave an empty side / non-positive bid / crossed / absurd spread
    "stale",  # no book update for book_stale_sec
    "duplicate_trade",  # trade id seen before (detail says how many in the batch)
    "bad_trade",  # non-finite or non-positive price/size, unknown side, empty id
    "unknown_symbol",  # event for a symbol this storage was not configured with
    "invalidated",  # the feed lost the book (disconnect, resubscribe): invalid until the next snapshot
]


class StorageIssue(msgspec.Struct, frozen=True, gc=False):
    """One reported problem; ``ts`` is the storage clock when it was seen, ``update_id`` −1 if not a book event."""

    ts: float
    symbol: str
    kind: IssueKind
    detail: str
    update_id: int = -1


class TradeView:
    """Read-only window ``[a, b)`` over a tape's column buffers; columns are sliced on access, never copied.

    The tape never writes below its fill mark and reallocates (rather than shifts) on compaction, so a view stays
    a faithful snapshot of the trades it was made for even while ingestion continues. ``cols`` are read-only views
    of the buffers (so their slices are read-only too). A column is sliced on each access (no per-view cache:
    nearly every view has each of its columns read once, so a cache cost more than it saved).
    """

    __slots__ = ("_a", "_b", "_cols")

    def __init__(self, cols: tuple[np.ndarray, ...], a: int, b: int) -> None:
        _set = object.__setattr__
        _set(self, "_cols", cols)
        _set(self, "_a", a)
        _set(self, "_b", b)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("TradeView is read-only")

    def __len__(self) -> int:
        return self._b - self._a

    def __repr__(self) -> str:
        return f"TradeView(n={self._b - self._a})"

    @property
    def ts(self) -> np.ndarray:
        """Trade time, epoch seconds (exchange ``T``, clamped monotone)."""
        return self._cols[0][self._a : self._b]

    @property
    def price(self) -> np.ndarray:
        return self._cols[1][self._a : self._b]

    @property
    def size(self) -> np.ndarray:
        """Base-coin quantity."""
        return self._cols[2][self._a : self._b]

    @property
    def notional(self) -> np.ndarray:
        """price × size, USDT."""
        return self._cols[3][self._a : self._b]

    @property
    def is_buy(self) -> np.ndarray:
        """Aggressor side: True for Buy."""
        return self._cols[4][self._a : self._b]

    @property
    def seq(self) -> np.ndarray:
        """Local monotone sequence number (1 = first trade ever stored for the symbol)."""
        return self._cols[5][self._a : self._b]
