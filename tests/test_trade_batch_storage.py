"""TradeBatch ingest: the same trades as ``Trade`` events or as one ``TradeBatch`` per queue item give the same tape,
the same query results (to the bit) and the same issues; plus the id rules specific to batches."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.clock import FixedClock
from bot.events import BookSnapshot, Trade, TradeBatch
from bot.storage import DataStorage
from bot.storage.ingest import SMALL_ARRAY_BATCH, append_batch, append_trades
from bot.storage.tape import TradeTape
from bot.storage.trade_ids import ID_GENERATION
from settings import Settings

INF = math.inf
NAN = math.nan
SYM = "BTCUSDT"
T0 = 1_786_310_000.0
HSET = hsettings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

Rows = tuple[list[float], list[float], list[float], list[bool], list[Any]]


@st.composite
def _script(draw: st.DrawFn) -> dict:
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "chunks": draw(st.integers(1, 30)),
        "max_chunk": draw(st.sampled_from([1, 3, SMALL_ARRAY_BATCH + 1, 40, 250])),
        "dup_rate": draw(st.sampled_from([0.0, 0.1, 0.5])),
        "bad_rate": draw(st.sampled_from([0.0, 0.0, 0.05, 0.4])),
        "back_rate": draw(st.sampled_from([0.0, 0.2])),
        "shuffle_rate": draw(st.sampled_from([0.0, 0.3])),
        "int_ids": draw(st.booleans()),
    }


class _Gen:
    """Random chunks of trades. With ``int_ids`` the ids follow what the high-water mark assumes of a synthetic feed
    (an id never stored is above every id stored before: repeats only re-deliver stored ids); without, ids are
    strings and repeat anything, the same id set rules as ``Trade`` events."""

    def __init__(self, script: dict) -> None:
        self.s = script
        self.rng = np.random.default_rng(script["seed"])
        self.t = T0
        self.price = 65_000.0
        self.next_id = 1
        self.stored: list[int] = []  # ids of valid rows delivered so far
        self.any_ids: list[int] = []

    def chunk(self) -> tuple[Rows, list[bool]]:
        rng, s = self.rng, self.s
        m = int(rng.integers(0, s["max_chunk"] + 1))
        if rng.random() < 0.2:
            self.t += 1500.0  # quiet spells: storage retention (1 h) prunes
        dts = rng.exponential(0.05, m)
        dts[rng.random(m) < 0.3] = 0.0
        back = rng.random(m) < s["back_rate"]
        dts[back] = -rng.exponential(0.5, int(back.sum()))
        ts = (self.t + np.cumsum(dts)).tolist()
        self.t = max([self.t, *ts])
        prices = (self.price + 0.1 * np.cumsum(rng.integers(-3, 4, m))).round(1).tolist()
        if m:
            self.price = prices[-1]
        sizes = (np.round(rng.lognormal(-4, 1.2, m), 3) + 0.001).tolist()
        buys = (rng.random(m) < 0.5).tolist()
        valid = [True] * m
        for i in np.flatnonzero(rng.random(m) < s["bad_rate"]).tolist():
            valid[i] = False
            col = int(rng.integers(0, 3))
            bad = float(rng.choice([NAN, INF, -INF, 0.0, -1.0]))
            if col == 0:
                ts[i] = bad if not -1.0 <= bad <= 0.0 else NAN
            elif col == 1:
                prices[i] = bad
            else:
                sizes[i] = bad
        ids: list[int] = []
        fresh_at: list[int] = []
        for i in range(m):
            pool = self.stored if s["int_ids"] else self.any_ids
            if pool and rng.random() < s["dup_rate"]:
                ids.append(int(rng.choice(pool)))
            else:
                ids.append(self.next_id)
                fresh_at.append(i)
                self.next_id += 1
            self.any_ids.append(ids[-1])
        if len(fresh_at) > 1 and rng.random() < s["shuffle_rate"]:  # ids of one frame out of order
            perm = rng.permutation([ids[i] for i in fresh_at]).tolist()
            for i, x in zip(fresh_at, perm, strict=True):
                ids[i] = x
        self.stored.extend(x for x, ok in zip(ids, valid, strict=True) if ok)
        return (ts, prices, sizes, buys, ids), valid


def _as_trades(rows: Rows) -> list[Trade]:
    return [Trade(SYM, t, p, v, "Buy" if b else "Sell", f"t{i}") for t, p, v, b, i in zip(*rows, strict=True)]


def _as_batch(rows: Rows, int_ids: bool) -> TradeBatch:
    ts, ps, vs, buys, ids = rows
    tid = np.array(ids, dtype=np.int64) if int_ids else np.array([f"t{i}" for i in ids], dtype=object)
    return TradeBatch(SYM, np.array(ts, dtype=np.float64), np.array(ps, dtype=np.float64),
                      np.array(vs, dtype=np.float64), np.array(buys, dtype=bool), tid)


def _same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to NaN (empty-window price stats)."""
    if isinstance(a, msgspec.Struct):
        return type(a) is type(b) and _same(msgspec.structs.astuple(a), msgspec.structs.astuple(b))
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def _view_cols(v: Any) -> list[np.ndarray]:
    return [v.ts, v.price, v.size, v.notional, v.is_buy, v.seq]


def _same_views(a: Any, b: Any) -> None:
    for x, y in zip(_view_cols(a), _view_cols(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def _observe(ds: DataStorage, now: float, rng: np.random.Generator) -> list[Any]:
    """Everything a consumer can read, in a fixed query order (queries prune, so each storage gets the same
    sequence): issues, counters, every column of the tape, window aggregates over many edges, cursors."""
    out: list[Any] = [list(ds.issues), dict(ds.counters), ds.last_seq(SYM), ds.last_price(SYM)]
    out.append([c.copy() for c in _view_cols(ds.trades_since(SYM, -INF))])
    edges = [-INF, now - 3000.0, now - 3.0, now - 0.5, float(rng.uniform(now - 5, now)), now, INF]
    for t0 in edges:
        for t1 in edges:
            out.append((ds.side_sums(SYM, t0, t1), ds.price_stats(SYM, t0, t1), ds.count_between(SYM, t0, t1)))
    out.append(ds.side_sums_multi(SYM, edges[1:4], INF))
    out.append([c.copy() for c in _view_cols(ds.last_n(SYM, int(rng.integers(0, 30))))])
    seq = int(rng.integers(0, ds.last_seq(SYM) + 2))
    out.append([c.copy() for c in _view_cols(ds.trades_after_seq(SYM, seq))])
    return out


def _assert_same(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            for cx, cy in zip(x, y, strict=True):
                assert cx.dtype == cy.dtype
                np.testing.assert_array_equal(cx, cy)
        else:
            assert _same(x, y), (x, y)


@HSET
@given(script=_script())
def test_trade_events_and_trade_batches_give_identical_storage(script: dict) -> None:
    """Per chunk: one ``apply_batch`` of ``Trade`` events vs one of a ``TradeBatch`` (string ids as an object array,
    and int64 ids when the script follows the high-water-mark rule); same queries interleaved on all storages."""
    gen = _Gen(script)
    clock = FixedClock(T0)
    settings = Settings()
    ref = DataStorage(settings, clock)
    others = [DataStorage(settings, clock)] + ([DataStorage(settings, clock)] if script["int_ids"] else [])
    qrng = np.random.default_rng(script["seed"] + 1)
    stored = 0
    for _ in range(script["chunks"]):
        rows, valid = gen.chunk()
        clock.set(gen.t + float(qrng.uniform(0, 3.0)))
        ref.apply_batch(_as_trades(rows))  # type: ignore[arg-type]
        others[0].apply_batch([_as_batch(rows, int_ids=False)])
        if script["int_ids"]:
            others[1].apply_batch([_as_batch(rows, int_ids=True)])
        stored += sum(valid)
        probe = int(qrng.integers(0, 2**31))
        expected = _observe(ref, clock.now(), np.random.default_rng(probe))
        for other in others:
            _assert_same(expected, _observe(other, clock.now(), np.random.default_rng(probe)))
    if script["dup_rate"] == 0.0:
        assert ref.last_seq(SYM) == stored  # nothing valid was lost: the comparison covered real data


@HSET
@given(script=_script())
def test_tape_reallocation_gives_identical_columns_and_sums(script: dict) -> None:
    """A tiny tape capacity: many reallocations (and so rebased prefix sums), with batches that fit in the free part
    (staged path) and batches that do not."""
    gen = _Gen({**script, "int_ids": True})
    tapes = [TradeTape(20.0, capacity=64) for _ in range(3)]
    for _ in range(script["chunks"]):
        rows, _ = gen.chunk()
        now = gen.t + 1.0
        counts = [append_trades(tapes[0], _as_trades(rows), now), append_batch(tapes[1], _as_batch(rows, False), now),
                  append_batch(tapes[2], _as_batch(rows, True), now)]
        assert counts[0] == counts[1] == counts[2]
        seen = []
        for tape in tapes:
            out: list[Any] = [[c.copy() for c in _view_cols(tape.since(-INF))]]
            for t0 in (-INF, now - 5.0, now - 1.0):
                out.append((tape.side_sums(t0, INF), tape.price_stats(t0, INF)))
            out.append((tape.cap, tape.lo, tape.n, tape.seq0, tape.ref, tape.last_ts, tape.last_price))
            seen.append(out)
        _assert_same(seen[0], seen[1])
        _assert_same(seen[0], seen[2])


# --- rules ----------------------------------------------------------------------------------------------------------


def _batch(ts: list[float], ids: list[int] | list[str], price: float | list[float] = 100.0,
           size: float | list[float] = 1.0, buy: bool | list[bool] = True, sym: str = SYM) -> TradeBatch:
    m = len(ts)

    def col(x: object, dtype: type) -> np.ndarray:
        return np.array(x if isinstance(x, list) else [x] * m, dtype=dtype)

    tid = np.array(ids, dtype=object if ids and isinstance(ids[0], str) else np.int64)
    return TradeBatch(sym, np.array(ts, dtype=np.float64), col(price, np.float64), col(size, np.float64),
                      col(buy, bool), tid)


def _storage(symbols: list[str] | None = None) -> DataStorage:
    return DataStorage(Settings(), FixedClock(T0), symbols)


def test_int_ids_at_or_below_the_high_water_mark_are_duplicates() -> None:
    ds = _storage()
    big = list(range(10, 60))
    ds.apply_batch([_batch([T0 + 0.01 * i for i in range(50)], big)])
    ds.apply_batch([_batch([T0 + 1, T0 + 1.1], [59, 60])])  # 59 was seen: dropped
    ds.apply_batch([_batch([T0 + 2], [3])])  # below the mark: a duplicate, though never seen (ids only increase)
    ds.apply_batch([_batch([T0 + 3] * 8, [61, 62, 63, 64, 65, 66, 67, 68])])
    assert ds.last_seq(SYM) == 50 + 1 + 8
    assert [i.detail for i in ds.issues] == ["1 trade(s) with an already-seen id dropped"] * 2
    assert ds.trades_since(SYM, T0 + 1).ts.tolist() == [T0 + 1.1] + [T0 + 3] * 8


def test_unordered_int_ids_fall_back_to_exact_dedup() -> None:
    """ids that do not strictly increase inside a batch: each id above the mark is kept once, at first sighting;
    the mark then moves to the largest id kept."""
    for ids in ([105, 103, 104, 103, 101, 99], [105, 103, 104, 103, 101, 99] * 8):
        ds = _storage()
        ds.apply_batch([_batch([T0], [100])])
        n = len(ids)
        ds.apply_batch([_batch([T0 + 0.1 * i for i in range(n)], ids, price=[100.0 + i for i in range(n)])])
        assert ds.trades_since(SYM, -INF).price.tolist() == [100.0, 100.0, 101.0, 102.0, 104.0]
        (issue,) = ds.issues
        assert issue.kind == "duplicate_trade" and issue.detail.startswith(f"{n - 4} trade(s)")
        ds.apply_batch([_batch([T0 + 9], [104]), _batch([T0 + 9], [106])])
        assert ds.last_seq(SYM) == 6 and ds.counters["duplicate_trade"] == 2


def test_batches_do_not_modify_their_columns_and_clamp_ts() -> None:
    ds = _storage()
    ds.apply_batch([_batch([T0 + 5], [1])])
    b = _batch([T0 + 6, T0 + 3, T0 + 7, T0 + 1] * 5, list(range(2, 22)))
    before = [c.copy() for c in (b.ts, b.price, b.size, b.is_buy, b.trade_id)]
    ds.apply_batch([b])
    for c, c0 in zip((b.ts, b.price, b.size, b.is_buy, b.trade_id), before, strict=True):
        np.testing.assert_array_equal(c, c0)
    assert ds.trades_since(SYM, -INF).ts.tolist() == [T0 + 5, T0 + 6, T0 + 6, T0 + 7, T0 + 7] + [T0 + 7] * 16


def test_bad_rows_in_a_batch_are_dropped_and_reported_once() -> None:
    ds = _storage()
    n = 12
    price = [100.0] * n
    size = [1.0] * n
    ts = [T0 + i for i in range(n)]
    price[1], price[2], size[3], size[4], ts[5] = NAN, -1.0, 0.0, INF, -INF
    ids: list[str] = [f"s{i}" for i in range(n)]
    ids[6] = ""
    ds.apply_batch([_batch(ts, ids, price=price, size=size)])
    assert ds.last_seq(SYM) == n - 6
    (issue,) = ds.issues
    assert (issue.kind, issue.detail) == ("bad_trade", "6 trade(s) with invalid price/size/ts/side/id dropped")
    ds.apply_batch([_batch([T0 + 20], [""])])  # the tiny-batch path reports the same way
    assert ds.counters["bad_trade"] == 2 and ds.last_seq(SYM) == n - 6


def test_mixed_queue_item_keeps_arrival_order_per_tape() -> None:
    ds = _storage()
    ds.apply_batch([
        Trade(SYM, T0, 100.0, 1.0, "Buy", "a"),
        _batch([T0 + 1, T0 + 2], ["b", "c"], price=[101.0, 102.0]),
        BookSnapshot(SYM, T0, [(99.0, 1.0)], [(101.0, 1.0)], 10),
        Trade(SYM, T0 + 3, 103.0, 1.0, "Sell", "d"),
        _batch([T0 + 4], ["c"], price=104.0),  # duplicate of a batch id: string ids share one id memory
        _batch([T0 + 4], [7], price=105.0, sym="ETHUSDT"),
    ])
    assert ds.trades_since(SYM, -INF).price.tolist() == [100.0, 101.0, 102.0, 103.0]
    assert ds.trades_since("ETHUSDT", -INF).price.tolist() == [105.0]
    assert ds.mid(SYM) == 100.0 and ds.counters["duplicate_trade"] == 1


def test_unknown_symbol_empty_and_ragged_batches() -> None:
    ds = _storage([SYM])
    ds.apply_batch([_batch([T0, T0], [1, 2], sym="ETHUSDT")])
    ds.apply_batch([_batch([], [])])
    ragged = TradeBatch(SYM, np.array([T0, T0]), np.array([1.0]), np.array([1.0, 1.0]), np.array([True, True]),
                        np.array([1, 2]))
    ds.apply_batch([ragged])
    assert [(i.kind, i.detail) for i in ds.issues] == [
        ("unknown_symbol", "2 trade(s) for an unconfigured symbol"),
        ("bad_trade", "2 trade(s) in a batch with columns of unequal length dropped"),
    ]
    assert ds.last_seq(SYM) == 0


def test_single_id_memory_rotates_like_the_set_path() -> None:
    """``is_new_id`` (one-print frames) and ``filter_ids`` remember and forget string ids identically, across the
    two-generation rotation (ids older than two generations are forgotten by both)."""
    a, b = TradeTape(60.0), TradeTape(60.0)
    rng = np.random.default_rng(3)
    for k in range(25_000):
        tid = f"x{k - int(rng.integers(0, 3)) * int(rng.integers(0, 12_000))}"
        assert (a.filter_ids([tid]) is None) == b.is_new_id(tid), k
    assert (a._ids_cur, a._ids_prev) == (b._ids_cur, b._ids_prev)
    assert a._ids_prev and len(a._ids_cur) + len(a._ids_prev) < 2 * ID_GENERATION  # rotated: memory bounded
