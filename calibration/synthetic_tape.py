"""The synthetic market in the neutral :class:`Recording` form, built from a real recording's own 1m candles.

``candles_from_recording`` rebuilds the complete minutes of a recording as OHLCV (open/close = first/last trade,
high/low = extremes, volume = Σ qty); ``synthetic_recording`` runs the generator on them and collects its events
exactly as a subscriber would see them (the book rebuilt from snapshot + deltas and sampled once a second, trades from
the ``TradeBatch``es), so real and synthetic are measured by the same code (:mod:`calibration.stats`).
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np

from bot.events import BookDelta, BookSnapshot, Trade, TradeBatch
from bot.instruments import Instrument, InstrumentRegistry
from calibration.recordings import Book, BookSampler, Recording
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder
from replay.synthetic.builder import DEFAULT_POINTS_PER_CANDLE
from replay.synthetic.scales import ScalePrior

MINUTE_MS = 60_000


def complete_minutes(rec: Recording) -> tuple[int, int]:
    """[first, last) minute starts (ms) of the whole minutes inside the recording's trade span."""
    t0, t1 = rec.span_ms
    first = -(-t0 // MINUTE_MS) * MINUTE_MS
    last = (t1 + 1) // MINUTE_MS * MINUTE_MS
    if last - first < MINUTE_MS:
        raise ValueError(f"{rec.source} {rec.symbol}: no complete minute of trades (span {(t1 - t0) / 1000:.0f} s)")
    return first, last


def candles_from_recording(rec: Recording) -> Candles:
    first, last = complete_minutes(rec)
    starts = np.arange(first, last, MINUTE_MS, dtype=np.int64)
    idx = np.searchsorted(rec.trade_ms, np.append(starts, last))
    o, h, lo, c, v = (np.empty(len(starts)) for _ in range(5))
    prev = float(rec.trade_price[max(idx[0] - 1, 0)])
    for i, (a, b) in enumerate(itertools.pairwise(idx)):
        if b == a:  # a minute without trades: flat at the previous price, no volume
            o[i] = h[i] = lo[i] = c[i] = prev
            v[i] = 0.0
            continue
        p = rec.trade_price[a:b]
        o[i], h[i], lo[i], c[i] = p[0], p.max(), p.min(), p[-1]
        v[i] = float(np.round(rec.trade_qty[a:b].sum() / rec.step) * rec.step)
        prev = float(p[-1])
    return Candles(rec.symbol, starts, o, h, lo, c, v)


def recording_prior(rec: Recording) -> ScalePrior:
    """The recording's own typical volume and 1m range as the generator's scale history: a few minutes are too short
    for the causal scales to warm up, and the fit measures the levels at this same volume."""
    c = candles_from_recording(rec)
    minutes = (rec.span_ms[1] - rec.span_ms[0]) / MINUTE_MS
    rng = np.median((c.high - c.low) / rec.tick)
    return ScalePrior(volume=float(rec.trade_qty.sum() / max(minutes, 1e-9)), range_ticks=float(rng))


def instrument_for(rec: Recording) -> Instrument:
    """The recording's instrument filters: Bybit's own (bundled instruments-info) for a Bybit symbol; otherwise tick and
    step from the recording's prices and quantities and the minimum order notional from its trades (the 5th percentile
    of trade notional floored to one significant digit: Binance USD-M shows 100 USDT on BTC, 20 on ETH)."""
    if rec.venue.startswith("bybit"):
        reg = InstrumentRegistry.bundled()
        if rec.symbol in reg:
            return reg[rec.symbol]
    tick, step = Decimal(repr(rec.tick)), Decimal(repr(rec.step))
    min_notional = _floor_1sig(float(np.percentile(rec.trade_price * rec.trade_qty, 5)))
    return Instrument(symbol=rec.symbol, tick_size=tick, qty_step=step, min_order_qty=step,
                      max_order_qty=Decimal(10**9), max_mkt_order_qty=Decimal(10**9), min_notional=min_notional,
                      max_leverage=Decimal(100), funding_interval_min=480)


def _floor_1sig(x: float) -> Decimal:
    """x floored to one significant digit (123.4 → 100, 21.3 → 20)."""
    d = Decimal(repr(x))
    if d <= 0:
        return Decimal(0)
    mag = Decimal(1).scaleb(d.adjusted())
    return (d // mag) * mag


def events_recording(batches: object, *, symbol: str, venue: str, source: str, tick: float, step: float
                     ) -> Recording:
    """Collect ``(release_ts, batch)`` pairs of one symbol into a :class:`Recording` (book rebuilt and sampled)."""
    book = Book()
    sampler = BookSampler()
    cols: list[tuple[np.ndarray, ...]] = []
    for _, batch in batches:  # type: ignore[attr-defined]
        for ev in batch:
            if isinstance(ev, TradeBatch):
                cols.append((np.rint(ev.ts * 1000).astype(np.int64), ev.price, ev.size, ev.is_buy))
            elif isinstance(ev, Trade):
                cols.append((np.array([round(ev.ts * 1000)]), np.array([ev.price]), np.array([ev.size]),
                             np.array([ev.side == "Buy"])))
            else:
                if isinstance(ev, BookSnapshot):
                    book.replace(ev.bids, ev.asks)
                elif isinstance(ev, BookDelta):
                    book.update(ev.bids, ev.asks)
                sampler.on_update(book, round(ev.ts * 1000))
    if not cols:
        raise ValueError(f"{source} {symbol}: the synthetic market printed no trade")
    tms, tp, tq, tb = (np.concatenate(c) for c in zip(*cols, strict=True))
    bt, bp, bq, ap, aq, ut, ub, ua = sampler.arrays()
    return Recording(symbol=symbol, venue=venue, source=source, tick=tick, step=step, trade_ms=tms, trade_price=tp,
                     trade_qty=tq, trade_is_buy=tb.astype(bool), book_ms=bt, bid_px=bp, bid_qty=bq, ask_px=ap,
                     ask_qty=aq, touch_ms=ut, touch_bid=ub, touch_ask=ua)


def synthetic_recording(rec: Recording, params: GeneratorParams, *, seed: int = 1,
                        points_per_candle: int = DEFAULT_POINTS_PER_CANDLE,
                        candles: Candles | None = None) -> Recording:
    """The generator's market over ``candles`` (default: the recording's own complete minutes)."""
    c = candles if candles is not None else candles_from_recording(rec)
    builder = SyntheticMarketBuilder(instrument_for(rec), None, params, seed=seed,
                                     points_per_candle=points_per_candle, scale_prior=recording_prior(rec))
    return events_recording(builder.iter_batches(c), symbol=rec.symbol, venue="synthetic",
                            source=f"synthetic({rec.source})", tick=rec.tick, step=rec.step)
