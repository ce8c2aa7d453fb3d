"""Market input of the simulated exchange: its own book and last price, and which prints reach the matcher.

Trades arrive as ``Trade`` events or as ``TradeBatch`` columns. A batch costs O(1) for a symbol with nothing resting
and no position (the last price is its last row); otherwise numpy selects the rows that can fill, trigger or
liquidate (:mod:`bot.adapters.simulated.tape_scan`) and exactly those run through the per-trade logic, in order, so
the outcome is the same as for the same prints delivered one by one.
"""

from __future__ import annotations

from bot.adapters.simulated.book import SimBook
from bot.adapters.simulated.state import SimState
from bot.adapters.simulated.tape_scan import SMALL_ROWS, Bounds, Watch, bounds_of, quiet, rows_to_check, watch_of
from bot.events import BookSnapshot, EventBatch, Trade, TradeBatch


class TapeMixin(SimState):
    """Feeds market events to the engine (rules in :mod:`bot.adapters.simulated.sim`)."""

    def on_market(self, batch: EventBatch) -> None:
        """Apply market events (in ts order) to the exchange's book and tape; fill, trigger and liquidate.
        ``Trade`` events and ``TradeBatch`` rows are the same prints to it (see the module docstring)."""
        now = self._clock.now()
        if self._next_funding is None:
            self._next_funding = self._funding_after(now)
        elif now >= self._next_funding:
            self._apply_funding()
        books, active, last = self._books, self._active, self._last
        for ev in batch:
            cls = type(ev)
            if cls is TradeBatch:
                price = ev.price
                n = len(price)
                if n:
                    sym = ev.symbol
                    if sym in active:
                        # most batches of a position's life: inside the cached watch's price window, nothing to do
                        # (the first test of _on_trade_batch, without its lookups)
                        cached = self._watches.get(sym)
                        if cached is None or cached[0] != self._epoch or n > SMALL_ROWS:
                            self._on_trade_batch(ev)
                        else:
                            if n == 1:
                                lo = hi = price.item(0)
                            else:
                                pl = price.tolist()
                                lo, hi = min(pl), max(pl)
                            b = cached[2]
                            if not (b.lo < lo and hi < b.hi):
                                self._on_trade_batch(ev)
                    last[sym] = price.item(n - 1)
                continue
            if cls is Trade:
                last[ev.symbol] = ev.price
                if ev.symbol in active:
                    self._on_trade(ev)
                continue
            book = books.get(ev.symbol)
            if book is None:
                if ev.symbol not in self._instruments:
                    continue
                book = books[ev.symbol] = SimBook(self._instruments[ev.symbol].tick)
            if cls is BookSnapshot:
                book.snapshot(ev.bids, ev.asks)
            else:
                book.delta(ev.bids, ev.asks)
        if self._pending or self._touched or self._wallet_dirty:
            self._dispatch(self._lat.response())

    def _on_trade(self, tr: Trade) -> None:
        sym = tr.symbol
        orders = self._resting.get(sym)
        if orders:
            self._match_trade(sym, tr, orders)
        pos = self._positions.get(sym)
        if pos is not None and pos.size:
            if pos.tp or pos.sl:
                self._check_tpsl(sym, pos, tr)
            if pos.size and (tr.price <= pos.liq_f if pos.size > 0 else tr.price >= pos.liq_f):
                self._liquidate(sym, pos, tr.ts)

    def _on_trade_batch(self, b: TradeBatch) -> None:
        """:meth:`_on_trade` for exactly the rows of ``b`` that can matter (:mod:`bot.adapters.simulated.tape_scan`), in
        order; the selection is recomputed after each row that changed the state (``_epoch`` moved).

        Most batches of a position's life reach nothing: :func:`~bot.adapters.simulated.tape_scan.quiet` rules them
        out from their extremes first, against bounds cached with the watch, before anything else is looked up."""
        sym = b.symbol
        price = b.price
        book = self._books.get(sym)
        inv_tick = None if book is None else book.inv_tick
        cached = self._watches.get(sym)
        if cached is None or cached[0] != self._epoch:
            cached = self._rewatch(sym)
        if quiet(price, cached[2], inv_tick, self._instruments[sym].tick if inv_tick is None else 0.0):
            return
        inst = self._instruments[sym]
        is_buy = b.is_buy
        start = 0
        while sym in self._active:
            book = self._books.get(sym)
            rows = rows_to_check(
                price, is_buy, start, self._watch(sym), None if book is None else book.inv_tick, inst.tick
            )
            if not len(rows):
                return
            epoch = self._epoch
            sides = ["Buy" if x else "Sell" for x in is_buy[rows].tolist()]
            for j, t, p, v, side in zip(
                rows.tolist(), b.ts[rows].tolist(), price[rows].tolist(), b.size[rows].tolist(), sides, strict=True
            ):
                self._last[sym] = p
                self._on_trade(Trade(sym, t, p, v, side, ""))  # type: ignore[arg-type]
                if self._epoch != epoch:
                    start = j + 1
                    break
            else:
                return

    def _watch(self, sym: str) -> Watch:
        """The symbol's :class:`Watch`, rebuilt only when ``_epoch`` moved: every change to a resting order's side or
        price, to the resting set, or to a position's size, TP, SL or liquidation price bumps it (most batches of a
        position's life see the same watch)."""
        cached = self._watches.get(sym)
        if cached is not None and cached[0] == self._epoch:
            return cached[1]
        return self._rewatch(sym)[1]

    def _rewatch(self, sym: str) -> tuple[int, Watch, Bounds]:
        """Rebuild and cache the symbol's watch (and its :class:`Bounds`) for the current ``_epoch``."""
        orders = [(o.sign, o.ticks) for o in self._resting.get(sym, ())]
        pos = self._positions.get(sym)
        if pos is None or not pos.size:
            w = watch_of(orders, 0.0, 0.0, 0.0, 0.0)
        else:
            w = watch_of(orders, float(pos.size), float(pos.tp), float(pos.sl), pos.liq_f)
        entry = self._watches[sym] = (self._epoch, w, bounds_of(w))
        return entry
