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

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Literal

import numpy as np
from loguru import logger

from bot.clock import Clock
from bot.events import BookDelta, BookSnapshot, EventBatch, MarketEvent, Trade
from bot.storage.book import OrderBook
from bot.storage.spoof import SpoofTracker
from bot.storage.tape import TradeTape
from bot.storage.types import BookTop, IssueKind, PriceStats, SideSums, StorageIssue, SuspiciousOrder, TradeView
from settings import Settings

_SYMBOL, _TS, _PRICE, _SIZE, _SIDE, _ID = map(attrgetter, ("symbol", "ts", "price", "size", "side", "trade_id"))
_ONLY_TRADES = {Trade}
_INF = math.inf
SMALL_BATCH = 16
"""Trade batches up to this size are ingested with plain Python (numpy call overhead dominates tiny arrays)."""
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
        if kind in ("gap", "rejected", "stale"):
            logger.warning("storage {} {}: {}", sym, kind, detail)

    # --- ingest -------------------------------------------------------------------------------------------------

    def apply(self, ev: MarketEvent) -> None:
        self.apply_batch([ev])

    def apply_batch(self, batch: EventBatch) -> None:
        """Apply one queue item. Book events apply in order; trades are appended per symbol in arrival order
        (books and tapes are independent, so the relative order of the two kinds does not matter)."""
        if not batch:
            return
        kinds = set(map(type, batch))
        if kinds == _ONLY_TRADES:
            self._ingest_trades(batch)  # type: ignore[arg-type]
            return
        trades: list[Trade] = []
        for ev in batch:
            if ev.__class__ is Trade:
                trades.append(ev)  # type: ignore[arg-type]
            else:
                self._apply_book(ev)  # type: ignore[arg-type]
        if trades:
            self._ingest_trades(trades)

    def _apply_book(self, ev: BookSnapshot | BookDelta) -> None:
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
            if not book.has_data:
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
        st.spoof.on_book(book.bid_px, book.bids, book.ask_px, book.asks, book.ts, self._clock.now(), delta)

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

    def _ingest_symbol(self, sym: str, trades: list[Trade], now: float) -> None:
        st = self._syms.get(sym)
        if st is None:
            if self._strict:
                self._report(sym, "unknown_symbol", f"{len(trades)} trade(s) for an unconfigured symbol")
                return
            st = self._create(sym)
        m = len(trades)
        if m <= SMALL_BATCH and self._ingest_small(st, sym, trades, now):
            return
        t = np.fromiter(map(_TS, trades), np.float64, m)
        p = np.fromiter(map(_PRICE, trades), np.float64, m)
        v = np.fromiter(map(_SIZE, trades), np.float64, m)
        sides = list(map(_SIDE, trades))
        ids = list(map(_ID, trades))
        n_buy = sides.count("Buy")
        is_buy = np.fromiter(map("Buy".__eq__, sides), bool, m) if 0 < n_buy < m else np.full(m, n_buy > 0)
        notional = p * v
        # a few reductions for the normal case: NaN/inf in ts, price or size makes this sum non-finite
        ok_all = (
            n_buy + sides.count("Sell") == m
            and "" not in ids
            and math.isfinite(float(t.sum() + notional.sum()))
            and p.min() > 0.0
            and v.min() > 0.0
        )
        if not ok_all:
            good = np.isfinite(t) & np.isfinite(p) & np.isfinite(v) & (p > 0.0) & (v > 0.0)
            good &= np.fromiter((s in ("Buy", "Sell") and i != "" for s, i in zip(sides, ids, strict=True)), bool, m)
            bad = m - int(good.sum())
            if bad:
                self._report(sym, "bad_trade", f"{bad} trade(s) with invalid price/size/ts/side/id dropped")
                idx = np.flatnonzero(good)
                t, p, v, is_buy, notional = t[idx], p[idx], v[idx], is_buy[idx], notional[idx]
                ids = [ids[i] for i in idx.tolist()]
                if not ids:
                    return
        keep = st.tape.filter_ids(ids)
        if keep is not None:
            dup = len(ids) - len(keep)
            self._report(sym, "duplicate_trade", f"{dup} trade(s) with an already-seen id dropped")
            if not keep:
                return
            t, p, v, is_buy, notional = t[keep], p[keep], v[keep], is_buy[keep], notional[keep]
        st.tape.append(t, p, v, is_buy, now, notional)

    def _ingest_small(self, st: _SymbolState, sym: str, trades: list[Trade], now: float) -> bool:
        """The usual few prints of one symbol, all valid: plain floats into :meth:`TradeTape.append_rows`. Returns
        False (nothing done) if any print is invalid, leaving the reporting to the array path."""
        ts: list[float] = []
        ps: list[float] = []
        vs: list[float] = []
        buys: list[bool] = []
        ids: list[str] = []
        inf = _INF
        for tr in trades:
            t, p, v, side, tid = float(tr.ts), float(tr.price), float(tr.size), tr.side, tr.trade_id
            if not (-inf < t < inf and 0.0 < p < inf and 0.0 < v < inf) or tid == "":
                return False
            if side == "Buy":
                buys.append(True)
            elif side == "Sell":
                buys.append(False)
            else:
                return False
            ts.append(t)
            ps.append(p)
            vs.append(v)
            ids.append(tid)
        keep = st.tape.filter_ids(ids)
        if keep is not None:
            self._report(sym, "duplicate_trade", f"{len(ids) - len(keep)} trade(s) with an already-seen id dropped")
            if not keep:
                return True
            ts, ps = [ts[i] for i in keep], [ps[i] for i in keep]
            vs, buys = [vs[i] for i in keep], [buys[i] for i in keep]
        st.tape.append_rows(ts, ps, vs, buys, now)
        return True

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
        return BookTop(bb, ba, book.bids[bb], book.asks[ba], book.ts, book.update_id, valid)

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
        if side == "bid":
            px, sizes = book.bid_px[: max(0, n)], book.bids
        elif side == "ask":
            px, sizes = book.ask_px[: max(0, n)], book.asks
        else:
            raise ValueError(f"book side must be 'bid' or 'ask', got {side!r}")
        return px, [p * sizes[p] for p in px]
