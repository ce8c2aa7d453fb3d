"""One symbol's L2 book: the top ``depth`` levels per side as aligned lists (STRATEGY.md §3).

The committed state of a side is three aligned lists, best first: the prices, their sizes and their notionals
(price · size, one IEEE multiply, made once when the level is set: the spoof tracker reads them on every update, the
analyzer on every evaluation). Each side's prices are also kept in ascending order with a NaN after the last one
(the asks' sizes and notionals are already ascending; the bids keep theirs reversed as well), searched with
:func:`bisect.bisect_left`: the NaN compares false with everything, so a search treats it as above every price and
it never equals one, and every slot a search returns can be read without a length test.

A delta is applied level by level, in order, to copies of the touched side's ascending lists: one binary search per
level finds its slot (size 0 deletes, a new price is inserted in order), so the cost follows the levels in the delta,
not the book's depth, and no price is hashed. The result is then checked; if the update is rejected (invalid level,
empty side, crossed, spread out of range) the copies are simply dropped and the previous book stays intact. Levels
pushed beyond ``depth`` are dropped only once the touch is checked (they cannot change it). A snapshot builds its side
maps fresh and replaces the book only if sane. Continuity (update ids) is decided by the caller
(:mod:`bot.storage.storage`); this class only knows how to apply and validate levels.

Exactness against the former price→size maps (sort the keys, look every size up, multiply): floats compare and hash
consistently (NaN is rejected, 0.0 is not a valid price), so an ordered search finds exactly the level a map lookup
would, the lists are the maps' sorted keys and values, and every notional is the same single multiply of a level's
price and size. Pinned against a plain model by ``tests/test_storage_book_fuzz.py``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from operator import mul

import numpy as np

from bot.events import BookDelta, BookSnapshot, Level

_INF = math.inf
_NAN = math.nan


class OrderBook:
    """Book state. ``bid_px``/``ask_px`` are the level prices best first (a new list whenever a side's levels were
    updated; never mutated once committed, so holders of an old list keep a consistent snapshot of it; the same holds
    for every other level list here)."""

    __slots__ = (
        "_asc_ask",
        "_asc_bid",
        "_asc_not_bid",
        "_asc_sz_bid",
        "_gone_ask",
        "_gone_bid",
        "_not_ask",
        "_not_bid",
        "_sz_ask",
        "_sz_bid",
        "_top_ask",
        "_top_bid",
        "ask_px",
        "bid_px",
        "depth",
        "symbol",
        "ts",
        "update_id",
        "valid",
    )

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.bid_px: list[float] = []
        self.ask_px: list[float] = []
        self._sz_bid: list[float] = []  # size per level of bid_px
        self._sz_ask: list[float] = []
        self._not_bid: list[float] = []  # price · size per level of bid_px
        self._not_ask: list[float] = []
        self._asc_bid: list[float] = [_NAN]  # bid_px ascending, then NaN (see the module docstring)
        self._asc_ask: list[float] = [_NAN]  # ask_px, then NaN
        # _sz_bid, _not_bid ascending (the asks' lists are ascending already)
        self._asc_sz_bid: list[float] = []
        self._asc_not_bid: list[float] = []
        self._gone_bid: list[float] = []  # prices the last committed delta deleted (the spoof tracker's hint)
        self._gone_ask: list[float] = []
        self.update_id = 0
        self.ts = -_INF
        self.valid = False
        self._top_bid: np.ndarray | None = None
        self._top_ask: np.ndarray | None = None

    @property
    def has_data(self) -> bool:
        return bool(self.bid_px)

    @property
    def bids(self) -> dict[float, float]:
        """Price → size of the bid levels (a new dict; for inspection, not the hot path)."""
        return dict(zip(self.bid_px, self._sz_bid, strict=True))

    @property
    def asks(self) -> dict[float, float]:
        """Price → size of the ask levels (a new dict; for inspection, not the hot path)."""
        return dict(zip(self.ask_px, self._sz_ask, strict=True))

    def try_apply(self, ev: BookSnapshot | BookDelta, snapshot: bool, max_spread_bps: float) -> str | None:
        """Apply ``ev`` (as a snapshot if ``snapshot``); return None if committed, else why it was rejected."""
        if snapshot:
            return self._apply_snapshot(ev, max_spread_bps)
        lb, la = ev.bids, ev.asks
        # a side without level updates keeps its lists; an updated side's lists are copied, then edited in place
        bpx, bsz, bnt = self._asc_bid, self._asc_sz_bid, self._asc_not_bid
        bgone: list[float] = []
        if lb:
            bpx, bsz, bnt = bpx[:], bsz[:], bnt[:]
            err = _apply_levels(bpx, bsz, bnt, lb, bgone)
            if err is not None:
                return err
        apx, asz, ant = self._asc_ask, self._sz_ask, self._not_ask
        agone: list[float] = []
        if la:
            apx, asz, ant = apx[:], asz[:], ant[:]
            err = _apply_levels(apx, asz, ant, la, agone)
            if err is not None:
                return err
        if not bsz:
            return "empty bid side"
        if not asz:
            return "empty ask side"
        err = _touch_error(bpx[-2], apx[0], max_spread_bps)  # bpx[-1] is the NaN
        if err is not None:
            return err
        depth = self.depth
        if lb:
            cut = len(bsz) - depth  # the worst bids come first in ascending order
            if cut > 0:
                del bpx[:cut], bsz[:cut], bnt[:cut]
            self._asc_bid, self._asc_sz_bid, self._asc_not_bid = bpx, bsz, bnt
            self.bid_px, self._sz_bid, self._not_bid = bpx[-2::-1], bsz[::-1], bnt[::-1]
            self._top_bid = None
        if la:
            if len(asz) > depth:
                del apx[depth:-1], asz[depth:], ant[depth:]
            self._asc_ask, self._sz_ask, self._not_ask = apx, asz, ant
            self.ask_px = apx[:-1]
            self._top_ask = None
        self._gone_bid = bgone
        self._gone_ask = agone
        self.update_id = ev.update_id
        self.ts = ev.ts
        return None

    def _apply_snapshot(self, ev: BookSnapshot | BookDelta, max_spread_bps: float) -> str | None:
        bids, err = _fresh(ev.bids)
        if err is None:
            asks, err = _fresh(ev.asks)
        if err is not None:
            return err
        bid_px = sorted(bids, reverse=True)
        ask_px = sorted(asks)
        err = check_touch(bid_px, ask_px, max_spread_bps)
        if err is not None:
            return err
        depth = self.depth
        del bid_px[depth:], ask_px[depth:]
        self.bid_px, self.ask_px = bid_px, ask_px
        self._sz_bid = bsz = [bids[p] for p in bid_px]
        self._sz_ask = asz = [asks[p] for p in ask_px]
        self._not_bid = bnt = list(map(mul, bid_px, bsz))
        self._not_ask = list(map(mul, ask_px, asz))
        self._asc_bid, self._asc_sz_bid, self._asc_not_bid = [*bid_px[::-1], _NAN], bsz[::-1], bnt[::-1]
        self._asc_ask = [*ask_px, _NAN]
        self._gone_bid = []
        self._gone_ask = []
        self.update_id = ev.update_id
        self.ts = ev.ts
        self._top_bid = self._top_ask = None
        return None

    def bid_notionals(self) -> list[float]:
        """Price · size of every level of ``bid_px``, best first (shared by the spoof tracker and the analyzer).
        Callers must not mutate it."""
        return self._not_bid

    def ask_notionals(self) -> list[float]:
        """:meth:`bid_notionals` for the ask side."""
        return self._not_ask

    def top(self, side: str, n: int) -> np.ndarray:
        """``(k, 3)`` read-only array of price, size, notional for the best ``k = min(n, levels)`` levels."""
        if side == "bid":
            arr = self._top_bid
            if arr is None:
                arr = self._top_bid = _levels_array(self.bid_px, self._sz_bid)
        elif side == "ask":
            arr = self._top_ask
            if arr is None:
                arr = self._top_ask = _levels_array(self.ask_px, self._sz_ask)
        else:
            raise ValueError(f"book side must be 'bid' or 'ask', got {side!r}")
        return arr[: max(0, n)]


def check_touch(bid_px: list[float], ask_px: list[float], max_spread_bps: float) -> str | None:
    """Why a book with these sorted sides is unusable, or None (STRATEGY.md §3 validity rule)."""
    if not bid_px:
        return "empty bid side"
    if not ask_px:
        return "empty ask side"
    return _touch_error(bid_px[0], ask_px[0], max_spread_bps)


def _touch_error(bb: float, ba: float, max_spread_bps: float) -> str | None:
    """:func:`check_touch` for a best bid and ask of non-empty sides."""
    if not bb > 0.0:
        return f"best bid {bb} <= 0"
    if bb >= ba:
        return f"crossed book: best bid {bb} >= best ask {ba}"
    spread = (ba - bb) / bb * 1e4
    if not 0.0 < spread <= max_spread_bps:
        return f"spread {spread:.2f} bps outside (0, {max_spread_bps}]"
    return None


def _fresh(levels: list[Level]) -> tuple[dict[float, float], str | None]:
    out: dict[float, float] = {}
    for p, s in levels:
        if not (0.0 < p < _INF and 0.0 <= s < _INF):  # NaN fails every comparison
            return out, f"invalid level ({p}, {s})"
        if s > 0.0:
            out[p] = s
        else:
            out.pop(p, None)
    return out, None


def _apply_levels(
    px: list[float], sz: list[float], nt: list[float], levels: list[Level], gone: list[float]
) -> str | None:
    """Apply ``levels`` in order to one side's aligned ascending lists in place (``px`` ends with the NaN; size 0
    deletes a level, whose price is then appended to ``gone``); stop at the first invalid level (price not in
    (0, inf), size not in [0, inf), NaN anywhere) and say why: the caller then drops these copies, so validating a
    level as it is applied rejects exactly what a check of every level before applying any would.

    ``bisect_left`` gives the first slot whose price is not below ``p`` (the NaN's at the latest): the level itself
    if present, else where it goes. Every stored price is in (0, inf), so a price at or below 0 or NaN (every
    comparison false) lands on slot 0, the only slot where the price is tested before the lookup; an absent price is
    tested against inf before it is used. A size is tested on the branch that reads it: ``s > 0.0`` (then
    ``s < inf``) or else ``s == 0.0``, which NaN and negative sizes fail. The notional is ``p * s``: ``p`` equals the
    stored price, so it is the same float.

    Feeds send a side's levels in price order (best first) and a delta's levels mostly sit next to each other in
    the book, so the slot is first sought beside the previous level's slot ``j`` (taken before that level was
    applied). Whatever was done at ``j``, every slot below it holds a price below the previous price ``q`` and every
    slot from it on a price above ``q`` (or the NaN), except slot ``j`` itself if ``q`` is there now. Hence, for
    ``p < q`` the slot is at most ``j``: it is ``j`` if the price below is below ``p``, ``j - 1`` if that price is
    ``p``, else a search below ``j - 1``; for ``p > q`` it is at least ``j``: the first of ``j``, ``j + 1`` whose
    price is not below ``p``, else a search from ``j + 2`` (reached only past real prices, so in range). A first
    level, a repeated price or a NaN (``q`` starts as NaN) takes the full search. Each case returns exactly the slot
    ``bisect_left(px, p)`` would."""
    inf = _INF
    q = _NAN
    j = 0
    for p, s in levels:
        if p < q:
            if not j or px[j - 1] < p:
                i = j
            elif px[j - 1] == p:
                i = j - 1
            else:
                i = bisect_left(px, p, 0, j - 1)
        elif q < p:
            if not px[j] < p:
                i = j
            elif not px[j + 1] < p:
                i = j + 1
            else:
                i = bisect_left(px, p, j + 2)
        else:
            i = bisect_left(px, p)
        q = p
        j = i
        if not i and not 0.0 < p < inf:
            return f"invalid level ({p}, {s})"
        if px[i] == p:
            if s > 0.0:
                if s < inf:
                    sz[i] = s
                    nt[i] = p * s
                    continue
            elif s == 0.0:
                del px[i], sz[i], nt[i]
                gone.append(p)
                continue
        elif p < inf:
            if s > 0.0:
                if s < inf:
                    px.insert(i, p)
                    sz.insert(i, s)
                    nt.insert(i, p * s)
                    continue
            elif s == 0.0:
                continue
        return f"invalid level ({p}, {s})"
    return None


def _levels_array(px: list[float], sizes: list[float]) -> np.ndarray:
    n = len(px)
    arr = np.empty((n, 3))
    if n:
        p = np.fromiter(px, np.float64, n)
        s = np.fromiter(sizes, np.float64, n)
        arr[:, 0] = p
        arr[:, 1] = s
        np.multiply(p, s, out=arr[:, 2])
    arr.flags.writeable = False
    return arr
