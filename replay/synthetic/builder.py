"""SyntheticMarketBuilder: 1m candles → the bot's market events: a book update per intrabar point, trades per second.

Per candle i (open t): K points, point k covering (t + k·60/K, t + (k+1)·60/K] s. Its book update carries ts = start of
the interval + 1 ms; its trades lie strictly after it, inside the interval. Events are released like Bybit's frames:
trades in one ``TradeBatch`` per whole second (released at the end of that second, never after the end of their
point), the book update at the end of its first second together with that second's trades (book first). So the bot
sees at time t exactly the events stamped ≤ t at whole seconds, and every event of candle i has ts in (t, t+60].

Book events: a ``BookSnapshot`` at the first point of the run, of every UTC day and after a gap in the candles;
otherwise a ``BookDelta`` with only the changed levels (size 0 deletes a level that left the top 50).
``update_id`` = minute index · K + k + 1, contiguous over consecutive candles (a snapshot follows any gap).

Causality and determinism: every event at time t is a function of the path up to t, of candles < i through the causal
scales (scales.py) and of the seed; the exceptions forced by the candle's own constraints are listed where they arise
(path.py: spread narrowed next to an extreme; flow.py: the volume schedule and the units reserved for the points that
print the extremes) and measured by ``python -m calibration compare``'s leak probes. All draws are counter-based
hashes of (seed, symbol, candle time, column) or (price level, epoch) (rng.py), so ``candle_events(i)`` alone equals
candle i inside ``iter_batches``, and a run truncated after candle c emits exactly the first events of the full run.
Generation is vectorised per snapshot segment (≤ one UTC day).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.events import BookDelta, BookSnapshot, EventBatch, TradeBatch
from bot.instruments import Instrument
from replay.synthetic.book import (
    N_LEVELS,
    BookModel,
    Lattice,
    Points,
    StepScale,
    Touch,
    book_deltas,
    full_books,
    touch,
)
from replay.synthetic.candles import CANDLE_MS, Candles, snapshot_flags
from replay.synthetic.flow import MAX_FILLS_PER_MINUTE, FlowScales, TradeArrays, build_flow
from replay.synthetic.params import GeneratorParams
from replay.synthetic.path import RANGE_TO_STEP_SIGMA, PathTouch, build_paths, directions, touch_from_path
from replay.synthetic.profile import SymbolProfile
from replay.synthetic.rng import CandleDraws
from replay.synthetic.scales import CausalScales, ScalePrior, causal_scales

# draw purposes (keys of the counter-based streams)
_D_PATH_U, _D_BRIDGE, _D_BOOK_U, _D_BOOK_Z = 0x5A01, 0x5A02, 0x5A03, 0x5A04
DEFAULT_POINTS_PER_CANDLE = 12
"""A book update every 5 s (the setting ``backtest.intrabar_points_per_candle``): trades are released every second
whatever K is, each at its own ms; 12 keeps a 30-day replay near a minute of book work (60 costs ~2.5×, measured in
``benchmarks/replay_bench.py --points``)."""
_BLOCK_ROWS = 3600  # points per block of Python event construction (bounds memory and the GC pause)


@dataclass(frozen=True)
class ChunkArrays:
    """Numpy state of a generated chunk (exposed for tests and diagnostics)."""

    path: np.ndarray  # (N, K) ticks
    bid_ticks: np.ndarray  # (N·K, 50)
    bid_units: np.ndarray
    ask_ticks: np.ndarray
    ask_units: np.ndarray
    point_ms: np.ndarray  # (N·K,) release times
    book_ms: np.ndarray  # (N·K,) book event times
    update_id: np.ndarray  # (N·K,)
    trades: TradeArrays | None


@dataclass(frozen=True)
class _Core:
    path: np.ndarray
    point_ms: np.ndarray
    book_ms: np.ndarray
    update_id: np.ndarray
    ptouch: PathTouch | None = None
    pts: Points | None = None
    tch: Touch | None = None
    lattice: Lattice | None = None
    deep: StepScale | None = None
    trades: TradeArrays | None = None


def release_ms(ts_ms: np.ndarray, point_end_ms: np.ndarray) -> np.ndarray:
    """When an event is released: at the end of its whole second (publicTrade-like per-second batches), never after
    the end of its intrabar point."""
    return np.minimum(-(-np.asarray(ts_ms) // 1000) * 1000, point_end_ms)


def _ticks(x: np.ndarray, tick: float, what: str, symbol: str) -> np.ndarray:
    t = np.asarray(x, float) / tick
    r = np.rint(t)
    bad = np.abs(t - r) > 1e-6  # on the grid up to float representation error
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{symbol}: candle {what} {x[i]} at row {i} is not on the tick grid ({tick})")
    return r.astype(np.int64)


class SyntheticMarketBuilder:
    """Turns candles into ``(release_ts, EventBatch)`` pairs for the feed (see module docstring).

    ``profile`` is the report-facing whole-window summary; the generator does not use it (causal scales instead).
    ``far_deletes=False`` drops the deletes of levels that merely fall off the far end of the top 50: only a consumer
    that truncates to depth 50 after every update ends with the same book (a stale far level would otherwise come back
    inside the touch after a large move), so the default keeps them.
    """

    def __init__(self, instrument: Instrument, profile: SymbolProfile | None, params: GeneratorParams, seed: int,
                 points_per_candle: int = DEFAULT_POINTS_PER_CANDLE, pessimistic: bool = False,
                 candles: Candles | None = None,
                 far_deletes: bool = True, scale_prior: ScalePrior | None = None) -> None:
        if not 4 <= points_per_candle <= 600:
            raise ValueError(f"points_per_candle must be in [4, 600], got {points_per_candle}")
        self.instrument = instrument
        self.profile = profile
        self.params = params
        self.seed = int(seed)
        self.K = int(points_per_candle)
        self.pessimistic = bool(pessimistic)
        self.candles = candles
        self.far_deletes = bool(far_deletes)
        self.scale_prior = scale_prior
        self.model = BookModel.build(instrument, params, self.seed)
        self._pdec = instrument.price_decimals
        self._qdec = instrument.qty_decimals
        self._scales_cache: tuple[Candles, CausalScales] | None = None

    # ------------------------------------------------------------------------------------------------ public
    def calibrate_from_ws_stats(self, stats: Mapping[str, Any]) -> SyntheticMarketBuilder:
        """A new builder whose params are calibrated (see ``GeneratorParams.calibrate_from_ws_stats``)."""
        return SyntheticMarketBuilder(self.instrument, self.profile, self.params.calibrate_from_ws_stats(stats),
                                      self.seed, self.K, self.pessimistic, self.candles, self.far_deletes,
                                      self.scale_prior)

    def iter_batches(self, candles: Candles) -> Iterator[tuple[float, EventBatch]]:
        """All batches of the run in release order, generated one snapshot segment (≤ one UTC day) at a time."""
        self._check(candles)
        sc = self.scales(candles)
        edges = [*np.flatnonzero(snapshot_flags(candles.open_time_ms)).tolist(), len(candles)]
        for a, b in itertools.pairwise(edges):
            yield from self._events(candles, a, b, a, sc)

    def candle_events(self, i: int, candles: Candles | None = None) -> list[tuple[float, EventBatch]]:
        """The K batches of candle i, regenerated alone (identical to candle i inside ``iter_batches``)."""
        c = candles if candles is not None else self.candles
        if c is None:
            raise ValueError("candle_events needs candles (pass them here or to the constructor)")
        if not 0 <= i < len(c):
            raise IndexError(f"candle index {i} outside 0..{len(c) - 1}")
        self._check(c)
        sc = self.scales(c)
        a = i if sc.segment_start[i] == i else i - 1
        return list(self._events(c, a, i + 1, i, sc))

    def scales(self, candles: Candles) -> CausalScales:
        """The causal per-candle scales (cached for the last candles object: value i depends on candles ≤ i only)."""
        cached = self._scales_cache
        if cached is not None and cached[0] is candles:
            return cached[1]
        sc = causal_scales(candles, self.instrument, self.params, self.scale_prior)
        self._scales_cache = (candles, sc)
        return sc

    def generate(self, candles: Candles, a: int, b: int) -> ChunkArrays:
        """The numpy arrays of candles [a, b) with full (P, 50) books (the lattice of candle a's snapshot segment, so
        equal to the feed's books when [a, b) lies inside one segment)."""
        self._check(candles)
        core = self._core(candles, a, b, self.scales(candles), with_books=True)
        assert core.pts is not None and core.lattice is not None and core.deep is not None
        bt, bu, at, au = full_books(core.pts, self.model, core.lattice, core.deep, core.tch)
        return ChunkArrays(core.path, bt, bu, at, au, core.point_ms, core.book_ms, core.update_id, core.trades)

    def path_prices(self, candles: Candles, a: int, b: int) -> np.ndarray:
        """(N, K) float path prices of candles [a, b)."""
        return self._prices(self._core(candles, a, b, None, with_books=False).path)

    # ------------------------------------------------------------------------------------------------ internals
    def _check(self, candles: Candles) -> None:
        if candles.symbol != self.instrument.symbol:
            raise ValueError(f"candles are {candles.symbol}, builder is for {self.instrument.symbol}")
        candles.validate()

    def _prices(self, ticks: np.ndarray) -> np.ndarray:
        return np.round(ticks * self.instrument.tick, self._pdec)

    def _sizes(self, units: np.ndarray) -> np.ndarray:
        return np.round(units * self.instrument.step, self._qdec)

    def _core(self, c: Candles, a: int, b: int, sc: CausalScales | None, with_books: bool) -> _Core:
        K, p = self.K, self.params
        tick, sym = self.instrument.tick, c.symbol
        sl = c.slice(a, b)
        N = b - a
        o, h, lo, cl = (_ticks(x, tick, w, sym) for x, w in
                        ((sl.open, "open"), (sl.high, "high"), (sl.low, "low"), (sl.close, "close")))
        open_ms = sl.open_time_ms.astype(np.int64)
        draws = CandleDraws(self.seed, sym, open_ms)
        U = draws.uniform(_D_PATH_U, 1)
        prev_close = np.empty(N, np.int64)
        prev_close[1:] = cl[:-1]
        prev_close[0] = _ticks(c.close[a - 1:a], tick, "close", sym)[0] if a > 0 else o[0]
        low_first = None
        if self.pessimistic:
            prev_open = np.empty(N, np.int64)
            prev_open[1:] = o[:-1]
            prev_open[0] = _ticks(c.open[a - 1:a], tick, "open", sym)[0] if a > 0 else o[0]
            prev_dir = np.sign(prev_close - prev_open)
            natural = build_paths(o, h, lo, cl, K, draws.normal(_D_BRIDGE, K - 1))
            drawn = np.argmin(natural, axis=1) < np.argmax(natural, axis=1)
            low_first = np.where(prev_dir > 0, True, np.where(prev_dir < 0, False, drawn))
        path = build_paths(o, h, lo, cl, K, draws.normal(_D_BRIDGE, K - 1), low_first)
        kk = np.arange(K)
        point_ms = (open_ms[:, None] + ((kk + 1) * CANDLE_MS) // K).ravel()
        book_ms = (open_ms[:, None] + (kk * CANDLE_MS) // K + 1).ravel()
        update_id = ((open_ms // CANDLE_MS)[:, None] * K + kk + 1).ravel()
        if not with_books or sc is None:
            return _Core(path, point_ms, book_ms, update_id)
        first_dir = np.sign(o - prev_close)
        first_dir = np.where(first_dir == 0, np.where(U[:, 0] < 0.5, -1, 1), first_dir)
        d = directions(path, first_dir)
        Ub = draws.uniform(_D_BOOK_U, K)
        spread = self._spread_ticks(Ub)
        pt = touch_from_path(path, d, spread, h, lo)
        Zb = draws.normal(_D_BOOK_Z, 3 * K)
        cand = np.repeat(np.arange(a, b), K)
        prev = np.concatenate([prev_close[:, None], path[:, :-1]], axis=1)
        pts = Points(bid=pt.bid.ravel(), ask=pt.ask.ravel(), move_sign=np.sign(path - prev).ravel(),
                     z_rho=Zb[:, :K].ravel(), z_touch_bid=Zb[:, K:2 * K].ravel(), z_touch_ask=Zb[:, 2 * K:].ravel(),
                     t_ms=book_ms, touch_units=sc.touch_units[cand])
        tch = touch(pts, self.model)
        lattice = Lattice.around(self.model, float(sc.presence_q[a]), tch.bid, tch.ask)
        deep = StepScale.from_candles(c.open_time_ms[:b].astype(np.int64), sc.deep_units[:b],
                                      int(book_ms[0]) - self.model.refresh_ms, int(book_ms[-1]))
        vol_units = np.floor(sl.volume / self.instrument.step + 0.5).astype(np.int64)
        fs = FlowScales(volume_units=sc.recent_volume[a:b] / self.instrument.step, fill_units=sc.fill_units[a:b],
                        move_sigma=sc.range_ticks[a:b] / (RANGE_TO_STEP_SIGMA * np.sqrt(K - 1)),
                        range_ticks=sc.range_ticks[a:b],
                        min_units=self._min_units(sl.open))
        trades = build_flow(path=path, prev_close=prev_close, touch=pt, o=o, h=h, lo=lo, volume_units=vol_units,
                            open_ms=open_ms, scales=fs, draws=draws, params=p)
        return _Core(path, point_ms, book_ms, update_id, pt, pts, tch, lattice, deep, trades)

    def _min_units(self, price: np.ndarray) -> np.ndarray:
        """Qty steps of the instrument's minimum order notional at ``price`` (≥ 1)."""
        ins = self.instrument
        return np.maximum(1, np.ceil(float(ins.min_notional) / (price * ins.step) - 1e-9)).astype(np.int64)

    def _spread_ticks(self, u: np.ndarray) -> np.ndarray:
        cdf = np.cumsum(self.params.spread_ticks_pmf)
        cdf = cdf / cdf[-1]
        return 1 + np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)

    def _events(self, c: Candles, a: int, b: int, emit_from: int, sc: CausalScales
                ) -> Iterator[tuple[float, EventBatch]]:
        """Batches of candles [emit_from, b) of the chunk [a, b) whose first point is a snapshot."""
        core = self._core(c, a, b, sc, with_books=True)
        assert core.pts is not None and core.lattice is not None and core.deep is not None and core.trades is not None
        K, sym = self.K, c.symbol
        P = (b - a) * K
        r0 = (emit_from - a) * K
        bids, asks = book_deltas(core.pts, self.model, core.lattice, core.deep, core.tch, self.far_deletes)
        tr = core.trades
        tcut = np.searchsorted(tr.row, np.arange(P + 1))
        minute = (c.open_time_ms[a:b] // CANDLE_MS).astype(np.int64)
        tid = minute[tr.row // K] * MAX_FILLS_PER_MINUTE + tr.seq
        ts_s = tr.ts_ms / 1000.0
        px = self._prices(tr.price_ticks)
        qty = self._sizes(tr.units)
        book_ts = core.book_ms / 1000.0
        book_rel = release_ms(core.book_ms, core.point_ms)
        trade_rel = release_ms(tr.ts_ms, core.point_ms[tr.row])
        for lo in range(r0, P, _BLOCK_ROWS):
            yield from self._block(sym, lo, min(P, lo + _BLOCK_ROWS), book_rel, book_ts, core.update_id, bids, asks,
                                   (ts_s, px, qty, tr.is_buy, tid), trade_rel, tcut, core)

    def _block(self, sym: str, lo: int, hi: int, book_rel: np.ndarray, book_ts: np.ndarray, uid: np.ndarray,
               bids: Any, asks: Any, cols: tuple[np.ndarray, ...], trade_rel: np.ndarray, tcut: np.ndarray,
               core: _Core) -> Iterator[tuple[float, EventBatch]]:
        """Events of rows [lo, hi) in release order: the book structs (levels as lists), then the trades
        grouped by release second as array slices; a book and the trades of its first second share a release (the
        feed merges equal release times into one batch, book first).

        The release order and every number are computed per block with numpy; the event objects are made one batch
        at a time, as the feed asks for them. Made in bulk they would all be alive at once, and the cyclic GC would
        rescan those young containers (lists of levels, structs) a few times per block: made on demand, each dies
        before the next is built and the young generation stays small."""
        first = lo
        snap: BookSnapshot | None = None
        if lo == 0:  # chunk start: snapshot
            assert core.pts is not None and core.lattice is not None and core.deep is not None
            bt, bu, at, au = full_books(core.pts.rows(slice(0, 1)), self.model, core.lattice, core.deep)
            snap = BookSnapshot(sym, float(book_ts[0]), self._pairs(bt[0], bu[0]), self._pairs(at[0], au[0]),
                                int(uid[0]))
            first = 1
        lvs: list[np.ndarray] = [np.empty((0, 2))] * 2
        cuts: list[list[int]] = [[0], [0]]
        if first < hi:
            lvs, cuts = [], []
            for d in (bids, asks):  # delta rows r ≥ 1 live at cut[r-1]:cut[r]
                s, e = int(d.cut[first - 1]), int(d.cut[hi - 1])
                lv = np.empty((e - s, 2))
                lv[:, 0] = self._prices(d.ticks[s:e])
                lv[:, 1] = self._sizes(d.units[s:e])
                # as [price, size] lists (tolist of the row's slice): both consumers (the exchange's book and the
                # bot's storage) walk every level in Python, so an array would be converted twice per delta
                lvs.append(lv)
                cuts.append((d.cut[first - 1:hi] - s).tolist())
        d_ts = book_ts[first:hi].tolist()
        d_uid = uid[first:hi].tolist()
        ts, px, qty, buy, tid = cols
        s, e = int(tcut[lo]), int(tcut[hi])
        rel = trade_rel[s:e]
        g0 = np.flatnonzero(np.diff(rel)) + 1 if e > s else np.zeros(0, np.int64)
        g_start = np.concatenate([[0], g0]) if e > s else g0
        g_end = np.append(g_start[1:], e - s)
        # release order: by time; at equal times the book (kind 0) before the trades (kind 1)
        keys = np.concatenate([book_rel[lo:hi], rel[g_start]])
        kind = np.concatenate([np.zeros(hi - lo, np.int8), np.ones(len(g_start), np.int8)])
        order = np.lexsort((kind, keys)).tolist()
        times = (keys / 1000.0).tolist()
        n_books = hi - lo
        skip = first - lo  # the snapshot row, if any, comes before the delta rows
        gs, ge = (g_start + s).tolist(), (g_end + s).tolist()
        (blv, alv), (bcut, acut) = lvs, cuts
        for o in order:
            if o >= n_books:
                i, j = gs[o - n_books], ge[o - n_books]
                yield times[o], [TradeBatch(sym, ts[i:j], px[i:j], qty[i:j], buy[i:j], tid[i:j])]
            elif o < skip:
                assert snap is not None
                yield times[o], [snap]
            else:
                r = o - skip
                yield times[o], [BookDelta(sym, d_ts[r], blv[bcut[r]:bcut[r + 1]].tolist(),
                                           alv[acut[r]:acut[r + 1]].tolist(), d_uid[r])]

    def _pairs(self, ticks: np.ndarray, units: np.ndarray) -> list[tuple[float, float]]:
        return list(zip(self._prices(ticks).tolist(), self._sizes(units).tolist(), strict=True))


__all__ = ["DEFAULT_POINTS_PER_CANDLE", "N_LEVELS", "ChunkArrays", "SyntheticMarketBuilder"]
