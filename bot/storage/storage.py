"""DataStorage: books, trade tapes and spoof records per symbol; no positions (STRATEGY.md §3).

The feed consumer calls :meth:`DataStorage.apply_batch` once per queue item; analyzers only read. Every refused
input is *reported* (``issues``, ``counters``) and, where a fresh snapshot is the cure, the symbol lands in
:meth:`resync_requested` for the collector to resubscribe.

Book update rules, in order, for a symbol:
- a snapshot, or any update with ``u == 1`` (exchange restart), replaces the book if it is sane;
- while a resync is pending every delta is dropped (counted, not reported one by one); the first such drop also marks
  the book invalid, because from then on the kept book provably lags the exchange;
- otherwise a delta needs ``u == last u + 1``: ``u == last`` → duplicate, ``u < last`` → out_of_order (dropped and
  reported, book untouched); ``u > last + 1`` → gap (reported, book invalid, resync);
- an update that would leave a side empty, best bid ≤ 0, a crossed book or spread_bps ∉ (0, max_valid_spread_bps]
  is rejected: the previous book is kept untouched and stays valid, the rejection is reported, a resync requested.
A book is usable (:meth:`book_valid`) when its valid flag is set and its exchange ts is within book_stale_sec of now.

Time windows are half-open ``[t0, t1)``; pass ``t1=math.inf`` to include everything up to the newest trade (this
covers the spec's "[now − W, now]" windows, whose right edge must include ts == now).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Literal

import numpy as np
from loguru import logger

from bot.clock import Clock
from bot.events import BookDelta, BookSnapshot, EventBatch, MarketEvent, Trade, TradeBatch, as_levels
from bot.storage.book import OrderBook
from bot.storage.ingest import append_batch, append_trades
from bot.storage.spoof import SpoofTracker
from bot.storage.tape import TradeTape
from bot.storage.types import BookTop, IssueKind, PriceStats, SideSums, StorageIssue, SuspiciousOrder, TradeView
from settings import Settings

_SYMBOL = attrgetter("symbol")
_ONLY_TRADES = {Trade}
_ONLY_BATCHES = {TradeBatch}
MAX_ISSUES = 10_000
"""Issues are kept in a bounded deque (newest last); ``counters`` keeps the totals forever."""


class _SymbolState:
    __slots__ = ("book", "spoof", "stale_reported", "tape")

    def __init__(self, book: OrderBook, tape: TradeTape, spoof: SpoofTracker) -> None:
        self.book = book
        self.tape = tape
        self.spoof = spoof
        self.stale_reported = False


class DataStorage:
    """Market state for the bot. ``symbols=None`` creates per-symbol state on first sight; a given list is strict
    (events for other symbols are dropped and reported, queries for them raise ``KeyError``)."""

    def __init__(self, settings: Settings, clock: Clock, symbols: Iterable[str] | None = None) -> None:
        self._clock = clock
        self._depth = settings.websocket.subscription_depth
        self._stale_sec = settings.websocket.book_stale_sec
        self._max_spread_bps = settings.spread.max_valid_spread_bps
        self._retention_sec = settings.data_retention.trade_retention_sec
        imb = settings.imbalance
        self._spoof_args = (
            imb.depth_limit_for_calc,
            imb.large_order_side_percent,
            imb.large_order_min_notional_abs,
            imb.spoof_lifetime_ms,
            settings.data_retention.spoof_lookback_sec,
        )
        self.issues: deque[StorageIssue] = deque(maxlen=MAX_ISSUES)
        self.counters: Counter[str] = Counter()
        self._resync: set[str] = set()
        self._syms: dict[str, _SymbolState] = {}
        # direct per-symbol maps for the query hot path (a missing symbol falls back to _state: create or KeyError)
        self._tapes: dict[str, TradeTape] = {}
        self._books: dict[str, OrderBook] = {}
        self._strict = symbols is not None
        for s in symbols or ():
            self._create(s)

    # --- state --------------------------------------------------------------------------------------------------

    def _create(self, sym: str) -> _SymbolState:
        st = _SymbolState(OrderBook(sym, self._depth), TradeTape(self._retention_sec), SpoofTracker(*self._spoof_args))
        self._syms[sym] = st
        self._tapes[sym] = st.tape
        self._books[sym] = st.book
        return st

    def _state(self, sym: str) -> _SymbolState:
        st = self._syms.get(sym)
        if st is None:
            if self._strict:
                raise KeyError(f"DataStorage: symbol {sym!r} is not configured (have {sorted(self._syms)})")
            st = self._create(sym)
        return st

    @property
    def symbols(self) -> list[str]:
        return list(self._syms)

    def _report(self, sym: str, kind: IssueKind, detail: str, update_id: int = -1) -> None:
        self.counters[kind] += 1
        self.issues.append(StorageIssue(self._clock.now(), sym, kind, detail, update_id))
        if kind in ("gap", "rejected", "stale", "invalidated"):
            logger.warning("storage {} {}: {}", sym, kind, detail)

    # --- ingest -------------------------------------------------------------------------------------------------

    def apply(self, ev: MarketEvent) -> None:
        self.apply_batch([ev])

    def apply_batch(self, batch: EventBatch) -> None:
        """Apply one queue item. Book events apply in order; trades (``Trade`` events and ``TradeBatch``es) are
        appended per symbol in arrival order (books and tapes are independent, so the relative order of the two kinds
        does not matter)."""
        if len(batch) == 1:  # the usual queue item: one frame's batch
            ev = batch[0]
            cls = ev.__class__
            if cls is TradeBatch:
                self._ingest_batch(ev, self._clock.now())  # type: ignore[arg-type]
                return
            if cls is BookDelta or cls is BookSnapshot:
                self._apply_book(ev)  # type: ignore[arg-type]
                return
        elif not batch:
            return
        kinds = set(map(type, batch))
        if kinds == _ONLY_TRADES:
            self._ingest_trades(batch)  # type: ignore[arg-type]
            return
        if kinds == _ONLY_BATCHES:
            now = self._clock.now()
            for b in batch:
                self._ingest_batch(b, now)  # type: ignore[arg-type]
            return
        trades: list[Trade] = []
        for ev in batch:
            cls = ev.__class__
            if cls is Trade:
                trades.append(ev)  # type: ignore[arg-type]
            elif cls is TradeBatch:
                if trades:  # keep each tape's arrival order
                    self._ingest_trades(trades)
                    trades = []
                self._ingest_batch(ev, self._clock.now())  # type: ignore[arg-type]
            else:
                self._apply_book(ev)  # type: ignore[arg-type]
        if trades:
            self._ingest_trades(trades)

    def _apply_book(self, ev: BookSnapshot | BookDelta) -> None:
        if ev.bids.__class__ is not list or ev.asks.__class__ is not list:  # (n, 2) arrays from a synthetic feed
            ev = ev.__class__(ev.symbol, ev.ts, as_levels(ev.bids), as_levels(ev.asks), ev.update_id)
        sym = ev.symbol
        st = self._syms.get(sym)
        if st is None:
            if self._strict:
                self._report(sym, "unknown_symbol", "book event for an unconfigured symbol", ev.update_id)
                return
            st = self._create(sym)
        book = st.book
        u = ev.update_id
        snapshot = ev.__class__ is BookSnapshot or u == 1
        if not snapshot:
            if sym in self._resync:
                self.counters["dropped_awaiting_resync"] += 1
                book.valid = False
                return
            if not book.bid_px:  # no book yet (book.has_data without the property call)
                self._report(sym, "gap", f"delta u={u} before any snapshot", u)
                self._resync.add(sym)
                return
            last = book.update_id
            if u != last + 1:
                if u == last:
                    self._report(sym, "duplicate", f"delta u={u} already applied", u)
                elif u < last:
                    self._report(sym, "out_of_order", f"delta u={u} after u={last}", u)
                else:
                    self._report(sym, "gap", f"expected u={last + 1}, got u={u}", u)
                    book.valid = False
                    self._resync.add(sym)
                return
        err = book.try_apply(ev, snapshot, self._max_spread_bps)
        if err is not None:
            what = "snapshot" if snapshot else "delta"
            self._report(sym, "rejected", f"{what} u={u}: {err}", u)
            self._resync.add(sym)
            return
        if snapshot:
            book.valid = True
            self._resync.discard(sym)
            st.stale_reported = False
        delta = ev if isinstance(ev, BookDelta) and not snapshot else None  # None: the tracker visits everything
        st.spoof.on_book(book, self._clock.now(), delta)

    def _ingest_trades(self, trades: list[Trade]) -> None:
        now = self._clock.now()
        syms = list(map(_SYMBOL, trades))
        s0 = syms[0]
        if syms.count(s0) == len(syms):
            self._ingest_symbol(s0, trades, now)
            return
        groups: dict[str, list[Trade]] = {}
        for s, t in zip(syms, trades, strict=True):
            groups.setdefault(s, []).append(t)
        for s, group in groups.items():
            self._ingest_symbol(s, group, now)

    def _tape_for(self, sym: str, m: int) -> TradeTape | None:
        tape = self._tapes.get(sym)
        if tape is None:
            if self._strict:
                self._report(sym, "unknown_symbol", f"{m} trade(s) for an unconfigured symbol")
                return None
            tape = self._create(sym).tape
        return tape

    def _ingest_symbol(self, sym: str, trades: list[Trade], now: float) -> None:
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._tape_for(sym, len(trades))
            if tape is None:
                return
        bad, dup = append_trades(tape, trades, now)
        if bad or dup:
            self._report_trades(sym, bad, dup)

    def _ingest_batch(self, b: TradeBatch, now: float) -> None:
        m = len(b.ts)
        if not m:
            return
        sym = b.symbol
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._tape_for(sym, m)
            if tape is None:
                return
        if not (len(b.price) == len(b.size) == len(b.is_buy) == len(b.trade_id) == m):
            self._report(sym, "bad_trade", f"{m} trade(s) in a batch with columns of unequal length dropped")
            return
        bad, dup = append_batch(tape, b, now)
        if bad or dup:
            self._report_trades(sym, bad, dup)

    def _report_trades(self, sym: str, bad: int, dup: int) -> None:
        if bad:
            self._report(sym, "bad_trade", f"{bad} trade(s) with invalid price/size/ts/side/id dropped")
        if dup:
            self._report(sym, "duplicate_trade", f"{dup} trade(s) with an already-seen id dropped")

    # --- book / resync state ------------------------------------------------------------------------------------

    def resync_requested(self) -> set[str]:
        """Symbols needing a fresh snapshot (gap, rejected update, or stale book); a good snapshot clears one."""
        now = self._clock.now()
        for sym, st in self._syms.items():
            book = st.book
            if book.has_data and now - book.ts > self._stale_sec and not st.stale_reported:
                st.stale_reported = True
                book.valid = False
                self._report(sym, "stale", f"no book update for {now - book.ts:.1f}s", book.update_id)
                self._resync.add(sym)
        return set(self._resync)

    def invalidate(self, symbols: Iterable[str], reason: str) -> None:
        """Mark books unusable until their next snapshot (the feed lost them: a dropped socket, a resubscribe).

        Called by the live collector outside the queue: deltas still queued for these symbols are then dropped as
        awaiting resync, and the fresh snapshot restores validity exactly as after a gap."""
        for sym in symbols:
            st = self._syms.get(sym)
            if st is None or not st.book.has_data:
                continue
            if st.book.valid:
                self._report(sym, "invalidated", reason, st.book.update_id)
            st.book.valid = False
            self._resync.add(sym)

    def book_valid(self, sym: str, now: float) -> bool:
        book = self._books.get(sym)
        if book is None:
            book = self._state(sym).book
        return book.valid and now - book.ts <= self._stale_sec

    def best(self, sym: str) -> BookTop | None:
        """The touch, or None if no book was ever accepted. ``valid`` is :meth:`book_valid` at the storage clock."""
        book = self._state(sym).book
        if not book.bid_px:
            return None
        bb, ba = book.bid_px[0], book.ask_px[0]
        valid = book.valid and self._clock.now() - book.ts <= self._stale_sec
        return BookTop(bb, ba, book._sz_bid[0], book._sz_ask[0], book.ts, book.update_id, valid)

    def mid(self, sym: str) -> float | None:
        book = self._books.get(sym)
        if book is None:
            book = self._state(sym).book
        if not book.bid_px:
            return None
        return 0.5 * (book.bid_px[0] + book.ask_px[0])

    def spread_bps(self, sym: str) -> float | None:
        book = self._books.get(sym)
        if book is None:
            book = self._state(sym).book
        if not book.bid_px:
            return None
        bb = book.bid_px[0]
        return (book.ask_px[0] - bb) / bb * 1e4

    def book_top(self, sym: str, side: Literal["bid", "ask"], n: int) -> np.ndarray:
        """Read-only ``(k, 3)`` array: price, size, notional of the best ``k ≤ n`` levels, best first."""
        book = self._books.get(sym)
        if book is None:
            book = self._state(sym).book
        return book.top(side, n)

    def suspicious_orders(self, sym: str, since: float) -> list[SuspiciousOrder]:
        """Records with removed_ts ≥ since, after pruning those older than now − spoof_lookback_sec."""
        return self._state(sym).spoof.since(since, self._clock.now())

    # --- trade queries ------------------------------------------------------------------------------------------

    def trades_since(self, sym: str, t: float) -> TradeView:
        """Trades with ts ≥ t (up to the newest)."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.since(t)

    def trades_between(self, sym: str, t0: float, t1: float) -> TradeView:
        """Trades with t0 ≤ ts < t1."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.between(t0, t1)

    def last_n(self, sym: str, n: int) -> TradeView:
        """The newest min(n, retained) trades."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        tape.prune(self._clock.now())
        return tape.last_n(n)

    def trades_after_seq(self, sym: str, seq: int) -> TradeView:
        """Retained trades with seq > ``seq`` (a cursor from :meth:`last_seq` or a view's ``seq[-1]``)."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        tape.prune(self._clock.now())
        return tape.after_seq(seq)

    def count_between(self, sym: str, t0: float, t1: float) -> int:
        """Number of trades with t0 ≤ ts < t1."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.count_between(t0, t1)

    def side_sums(self, sym: str, t0: float, t1: float) -> SideSums:
        """Buy/sell counts and notionals over [t0, t1)."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.side_sums(t0, t1)

    def side_sums_multi(self, sym: str, t0s: Sequence[float], t1: float) -> list[SideSums]:
        """``[side_sums(sym, t0, t1) for t0 in t0s]`` (the same numbers) for nested windows sharing a right edge,
        with one vectorised binary search."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.side_sums_multi(t0s, t1)

    def price_stats(self, sym: str, t0: float, t1: float) -> PriceStats:
        """n, min, max, mean, sample std, mean |Δp| over [t0, t1) (see :class:`PriceStats`)."""
        tape = self._tapes.get(sym)
        if tape is None:
            tape = self._state(sym).tape
        return tape.price_stats(t0, t1)

    def last_price(self, sym: str) -> float | None:
        return self._state(sym).tape.last_price

    def last_seq(self, sym: str) -> int:
        """Seq of the newest trade ever stored (0 before the first)."""
        return self._state(sym).tape.last_seq()

    # --- book levels as lists (appended for the analyzer's hot path) ---------------------------------------------

    def book_levels(self, sym: str, side: Literal["bid", "ask"], n: int) -> tuple[list[float], list[float]]:
        """``(prices, notionals)`` of the best ``k ≤ n`` levels, best first, as Python lists: the same floats as
        ``book_top(...)[:, 0]`` and ``[:, 2]`` (notional = price · size, one IEEE multiply either way) without building
        an array, for consumers that sum a few dozen levels in Python."""
        book = self._books.get(sym)
        if book is None:
            book = self._state(sym).book
        n = max(0, n)
        if side == "bid":
            return book.bid_px[:n], book.bid_notionals()[:n]  # notionals cached per committed update
        if side == "ask":
            return book.ask_px[:n], book.ask_notionals()[:n]
        raise ValueError(f"book side must be 'bid' or 'ask', got {side!r}")
