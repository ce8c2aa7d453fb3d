"""SyntheticMarketBuilder: 1m candles → the bot's market events, one batch per intrabar point.

Per candle i (open t): K points released at t + (k+1)·60/K s (floored to the ms; the last at the candle close). The
batch of point k = [book update, prints of that point], ts-ordered: the book carries ts = start of the point's
interval + 1 ms, the prints lie strictly after it and at most at the release time; every event of candle i has
ts in (t, t+60].

Book events: a ``BookSnapshot`` at the first point of the run, of every UTC day and after a gap in the candles;
otherwise a ``BookDelta`` with only the changed levels (size 0 deletes a level that left the top 50).
``update_id`` = minute index · K + k + 1, contiguous over consecutive candles (a snapshot follows any gap).

Determinism: candle i draws from its own seeded stream (see rng.py), level noise is hashed from the price and time,
so ``candle_events(i)`` alone equals candle i inside ``iter_batches``. Generation is vectorised per UTC day; only the
final struct construction is per event.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.events import BookDelta, BookSnapshot, EventBatch, Trade
from bot.instruments import Instrument
from replay.synthetic.book import N_LEVELS, BookModel, book_at
from replay.synthetic.candles import CANDLE_MS, DAY_MS, Candles
from replay.synthetic.params import GeneratorParams
from replay.synthetic.path import build_paths, low_first_probability
from replay.synthetic.profile import SymbolProfile
from replay.synthetic.rng import candle_streams
from replay.synthetic.trades import TRADE_UNIFORMS, build_trades

_BIG = np.int64(1) << np.int64(40)


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
    trades: Any  # TradeArrays


def _ticks(x: np.ndarray, tick: float, what: str, symbol: str) -> np.ndarray:
    t = np.asarray(x, float) / tick
    r = np.rint(t)
    bad = np.abs(t - r) > 1e-6  # on the grid up to float representation error
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{symbol}: candle {what} {x[i]} at row {i} is not on the tick grid ({tick})")
    return r.astype(np.int64)


class SyntheticMarketBuilder:
    """Turns candles into ``(release_ts, EventBatch)`` pairs for the feed (see module docstring)."""

    def __init__(self, instrument: Instrument, profile: SymbolProfile, params: GeneratorParams, seed: int,
                 points_per_candle: int = 12, pessimistic: bool = False, candles: Candles | None = None) -> None:
        if points_per_candle < 4:
            raise ValueError(f"points_per_candle must be >= 4, got {points_per_candle}")
        if points_per_candle * params.max_prints_per_point >= 10_000:
            raise ValueError("points_per_candle × max_prints_per_point must stay below 10000 (trade id layout)")
        self.instrument = instrument
        self.profile = profile
        self.params = params
        self.seed = int(seed)
        self.K = int(points_per_candle)
        self.pessimistic = bool(pessimistic)
        self.candles = candles
        self.model = BookModel.build(instrument, profile, params, self.seed)
        self._M = self.K * params.max_prints_per_point
        self._pdec = instrument.price_decimals
        self._qdec = instrument.qty_decimals

    # ------------------------------------------------------------------------------------------------ public
    def calibrate_from_ws_stats(self, stats: Mapping[str, Any]) -> SyntheticMarketBuilder:
        """A new builder whose params are calibrated (see ``GeneratorParams.calibrate_from_ws_stats``)."""
        return SyntheticMarketBuilder(self.instrument, self.profile, self.params.calibrate_from_ws_stats(stats),
                                      self.seed, self.K, self.pessimistic, self.candles)

    def iter_batches(self, candles: Candles) -> Iterator[tuple[float, EventBatch]]:
        """All batches of the run in release order, generated one UTC day at a time."""
        self._check(candles)
        day = candles.open_time_ms // DAY_MS
        bounds = np.flatnonzero(np.diff(day)) + 1
        edges = [0, *bounds.tolist(), len(candles)]
        for a, b in itertools.pairwise(edges):
            yield from self._events(candles, a, b, emit_from=a)

    def candle_events(self, i: int, candles: Candles | None = None) -> list[tuple[float, EventBatch]]:
        """The K batches of candle i, regenerated alone (identical to candle i inside ``iter_batches``)."""
        c = candles if candles is not None else self.candles
        if c is None:
            raise ValueError("candle_events needs candles (pass them here or to the constructor)")
        if not 0 <= i < len(c):
            raise IndexError(f"candle index {i} outside 0..{len(c) - 1}")
        self._check(c)
        a = i if self._snapshot_at(c, i) else i - 1
        return list(self._events(c, a, i + 1, emit_from=i))

    def generate(self, candles: Candles, a: int, b: int) -> ChunkArrays:
        """The numpy arrays of candles [a, b) (chunk start = snapshot)."""
        return self._arrays(candles, a, b)

    def path_prices(self, candles: Candles, a: int, b: int) -> np.ndarray:
        """(N, K) float path prices of candles [a, b)."""
        return self._prices(self._arrays(candles, a, b, with_books=False).path)

    # ------------------------------------------------------------------------------------------------ internals
    def _check(self, candles: Candles) -> None:
        if candles.symbol != self.instrument.symbol:
            raise ValueError(f"candles are {candles.symbol}, builder is for {self.instrument.symbol}")
        candles.validate()

    @staticmethod
    def _snapshot_at(candles: Candles, i: int) -> bool:
        t = candles.open_time_ms
        return i == 0 or int(t[i]) % DAY_MS == 0 or int(t[i]) - int(t[i - 1]) != CANDLE_MS

    def _prices(self, ticks: np.ndarray) -> np.ndarray:
        return np.round(ticks * self.instrument.tick, self._pdec)

    def _arrays(self, c: Candles, a: int, b: int, with_books: bool = True) -> ChunkArrays:
        K, M, p = self.K, self._M, self.params
        tick, sym = self.instrument.tick, c.symbol
        sl = c.slice(a, b)
        N = b - a
        o, h, lo, cl = (_ticks(x, tick, w, sym) for x, w in
                        ((sl.open, "open"), (sl.high, "high"), (sl.low, "low"), (sl.close, "close")))
        n_u = 3 + 2 * K + TRADE_UNIFORMS * M
        n_z = 4 * K + 1 + M
        U, Z = candle_streams(self.seed, sym, sl.open_time_ms, n_u, n_z)
        prev_close = np.empty(N, np.int64)
        prev_close[1:] = cl[:-1]
        prev_close[0] = _ticks(c.close[a - 1:a], tick, "close", sym)[0] if a > 0 else o[0]
        p_low = low_first_probability(o, h, lo, cl, p.extreme_order_logit_intercept, p.extreme_order_logit_slope)
        low_first = U[:, 0] < p_low
        if self.pessimistic:
            prev_open = np.empty(N, np.int64)
            prev_open[1:] = o[:-1]
            prev_open[0] = _ticks(c.open[a - 1:a], tick, "open", sym)[0] if a > 0 else o[0]
            prev_dir = np.sign(prev_close - prev_open)
            low_first = np.where(prev_dir > 0, True, np.where(prev_dir < 0, False, low_first))
        path = build_paths(o, h, lo, cl, K, low_first, U[:, 1], U[:, 2], Z[:, :K], p.bridge_noise)
        open_ms = sl.open_time_ms.astype(np.int64)
        kk = np.arange(K)
        point_ms = (open_ms[:, None] + ((kk + 1) * CANDLE_MS) // K).ravel()
        book_ms = (open_ms[:, None] + (kk * CANDLE_MS) // K + 1).ravel()
        update_id = ((open_ms // CANDLE_MS)[:, None] * K + kk + 1).ravel()
        if not with_books:
            return ChunkArrays(path, *(np.empty(0),) * 4, point_ms, book_ms, update_id, None)  # type: ignore[arg-type]
        flat = path.ravel()
        prev = np.concatenate([prev_close[:, None], path[:, :-1]], axis=1).ravel()
        bt, bu, at, au = book_at(flat, prev, U[:, 3:3 + K].ravel(), U[:, 3 + K:3 + 2 * K].ravel(),
                                 Z[:, K:2 * K].ravel(), Z[:, 2 * K:3 * K].ravel(), Z[:, 3 * K:4 * K].ravel(),
                                 book_ms, self.model)
        direction = np.where(bt[:, 0] == flat, -1, 1).reshape(N, K)
        vol_units = np.floor(sl.volume / self.instrument.step + 0.5).astype(np.int64)
        trades = build_trades(path=path, prev_close=prev_close, h=h, lo=lo, bid=bt[:, 0].reshape(N, K),
                              ask=at[:, 0].reshape(N, K), direction=direction, volume=sl.volume,
                              volume_units=vol_units, open_ms=open_ms, mean_volume=self.profile.mean_volume_per_min,
                              U=U[:, 3 + 2 * K:], z_count=Z[:, 4 * K], z_size=Z[:, 4 * K + 1:], params=p)
        return ChunkArrays(path, bt, bu, at, au, point_ms, book_ms, update_id, trades)

    def _side_changes(self, t: np.ndarray, u: np.ndarray, asc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, ticks, units) of the levels that changed between consecutive rows (row r vs r−1, r ≥ 1)."""
        R = t.shape[0] - 1
        base = t.min() - 1 if asc else t.max() + 1
        rel = (t - base) if asc else (base - t)
        rid = np.arange(R, dtype=np.int64)[:, None] * _BIG
        prev_k = (rel[:-1] + rid).ravel()
        cur_k = (rel[1:] + rid).ravel()
        prev_u, cur_u = u[:-1].ravel(), u[1:].ravel()
        idx = np.minimum(np.searchsorted(prev_k, cur_k), len(prev_k) - 1)
        same = (prev_k[idx] == cur_k) & (prev_u[idx] == cur_u)
        jdx = np.minimum(np.searchsorted(cur_k, prev_k), len(cur_k) - 1)
        gone = cur_k[jdx] != prev_k
        rows_c = cur_k[~same] // _BIG + 1
        rows_d = prev_k[gone] // _BIG + 1
        rows = np.concatenate([rows_c, rows_d])
        ticks = np.concatenate([t[1:].ravel()[~same], t[:-1].ravel()[gone]])
        units = np.concatenate([cur_u[~same], np.zeros(int(gone.sum()), np.int64)])
        order = np.argsort(rows, kind="stable")
        return rows[order], ticks[order], units[order]

    def _levels(self, rows: np.ndarray, ticks: np.ndarray, units: np.ndarray, n_rows: int
                ) -> tuple[list[tuple[float, float]], list[int]]:
        pairs = list(zip(self._prices(ticks).tolist(),
                         np.round(units * self.instrument.step, self._qdec).tolist(), strict=True))
        cuts = np.searchsorted(rows, np.arange(n_rows + 1)).tolist()
        return pairs, cuts

    def _events(self, c: Candles, a: int, b: int, emit_from: int) -> Iterator[tuple[float, EventBatch]]:
        ch = self._arrays(c, a, b)
        K, sym = self.K, c.symbol
        P = (b - a) * K
        snap_rows = [r for r in range(0, P, K) if r == 0 or self._snapshot_at(c, a + r // K)]
        bid_rows, bid_t, bid_u = self._side_changes(ch.bid_ticks, ch.bid_units, asc=False)
        ask_rows, ask_t, ask_u = self._side_changes(ch.ask_ticks, ch.ask_units, asc=True)
        bids, bcut = self._levels(bid_rows, bid_t, bid_u, P)
        asks, acut = self._levels(ask_rows, ask_t, ask_u, P)
        tr = ch.trades
        tprice = self._prices(tr.price_ticks).tolist()
        tsize = np.round(tr.units * self.instrument.step, self._qdec).tolist()
        tts = (tr.ts_ms / 1000.0).tolist()
        tside = np.where(tr.is_buy, "Buy", "Sell").tolist()
        minute = (c.open_time_ms[a:b] // CANDLE_MS).astype(np.int64)
        tid = (minute[tr.row // K] * 10_000 + tr.seq).astype(str).tolist()
        trades = [Trade(sym, ts_, p_, s_, sd, i_) for ts_, p_, s_, sd, i_ in zip(tts, tprice, tsize, tside, tid,
                                                                                  strict=True)]
        tcut = np.searchsorted(tr.row, np.arange(P + 1)).tolist()
        release = (ch.point_ms / 1000.0).tolist()
        book_ts = (ch.book_ms / 1000.0).tolist()
        uid = ch.update_id.tolist()
        snaps = set(snap_rows)
        r0 = (emit_from - a) * K
        for r in range(r0, P):
            if r in snaps:
                bp = self._prices(ch.bid_ticks[r]).tolist()
                ap = self._prices(ch.ask_ticks[r]).tolist()
                bq = np.round(ch.bid_units[r] * self.instrument.step, self._qdec).tolist()
                aq = np.round(ch.ask_units[r] * self.instrument.step, self._qdec).tolist()
                ev: BookSnapshot | BookDelta = BookSnapshot(sym, book_ts[r], list(zip(bp, bq, strict=True)),
                                                            list(zip(ap, aq, strict=True)), uid[r])
            else:
                ev = BookDelta(sym, book_ts[r], bids[bcut[r]:bcut[r + 1]], asks[acut[r]:acut[r + 1]], uid[r])
            batch: EventBatch = [ev]
            batch.extend(trades[tcut[r]:tcut[r + 1]])
            yield release[r], batch


__all__ = ["N_LEVELS", "ChunkArrays", "SyntheticMarketBuilder"]
