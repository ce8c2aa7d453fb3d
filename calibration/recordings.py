"""Real market recordings → one neutral form: the trade tape and the order book sampled once a second.

Two formats are read (ARCHITECTURE.md §4, ``data/README.md``):
- **Binance USD-M L2 lines** (``<recv epoch ns> <raw JSON>`` per line, gzip): ``depth@0ms`` diffs chained by
  ``U``/``u``/``pu`` from one REST snapshot (``lastUpdateId``), ``trade`` (``m`` = buyer is maker, so the aggressor is
  the seller), ``bookTicker``.
- **Bybit v5 public capture** (``{"recv_ts", "msg"}`` per line, gzip): decoded by the live bot's own decoder
  (:func:`bot.adapters.bybit.public_decoder.iter_capture`), one :class:`Recording` per symbol.

A :class:`Recording` is what every statistic in :mod:`calibration.stats` reads, and the synthetic market is turned
into the same form (:mod:`calibration.synthetic_tape`), so real and synthetic go through one code path. Bad input is
one :class:`RecordingError` naming the file and line.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
import numpy as np

from bot.adapters.bybit.gzip_lines import iter_lines
from bot.adapters.bybit.public_decoder import FrameError, iter_capture
from bot.events import BookDelta, BookSnapshot, MarketEvent, Trade, TradeBatch

N_LEVELS = 50
SAMPLE_MS = 1000


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file (and line where there is one)."""


@dataclass(frozen=True, eq=False)
class Recording:
    """One symbol's real (or synthetic) market over a span.

    ``trade_*`` are in exchange time order; ``book_*`` are the top ``N_LEVELS`` levels per side sampled on the
    first book update at or after each whole ``SAMPLE_MS`` (best first, NaN-padded); ``touch_*`` is the best bid/ask
    at every book update (or ``bookTicker``) for the spread distribution.
    """

    symbol: str
    venue: str
    source: str
    tick: float
    step: float
    trade_ms: np.ndarray  # int64
    trade_price: np.ndarray
    trade_qty: np.ndarray
    trade_is_buy: np.ndarray  # bool: the aggressor bought
    book_ms: np.ndarray  # int64 (S,)
    bid_px: np.ndarray  # (S, N_LEVELS)
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    touch_ms: np.ndarray  # int64 (U,)
    touch_bid: np.ndarray
    touch_ask: np.ndarray

    @property
    def span_ms(self) -> tuple[int, int]:
        return int(self.trade_ms[0]), int(self.trade_ms[-1])

    @property
    def n_trades(self) -> int:
        return len(self.trade_ms)

    def window(self, t0_ms: int, t1_ms: int) -> Recording:
        """The part with exchange times in [t0_ms, t1_ms) (trades, book samples and touch updates)."""
        ta, tb = np.searchsorted(self.trade_ms, [t0_ms, t1_ms])
        ba, bb = np.searchsorted(self.book_ms, [t0_ms, t1_ms])
        ua, ub = np.searchsorted(self.touch_ms, [t0_ms, t1_ms])
        return replace(self, trade_ms=self.trade_ms[ta:tb], trade_price=self.trade_price[ta:tb],
                       trade_qty=self.trade_qty[ta:tb], trade_is_buy=self.trade_is_buy[ta:tb],
                       book_ms=self.book_ms[ba:bb], bid_px=self.bid_px[ba:bb], bid_qty=self.bid_qty[ba:bb],
                       ask_px=self.ask_px[ba:bb], ask_qty=self.ask_qty[ba:bb], touch_ms=self.touch_ms[ua:ub],
                       touch_bid=self.touch_bid[ua:ub], touch_ask=self.touch_ask[ua:ub])


class Book:
    """A price → size book per side, enough to rebuild a recording (not the bot's storage: no checks needed). The
    touch is kept incrementally: a full scan only when the best level itself is deleted."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bb = math.nan
        self._ba = math.nan

    def replace(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) > 0}
        self._bb = max(self.bids) if self.bids else math.nan
        self._ba = min(self.asks) if self.asks else math.nan

    def update(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]]) -> None:
        bb, ba = self._bb, self._ba
        side = self.bids
        for p, q in bids:
            fp, fq = float(p), float(q)
            if fq == 0.0:
                if side.pop(fp, None) is not None and fp == bb:
                    bb = math.nan  # the best left: rescan below
            else:
                side[fp] = fq
                if fp > bb:  # False while bb is NaN (a rescan is due anyway)
                    bb = fp
        side = self.asks
        for p, q in asks:
            fp, fq = float(p), float(q)
            if fq == 0.0:
                if side.pop(fp, None) is not None and fp == ba:
                    ba = math.nan
            else:
                side[fp] = fq
                if fp < ba:
                    ba = fp
        if bb != bb:
            bb = max(self.bids) if self.bids else math.nan
        if ba != ba:
            ba = min(self.asks) if self.asks else math.nan
        self._bb, self._ba = bb, ba

    def touch(self) -> tuple[float, float]:
        return self._bb, self._ba

    def top(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = []
        for items, rev in ((self.bids, True), (self.asks, False)):
            lv = heapq.nlargest(N_LEVELS, items.items()) if rev else heapq.nsmallest(N_LEVELS, items.items())
            px = np.full(N_LEVELS, np.nan)
            qty = np.full(N_LEVELS, np.nan)
            if lv:
                arr = np.asarray(lv, float)
                px[: len(arr)], qty[: len(arr)] = arr[:, 0], arr[:, 1]
            out += [px, qty]
        return out[0], out[1], out[2], out[3]

class BookSampler:
    """Collects the touch at every update and the top levels once per ``SAMPLE_MS``."""

    def __init__(self) -> None:
        self.touch: list[tuple[int, float, float]] = []
        self.samples: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.next_ms: int | None = None

    def on_update(self, book: Book, ms: int) -> None:
        bb, ba = book.touch()
        if not (bb < ba):  # empty side or crossed (should not happen in a consistent rebuild): not a sample
            return
        self.touch.append((ms, bb, ba))
        if self.next_ms is None:
            self.next_ms = ms - ms % SAMPLE_MS
        if ms >= self.next_ms:
            self.samples.append((ms, *book.top()))
            self.next_ms = ms - ms % SAMPLE_MS + SAMPLE_MS

    def arrays(self) -> tuple[np.ndarray, ...]:
        t = np.array([s[0] for s in self.samples], np.int64)
        cols = [np.array([s[k] for s in self.samples]).reshape(-1, N_LEVELS) for k in range(1, 5)]
        tt = np.array([x[0] for x in self.touch], np.int64)
        tb = np.array([x[1] for x in self.touch], float)
        ta = np.array([x[2] for x in self.touch], float)
        return (t, *cols, tt, tb, ta)


def grid_of(values: np.ndarray) -> float:
    """The grid a set of decimal values lives on (tick from prices, step from quantities), from their decimals."""
    v = np.unique(np.round(np.asarray(values, float), 10))
    for d in range(0, 11):
        g = 10.0**-d
        if np.allclose(v / g, np.round(v / g), rtol=0, atol=1e-6):
            # the coarsest multiple of this power of ten that still divides every value (e.g. 0.5 or 0.25)
            units = np.round(v / g).astype(np.int64)
            m = int(np.gcd.reduce(units[units > 0])) if (units > 0).any() else 1
            return round(g * m, 10)
    return 1e-10


# --------------------------------------------------------------------------------------------------- Binance USD-M
class _BnTrade(msgspec.Struct):
    T: int
    p: float
    q: float
    m: bool


class _BnDepth(msgspec.Struct):
    E: int
    U: int
    u: int
    pu: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]


class _BnTicker(msgspec.Struct):
    b: float
    a: float
    T: int = 0
    E: int = 0


class _BnSnapshot(msgspec.Struct):
    lastUpdateId: int  # Binance's field name
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class _BnEnvelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"")


_bn_env = msgspec.json.Decoder(_BnEnvelope)
_bn_trade = msgspec.json.Decoder(_BnTrade, strict=False)
_bn_depth = msgspec.json.Decoder(_BnDepth, strict=False)
_bn_ticker = msgspec.json.Decoder(_BnTicker, strict=False)
_bn_snap = msgspec.json.Decoder(_BnSnapshot, strict=False)


def read_binance_l2(path: Path) -> Recording:
    """A Binance USD-M L2 recording (one symbol). Diffs before the snapshot are skipped; a broken ``pu`` chain after it
    is an error naming the line (a rebuilt book across a gap would be silently wrong)."""
    trades: list[_BnTrade] = []
    tickers: list[_BnTicker] = []
    depth: list[tuple[int, _BnDepth]] = []
    snap: _BnSnapshot | None = None
    symbol = ""
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        _, sep, js = line.partition(b" ")
        if not sep:
            raise RecordingError(f"{path.name}:{lineno}: expected '<recv_ns> <json>'")
        try:
            env = _bn_env.decode(js)
            if not env.stream:
                snap = _bn_snap.decode(js)
                continue
            kind = env.stream.partition("@")[2]
            symbol = symbol or env.stream.partition("@")[0].upper()
            if kind == "trade":
                trades.append(_bn_trade.decode(env.data))
            elif kind.startswith("depth"):
                depth.append((lineno, _bn_depth.decode(env.data)))
            elif kind == "bookTicker":
                tickers.append(_bn_ticker.decode(env.data))
        except msgspec.DecodeError as exc:
            raise RecordingError(f"{path.name}:{lineno}: {exc}") from None
    if snap is None:
        raise RecordingError(f"{path.name}: no REST depth snapshot (lastUpdateId) in the recording")
    if not trades:
        raise RecordingError(f"{path.name}: no trades in the recording")
    book = Book()
    book.replace(snap.bids, snap.asks)
    last_u = snap.lastUpdateId
    synced = False
    sampler = BookSampler()
    for lineno, d in depth:
        if d.u < last_u:
            continue
        if not synced:
            if not (d.U <= last_u + 1 <= d.u or d.U <= last_u <= d.u):
                continue
            synced = True
        elif d.pu != last_u:
            raise RecordingError(f"{path.name}:{lineno}: depth diff chain broken (pu={d.pu}, previous u={last_u})")
        book.update(d.b, d.a)
        last_u = d.u
        sampler.on_update(book, d.E)
    bt, bp, bq, ap, aq, _, _, _ = sampler.arrays()
    tk = np.array([(t.T or t.E, t.b, t.a) for t in tickers], float).reshape(-1, 3)
    tk = tk[tk[:, 1] < tk[:, 2]]
    trades.sort(key=lambda t: t.T)
    tms = np.array([t.T for t in trades], np.int64)
    tp = np.array([t.p for t in trades], float)
    tq = np.array([t.q for t in trades], float)
    tick = grid_of(np.concatenate([tp, tk[:, 1]]))
    return Recording(symbol=symbol, venue="binance-usdm", source=path.name, tick=tick, step=grid_of(tq),
                     trade_ms=tms, trade_price=tp, trade_qty=tq,
                     trade_is_buy=np.array([not t.m for t in trades], bool), book_ms=bt, bid_px=bp, bid_qty=bq,
                     ask_px=ap, ask_qty=aq, touch_ms=tk[:, 0].astype(np.int64), touch_bid=tk[:, 1], touch_ask=tk[:, 2])


# ------------------------------------------------------------------------------------------------------- Bybit v5
def read_bybit_capture(path: Path) -> list[Recording]:
    """Every symbol of a Bybit v5 public capture that has both a book and trades, through the live decoder."""
    return bybit_recordings(iter_capture(path), path.name)


def bybit_recordings(frames: Iterable[tuple[float, list[MarketEvent]]], name: str, *,
                     need: tuple[str, ...] = ("book", "trades")) -> list[Recording]:
    """Per symbol, a :class:`Recording` from decoded Bybit frames (a capture or an order-book archive). ``need`` says
    which parts a symbol must have to be kept: an ob500 archive has no trades, so its ingest asks for the book only
    (the trade arrays are then empty)."""
    books: dict[str, Book] = {}
    samplers: dict[str, BookSampler] = {}
    trades: dict[str, list[tuple[np.ndarray, ...]]] = {}
    try:
        for _, events in frames:
            for ev in events:
                if isinstance(ev, TradeBatch):
                    trades.setdefault(ev.symbol, []).append((ev.ts, ev.price, ev.size, ev.is_buy))
                    continue
                if isinstance(ev, Trade):
                    trades.setdefault(ev.symbol, []).append(
                        (np.array([ev.ts]), np.array([ev.price]), np.array([ev.size]), np.array([ev.side == "Buy"])))
                    continue
                book = books.setdefault(ev.symbol, Book())
                if isinstance(ev, BookSnapshot):
                    book.replace(ev.bids, ev.asks)
                elif isinstance(ev, BookDelta):
                    book.update(ev.bids, ev.asks)
                samplers.setdefault(ev.symbol, BookSampler()).on_update(book, round(ev.ts * 1000))
    except FrameError as exc:
        raise RecordingError(str(exc)) from None
    out = []
    keep = set(trades) | set(samplers)
    if "trades" in need:
        keep &= set(trades)
    if "book" in need:
        keep &= set(samplers)
    for sym in sorted(keep):
        parts = trades.get(sym) or [tuple(np.empty(0, t) for t in (float, float, float, bool))]
        ts, tp, tq, tbuy = (np.concatenate(c) for c in zip(*parts, strict=True))
        order = np.argsort(ts, kind="stable")
        ts, tp, tq, tbuy = ts[order], tp[order].astype(float), tq[order].astype(float), tbuy[order].astype(bool)
        bt, bp, bq, ap, aq, tt, tb, ta = samplers.get(sym, BookSampler()).arrays()
        out.append(Recording(symbol=sym, venue="bybit-linear", source=name,
                             tick=grid_of(np.concatenate([tp, tb, ta])), step=grid_of(tq),
                             trade_ms=np.rint(ts * 1000).astype(np.int64), trade_price=tp, trade_qty=tq,
                             trade_is_buy=tbuy, book_ms=bt, bid_px=bp, bid_qty=bq, ask_px=ap, ask_qty=aq,
                             touch_ms=tt, touch_bid=tb, touch_ask=ta))
    if not out:
        raise RecordingError(f"{name}: no symbol with {' and '.join(n.replace('book', 'order-book') for n in need)} "
                             "frames")
    return out


# ---------------------------------------------------------------------------------------------------------- entry
def read_recording(path: str | Path, symbol: str | None = None) -> list[Recording]:
    """The recordings in ``path`` (format from its content), optionally only ``symbol``."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such file")
    head = next((ln for _, ln in _lines(p)), b"")
    if head.lstrip().startswith(b"{"):
        recs = read_bybit_capture(p)
    elif head.split(b" ", 1)[0].isdigit():
        recs = [read_binance_l2(p)]
    else:
        raise RecordingError(f"{p.name}:1: neither a Bybit capture line nor a Binance '<recv_ns> <json>' line")
    if symbol is not None:
        recs = [r for r in recs if r.symbol == symbol]
        if not recs:
            raise RecordingError(f"{p.name}: no symbol {symbol}")
    return recs


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of a gzip or plain file; a recording cut off mid-write yields its complete lines."""
    lineno = 0
    try:
        for lineno, line in enumerate(iter_lines(path), 1):
            yield lineno, line
    except zlib.error as exc:
        raise RecordingError(f"{path.name}:{lineno + 1}: corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise RecordingError(f"{path.name}: {exc}") from None
