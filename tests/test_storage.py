"""DataStorage: trade tape against brute force (hypothesis), range min/max, ingest rules, book rules, spoof tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, Trade
from bot.storage import DataStorage, SideSums, SuspiciousOrder
from bot.storage.book import OrderBook
from bot.storage.minmax import BLOCK, SUPER, RangeMinMax
from bot.storage.tape import TradeTape
from settings import Settings

INF = math.inf
HSET = hsettings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# --- range min/max ----------------------------------------------------------------------------------------------


@HSET
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40 * BLOCK), max_chunk=st.sampled_from([1, 7, 50, 500, 5000]))
def test_range_minmax_matches_numpy(seed: int, n: int, max_chunk: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.empty(n + 5)
    src = np.cumsum(rng.normal(size=n))
    mm = RangeMinMax(values)
    done = 0
    while done < n:
        m = min(n - done, int(rng.integers(1, max_chunk + 1)))
        values[done : done + m] = src[done : done + m]
        mm.extend(done + m)
        done += m
        for _ in range(5):
            a = int(rng.integers(0, done))
            b = int(rng.integers(a + 1, done + 1))
            assert mm.query(a, b) == (src[a:b].min(), src[a:b].max())
    for a, b in [(0, n), (n - 1, n), (0, 1), (BLOCK - 1, min(n, 3 * BLOCK + 1))]:
        if a < b <= n:
            assert mm.query(a, b) == (src[a:b].min(), src[a:b].max())


def test_range_minmax_across_superblocks() -> None:
    # several superblocks (the sparse table over them) with small, block-sized and bulk updates
    rng = np.random.default_rng(11)
    n = 7 * SUPER * BLOCK + 37
    src = np.cumsum(rng.normal(size=n))
    values = np.empty(n)
    mm = RangeMinMax(values)
    done = 0
    while done < n:
        m = min(n - done, int(rng.choice([1, 29, BLOCK, 700, 5 * SUPER * BLOCK])))
        values[done : done + m] = src[done : done + m]
        mm.extend(done + m)
        done += m
        ends = [*rng.integers(1, done + 1, 40).tolist(), done]
        for b in ends:
            for a in (0, int(rng.integers(0, b)), b - 1, max(0, b - SUPER * BLOCK - 5)):
                assert mm.query(a, b) == (src[a:b].min(), src[a:b].max()), (a, b, done)


# --- trade tape vs brute force ----------------------------------------------------------------------------------


class _Model:
    """The specification, literally: dedup by id, clamp ts up, drop ts < latest (now − retention)."""

    def __init__(self, retention: float) -> None:
        self.retention = retention
        self.rows: list[tuple[float, float, float, bool, int]] = []  # ts, price, size, is_buy, seq
        self.ids: set[str] = set()
        self.last_ts = -INF
        self.cutoff = -INF

    def append(self, ts: list[float], price: list[float], size: list[float], buy: list[bool], ids: list[str]) -> None:
        for t, p, v, b, i in zip(ts, price, size, buy, ids, strict=True):
            if i in self.ids:
                continue
            self.ids.add(i)
            self.last_ts = max(self.last_ts, t)
            self.rows.append((self.last_ts, p, v, b, len(self.rows) + 1))

    def prune(self, now: float) -> None:
        self.cutoff = max(self.cutoff, now - self.retention)

    def live(self) -> np.ndarray:
        arr = np.array(self.rows, dtype=float).reshape(-1, 5)
        return arr[arr[:, 0] >= self.cutoff]


def _check_view(view, rows: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    assert len(view) == len(rows)
    np.testing.assert_array_equal(view.ts, rows[:, 0])
    np.testing.assert_array_equal(view.price, rows[:, 1])
    np.testing.assert_array_equal(view.size, rows[:, 2])
    np.testing.assert_array_equal(view.notional, rows[:, 1] * rows[:, 2])
    np.testing.assert_array_equal(view.is_buy, rows[:, 3].astype(bool))
    np.testing.assert_array_equal(view.seq, rows[:, 4].astype(np.int64))


def _check_window(tape: TradeTape, model: _Model, t0: float, t1: float) -> None:
    live = model.live()
    everything = np.array(model.rows, dtype=float).reshape(-1, 5)
    rows = live[(live[:, 0] >= t0) & (live[:, 0] < t1)]
    k = len(rows)
    assert tape.count_between(t0, t1) == k
    _check_view(tape.between(t0, t1), rows)
    # round-off bounds: prefix sums accumulate over the whole buffer (pruned rows included)
    n_all = max(1, len(everything))
    spread = float(np.ptp(everything[:, 1])) if len(everything) else 0.0
    scale_notional = float((everything[:, 1] * everything[:, 2]).sum()) if len(everything) else 0.0
    ss = tape.side_sums(t0, t1)
    buy = rows[:, 3].astype(bool)
    notional = rows[:, 1] * rows[:, 2]
    assert (ss.count_buy, ss.count_sell) == (int(buy.sum()), int((~buy).sum()))
    assert ss.notional_buy == pytest.approx(notional[buy].sum(), rel=1e-12, abs=1e-12 * scale_notional)
    assert ss.notional_sell == pytest.approx(notional[~buy].sum(), rel=1e-12, abs=1e-12 * scale_notional)
    ps = tape.price_stats(t0, t1)
    assert ps.n == k
    if k == 0:
        assert math.isnan(ps.min) and math.isnan(ps.mean) and math.isnan(ps.std)
        return
    p = rows[:, 1]
    assert (ps.min, ps.max) == (p.min(), p.max())
    assert ps.mean == pytest.approx(p.mean(), rel=1e-12, abs=1e-12 * n_all * spread / k)
    if k == 1:
        assert ps.std == 0.0 and ps.mean_abs_change == 0.0
        return
    var_tol = 1e-11 * n_all * spread**2 / (k - 1) + 1e-300
    assert abs(ps.std**2 - p.var(ddof=1)) <= var_tol + 1e-9 * p.var(ddof=1)
    mac_tol = 1e-11 * n_all * spread / (k - 1)
    assert ps.mean_abs_change == pytest.approx(np.abs(np.diff(p)).mean(), rel=1e-9, abs=mac_tol)


@st.composite
def _tape_script(draw: st.DrawFn) -> dict:
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "batches": draw(st.integers(1, 25)),
        "max_batch": draw(st.sampled_from([1, 5, 60, 300])),
        "base": draw(st.sampled_from([0.07055, 1.9531, 77.3, 65114.2])),
        "dup_rate": draw(st.sampled_from([0.0, 0.1, 0.5])),
        "back_rate": draw(st.sampled_from([0.0, 0.2])),
        "retention": draw(st.sampled_from([3.0, 20.0, 1e9])),
    }


@HSET
@given(script=_tape_script())
def test_tape_queries_match_brute_force(script: dict) -> None:
    rng = np.random.default_rng(script["seed"])
    tape = TradeTape(script["retention"], capacity=64)  # tiny capacity: many reallocations and rebases
    model = _Model(script["retention"])
    tick = script["base"] * 1e-4
    t = 1_786_310_000.0
    price = script["base"]
    next_id = 0
    held = []  # (view, its contents when taken): views must stay valid snapshots while ingestion goes on
    for _ in range(script["batches"]):
        m = int(rng.integers(1, script["max_batch"] + 1))
        dts = rng.exponential(0.2, m)
        dts[rng.random(m) < 0.3] = 0.0  # equal timestamps
        back = rng.random(m) < script["back_rate"]
        dts[back] = -rng.exponential(0.5, int(back.sum()))  # late trades: clamped up
        ts = (t + np.cumsum(dts)).tolist()
        t = max(t, max(ts))
        prices = (price + tick * np.cumsum(rng.integers(-3, 4, m))).tolist()
        price = prices[-1]
        sizes = np.round(rng.lognormal(0, 1.5, m), 3).clip(0.001).tolist()
        buys = (rng.random(m) < 0.5).tolist()
        ids = []
        for _j in range(m):
            if next_id and rng.random() < script["dup_rate"]:
                ids.append(f"t{int(rng.integers(0, next_id))}")
            else:
                ids.append(f"t{next_id}")
                next_id += 1
        now = t + float(rng.uniform(0, 2.0))
        keep = tape.filter_ids(ids)
        idx = list(range(m)) if keep is None else keep
        arrs = [np.array([col[i] for i in idx], dtype=float) for col in (ts, prices, sizes)]
        tape.append(arrs[0], arrs[1], arrs[2], np.array([buys[i] for i in idx], dtype=bool), now)
        model.append(ts, prices, sizes, buys, ids)
        model.prune(now)

        live = model.live()
        assert len(tape) == len(live)
        assert tape.last_seq() == len(model.rows)
        _check_view(tape.since(-INF), live)
        if len(live):
            probes = [live[0, 0], live[-1, 0], float(rng.choice(live[:, 0])), now - 1.0, -INF, INF]
            for t0 in probes:
                _check_view(tape.since(t0), live[live[:, 0] >= t0])
                for t1 in probes:
                    _check_window(tape, model, t0, t1)
            k = int(rng.integers(0, len(live) + 3))
            _check_view(tape.last_n(k), live[max(0, len(live) - k) :])
            s = int(rng.integers(0, len(model.rows) + 3))
            _check_view(tape.after_seq(s), live[live[:, 4] > s])
            v = tape.since(float(rng.choice(live[:, 0])))
            held.append((v, np.column_stack([v.ts, v.price, v.size, v.seq]).copy()))
    for view, contents in held:
        np.testing.assert_array_equal(np.column_stack([view.ts, view.price, view.size, view.seq]), contents)


def test_side_sums_multi_is_side_sums_per_window() -> None:
    rng = np.random.default_rng(5)
    tape = TradeTape(30.0, capacity=64)  # reallocations and pruning on the way
    t = T0
    for k in range(40):
        m = int(rng.integers(1, 40))
        ts = t + np.cumsum(rng.exponential(0.3, m))
        t = float(ts[-1])
        tape.append(ts, 100 + np.cumsum(rng.normal(0, 0.1, m)), rng.lognormal(0, 1, m), rng.random(m) < 0.4, t)
        t0s = [t - w for w in (0.0, 0.5, 3.0, 10.0, 29.0, 100.0)] + [t + 1.0, -INF, float(ts[0])]
        for t1 in (INF, t, float(ts[m // 2]), t - 5.0, -INF):
            got = tape.side_sums_multi(t0s, t1)
            assert got == [tape.side_sums(t0, t1) for t0 in t0s], (k, t1)
    ds, _ = _storage()
    ds.apply_batch([_trade(T0 + i, size=1.0 + i, side="Buy" if i % 3 else "Sell", tid=str(i)) for i in range(10)])
    assert ds.side_sums_multi(SYM, [T0 + 5, T0, T0 + 20], INF) == [
        ds.side_sums(SYM, T0 + 5, INF),
        ds.side_sums(SYM, T0, INF),
        SideSums(0, 0, 0.0, 0.0),
    ]


# --- DataStorage trade ingest ---------------------------------------------------------------------------------------

SYM = "BTCUSDT"
T0 = 1_786_310_000.0


def _trade(
    ts: float, price: float = 100.0, size: float = 1.0, side: str = "Buy", tid: str = "", sym: str = SYM
) -> Trade:
    return Trade(sym, ts, price, size, side, tid or f"{sym}-{ts}-{price}-{size}")  # type: ignore[arg-type]


def _storage(**settings_kw: dict) -> tuple[DataStorage, FixedClock]:
    clock = FixedClock(T0)
    return DataStorage(Settings(**settings_kw), clock), clock


def test_duplicate_trade_ids_are_dropped_and_reported() -> None:
    ds, _ = _storage()
    ds.apply_batch([_trade(T0, tid="a"), _trade(T0 + 1, tid="b"), _trade(T0 + 2, tid="a")])
    ds.apply_batch([_trade(T0 + 3, tid="b"), _trade(T0 + 4, tid="c")])
    v = ds.trades_since(SYM, -INF)
    np.testing.assert_array_equal(v.ts, [T0, T0 + 1, T0 + 4])
    np.testing.assert_array_equal(v.seq, [1, 2, 3])
    assert [i.kind for i in ds.issues] == ["duplicate_trade", "duplicate_trade"]
    assert ds.counters["duplicate_trade"] == 2


def test_trade_ts_is_clamped_up_to_the_last_stored() -> None:
    ds, _ = _storage()
    ds.apply_batch([_trade(T0 + 5), _trade(T0 + 3, price=101), _trade(T0 + 6, price=102)])
    ds.apply_batch([_trade(T0 + 1, price=103)])
    np.testing.assert_array_equal(ds.trades_since(SYM, -INF).ts, [T0 + 5, T0 + 5, T0 + 6, T0 + 6])
    assert ds.count_between(SYM, T0 + 5, T0 + 6) == 2
    assert ds.last_price(SYM) == 103


def test_retention_prunes_old_trades() -> None:
    ds, clock = _storage()
    retention = Settings().data_retention.trade_retention_sec
    ds.apply_batch([_trade(T0 + i, tid=str(i)) for i in range(10)])
    clock.set(T0 + retention + 5)  # T0..T0+4 are older than now − retention; T0+5 sits exactly on the edge: kept
    ds.apply_batch([_trade(T0 + retention + 5, tid="new")])
    v = ds.trades_since(SYM, -INF)
    assert v.ts[0] == T0 + 5 and len(v) == 6
    assert ds.count_between(SYM, -INF, INF) == 6
    clock.set(T0 + 2 * retention + 10)  # nothing new arrives: queries without a time bound still prune
    assert len(ds.last_n(SYM, 100)) == 0
    assert len(ds.trades_after_seq(SYM, 0)) == 0
    assert ds.last_seq(SYM) == 11 and ds.last_price(SYM) == 100.0


def test_bad_trades_are_dropped_and_reported_good_ones_kept() -> None:
    ds, _ = _storage()
    batch = [
        _trade(T0, tid="ok1"),
        _trade(T0, price=float("nan"), tid="nan"),
        _trade(T0, size=-1.0, tid="neg"),
        _trade(T0, side="Hold", tid="side"),
        Trade(SYM, T0, 100.0, 1.0, "Buy", ""),
        _trade(float("inf"), tid="inf"),
        _trade(T0 + 1, side="Sell", tid="ok2"),
    ]
    ds.apply_batch(batch)
    v = ds.trades_since(SYM, -INF)
    assert len(v) == 2 and v.is_buy.tolist() == [True, False]
    (issue,) = ds.issues
    assert issue.kind == "bad_trade" and issue.detail.startswith("5 trade(s)")


def test_mixed_batch_groups_trades_per_symbol_and_applies_books() -> None:
    ds, _ = _storage()
    batch = [
        _trade(T0, sym="ETHUSDT", price=2000.0, tid="e1"),
        BookSnapshot(SYM, T0, [(99.0, 1.0)], [(101.0, 1.0)], 10),
        _trade(T0 + 1, sym=SYM, price=100.0, tid="b1"),
        _trade(T0 + 2, sym="ETHUSDT", price=2001.0, side="Sell", tid="e2"),
    ]
    ds.apply_batch(batch)
    assert ds.trades_since("ETHUSDT", -INF).price.tolist() == [2000.0, 2001.0]
    assert ds.trades_since(SYM, -INF).price.tolist() == [100.0]
    assert ds.side_sums("ETHUSDT", -INF, INF) == SideSums(1, 1, 2000.0, 2001.0)
    assert ds.mid(SYM) == 100.0 and ds.spread_bps(SYM) == pytest.approx(2 / 99 * 1e4)


def test_strict_symbols() -> None:
    ds = DataStorage(Settings(), FixedClock(T0), [SYM])
    ds.apply_batch([_trade(T0, sym="ETHUSDT"), BookSnapshot("ETHUSDT", T0, [(1.0, 1.0)], [(1.1, 1.0)], 1)])
    assert [i.kind for i in ds.issues] == ["unknown_symbol", "unknown_symbol"]
    with pytest.raises(KeyError, match="not configured"):
        ds.last_n("ETHUSDT", 1)
    assert ds.symbols == [SYM] and ds.best(SYM) is None and ds.mid(SYM) is None and ds.last_price(SYM) is None


def test_views_are_read_only_and_windows_half_open() -> None:
    ds, _ = _storage()
    ds.apply_batch([_trade(T0 + i, price=100 + i, tid=str(i)) for i in range(5)])
    v = ds.trades_between(SYM, T0 + 1, T0 + 3)
    assert v.price.tolist() == [101.0, 102.0]
    with pytest.raises(ValueError):
        v.price[0] = 0.0
    with pytest.raises(AttributeError):
        v.foo = 1  # type: ignore[attr-defined]
    assert len(ds.trades_since(SYM, T0 + 4)) == 1  # ts == t included
    assert ds.count_between(SYM, T0 + 4, INF) == 1  # t1 = inf includes ts == now
    empty = ds.price_stats(SYM, T0 + 10, INF)
    assert empty.n == 0 and all(math.isnan(x) for x in (empty.min, empty.max, empty.mean, empty.std))
    one = ds.price_stats(SYM, T0 + 4, INF)
    assert (one.n, one.min, one.max, one.mean, one.std, one.mean_abs_change) == (1, 104.0, 104.0, 104.0, 0.0, 0.0)
    s = ds.price_stats(SYM, T0, INF)
    assert (s.n, s.min, s.max, s.mean_abs_change) == (5, 100.0, 104.0, 1.0)
    assert s.std == pytest.approx(np.std([100, 101, 102, 103, 104], ddof=1))


def test_seq_cursor_sees_every_trade_once() -> None:
    ds, clock = _storage()
    cursor = 0
    seen: list[int] = []
    for k in range(40):
        clock.set(T0 + 100 * k)
        ds.apply_batch([_trade(T0 + 100 * k + j * 0.01, tid=f"{k}-{j}") for j in range(k % 7 + 1)])
        v = ds.trades_after_seq(SYM, cursor)
        seen.extend(v.seq.tolist())
        if len(v):
            cursor = int(v.seq[-1])
    assert seen == list(range(1, ds.last_seq(SYM) + 1))


# --- books ----------------------------------------------------------------------------------------------------------


def _snap(u: int = 10, ts: float = T0, n: int = 60, sym: str = SYM) -> BookSnapshot:
    bids = [(round(100.0 - 0.1 * i, 1), 1.0) for i in range(n)]
    asks = [(round(100.1 + 0.1 * i, 1), 1.0) for i in range(n)]
    return BookSnapshot(sym, ts, bids, asks, u)


def test_book_truncates_to_subscription_depth_and_deletes_on_zero() -> None:
    ds, _ = _storage()
    ds.apply(_snap(n=60))
    bids = ds.book_top(SYM, "bid", 1000)
    assert bids.shape == (50, 3) and bids[0, 0] == 100.0 and bids[-1, 0] == pytest.approx(95.1)
    assert ds.book_top(SYM, "ask", 3)[:, 2].tolist() == pytest.approx([100.1, 100.2, 100.3])
    ds.apply(BookDelta(SYM, T0 + 1, [(100.0, 0.0), (100.05, 2.0)], [(100.1, 0.0)], 11))
    b = ds.best(SYM)
    assert b is not None and (b.best_bid, b.bid_size, b.best_ask, b.update_id) == (100.05, 2.0, 100.2, 11)
    assert len(ds.book_top(SYM, "bid", 1000)) == 50  # inserting above pushed the 51st out
    with pytest.raises(ValueError, match="book side"):
        ds.book_top(SYM, "mid", 1)  # type: ignore[arg-type]


def test_delta_before_snapshot_and_invalid_levels() -> None:
    ds, _ = _storage()
    ds.apply(BookDelta(SYM, T0, [(1.0, 1.0)], [], 5))
    assert [i.kind for i in ds.issues] == ["gap"] and ds.resync_requested() == {SYM}
    ds.apply(_snap(u=10))
    assert ds.resync_requested() == set()
    ds.apply(BookDelta(SYM, T0, [(99.95, -1.0)], [], 11))
    assert ds.issues[-1].kind == "rejected" and "invalid level" in ds.issues[-1].detail
    assert ds.best(SYM).update_id == 10  # type: ignore[union-attr]


def test_rejected_snapshot_keeps_the_previous_book() -> None:
    ds, _ = _storage()
    ds.apply(_snap(u=10))
    before = ds.book_top(SYM, "bid", 100).copy()
    ds.apply(BookSnapshot(SYM, T0 + 1, [(100.0, 1.0)], [(99.0, 1.0)], 20))
    assert ds.issues[-1].kind == "rejected" and "crossed" in ds.issues[-1].detail
    np.testing.assert_array_equal(ds.book_top(SYM, "bid", 100), before)
    assert ds.best(SYM).update_id == 10 and ds.resync_requested() == {SYM}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([(99.95, 3.0), (99.0, 0.0), (100.2, 1.0)], [], "crossed"),  # applied levels first, then a crossing one
        ([(99.95, 3.0), (99.9, 0.0)], [(100.15, 2.0), (100.3, float("nan"))], "invalid level"),
        ([(round(100.0 - 0.1 * i, 1), 0.0) for i in range(60)], [(100.1, 5.0)], "empty bid side"),
        ([(99.9, 7.0), (99.9, 0.0), (99.95, 1.0), (99.95, 0.0)], [(100.1, 0.0), (99.99, 1.0), (99.9, 1.0)], "crossed"),
        ([], [(round(100.1 + 0.1 * i, 1), 2.0) for i in range(3)] + [(110.2, 1.0), (100.1, 0.0)], None),
    ],
)
def test_rejected_delta_leaves_the_book_as_it_was(bids: list, asks: list, reason: str | None) -> None:
    book = OrderBook(SYM, 50)
    assert book.try_apply(_snap(u=10, n=60), True, 1000.0) is None
    before = (dict(book.bids), dict(book.asks), list(book.bid_px), list(book.ask_px), book.update_id, book.ts)
    err = book.try_apply(BookDelta(SYM, T0 + 1, bids, asks, 11), False, 1000.0)
    if reason is None:  # accepted: the same delta applied to a copy of the levels, one by one
        assert err is None and book.update_id == 11
        want = dict(before[1])
        for p, q in asks:
            if q > 0:
                want[p] = q
            else:
                want.pop(p, None)
        assert book.ask_px == sorted(want)[:50] and book.asks == {p: want[p] for p in sorted(want)[:50]}
        return
    assert err is not None and reason in err
    assert (dict(book.bids), dict(book.asks), book.bid_px, book.ask_px, book.update_id, book.ts) == before
    assert book.top("bid", 100)[:, 0].tolist() == before[2]


# --- spoof tracking -------------------------------------------------------------------------------------------------


def _spoof_storage() -> tuple[DataStorage, FixedClock]:
    # depth_limit_for_calc 10: thr = max(5 % of top-10 notional, 500 USDT) = 500 for this book
    return _storage(imbalance={"depth_limit_for_calc": 10})


def _book_with_large_bid(price: float = 99.5, size: float = 10.0) -> BookSnapshot:
    bids = [(round(100.0 - 0.1 * i, 1), size if round(100.0 - 0.1 * i, 1) == price else 1.0) for i in range(20)]
    asks = [(round(100.1 + 0.1 * i, 1), 1.0) for i in range(20)]
    return BookSnapshot(SYM, T0, bids, asks, 10)


def test_large_level_vanishing_quickly_is_recorded() -> None:
    ds, _ = _spoof_storage()
    ds.apply(_book_with_large_bid())
    ds.apply(BookDelta(SYM, T0 + 0.5, [(99.5, 8.0)], [], 11))  # still large; notional updated to 796
    ds.apply(BookDelta(SYM, T0 + 1.0, [(99.5, 0.0)], [], 12))
    assert ds.suspicious_orders(SYM, 0.0) == [SuspiciousOrder("bid", 99.5, 99.5 * 8.0, T0, T0 + 1.0)]
    assert ds.suspicious_orders(SYM, T0 + 1.5) == []  # since filter


def test_large_level_living_longer_than_the_lifetime_is_not_recorded() -> None:
    ds, _ = _spoof_storage()
    ds.apply(_book_with_large_bid())
    lifetime = Settings().imbalance.spoof_lifetime_ms / 1000
    ds.apply(BookDelta(SYM, T0 + lifetime + 0.1, [(99.5, 0.0)], [], 11))
    assert ds.suspicious_orders(SYM, 0.0) == []


def test_small_level_vanishing_is_not_recorded() -> None:
    ds, _ = _spoof_storage()
    ds.apply(_book_with_large_bid(size=4.0))  # 398 USDT < 500 floor
    ds.apply(BookDelta(SYM, T0 + 0.1, [(99.5, 0.0)], [], 11))
    assert ds.suspicious_orders(SYM, 0.0) == []


def test_large_level_leaving_the_top_n_range_is_untracked_silently() -> None:
    ds, _ = _spoof_storage()
    ds.apply(_book_with_large_bid(price=99.2))  # 9th best bid
    higher = [(round(100.1 + 0.01 * i, 2), 1.0) for i in range(1, 6)]
    asks_up = [(round(100.1 + 0.1 * i, 1), 0.0) for i in range(2)]  # make room above for the new bids
    ds.apply(BookDelta(SYM, T0 + 0.2, higher, asks_up, 11))  # 99.2 is now 14th: outside the top 10
    ds.apply(BookDelta(SYM, T0 + 0.4, [(99.2, 0.0)], [], 12))
    assert ds.suspicious_orders(SYM, 0.0) == []
    assert list(ds.issues) == []


def test_ask_side_and_record_pruning_after_lookback() -> None:
    ds, clock = _spoof_storage()
    snap = _book_with_large_bid(size=1.0)
    asks = [(p, 12.0 if p == 100.4 else s) for p, s in snap.asks]
    ds.apply(BookSnapshot(SYM, T0, snap.bids, asks, 10))
    ds.apply(BookDelta(SYM, T0 + 2.0, [], [(100.4, 0.0)], 11))
    (rec,) = ds.suspicious_orders(SYM, 0.0)
    assert (rec.side, rec.price, rec.notional, rec.removed_ts) == ("ask", 100.4, pytest.approx(100.4 * 12), T0 + 2.0)
    lookback = Settings().data_retention.spoof_lookback_sec
    clock.set(T0 + 2.0 + lookback - 1)
    assert len(ds.suspicious_orders(SYM, 0.0)) == 1
    clock.set(T0 + 2.0 + lookback + 1)
    assert ds.suspicious_orders(SYM, 0.0) == []


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([(100.0, 1.0)], [(100.0, 1.0)], "crossed"),  # locked: best bid == best ask
        ([(100.1, 1.0)], [(100.0, 1.0)], "crossed"),
        ([], [(100.0, 1.0)], "empty bid side"),
        ([(100.0, 1.0)], [], "empty ask side"),
        ([(100.0, 1.0)], [(110.01, 1.0)], "spread"),  # 1000.1 bps > max_valid_spread_bps
    ],
)
def test_insane_snapshots_are_rejected(bids: list, asks: list, reason: str) -> None:
    ds, _ = _storage()
    ds.apply(BookSnapshot(SYM, T0, bids, asks, 3))
    assert ds.issues[-1].kind == "rejected" and reason in ds.issues[-1].detail
    assert ds.best(SYM) is None and ds.resync_requested() == {SYM}
    ds.apply(BookSnapshot(SYM, T0, [(100.0, 1.0)], [(110.0, 1.0)], 4))  # exactly 1000 bps: still valid
    assert ds.best(SYM).valid and ds.resync_requested() == set()  # type: ignore[union-attr]


def test_book_levels_are_book_top_as_lists() -> None:
    """The analyzer's list query returns exactly the floats of the array query."""
    ds = DataStorage(Settings(), FixedClock(T0), [SYM])
    bids = [(round(100.0 - 0.1 * i, 1), round(0.37 * (i + 1), 3)) for i in range(60)]
    asks = [(round(100.1 + 0.1 * i, 1), round(1.13 * (i + 1), 3)) for i in range(60)]
    ds.apply(BookSnapshot(SYM, T0, bids, asks, 1))
    ds.apply(BookDelta(SYM, T0 + 1, [(99.95, 2.5)], [(100.1, 0.0)], 2))
    for side in ("bid", "ask"):
        for n in (0, 1, 5, 50, 1000):
            px, notional = ds.book_levels(SYM, side, n)
            top = ds.book_top(SYM, side, n)
            assert px == top[:, 0].tolist() and notional == top[:, 2].tolist(), (side, n)
    with pytest.raises(ValueError):
        ds.book_levels(SYM, "mid", 5)  # type: ignore[arg-type]


def test_book_levels_follow_every_committed_update() -> None:
    """The per-update notional cache: a size-only delta, a one-sided delta, a rejected delta and a snapshot each leave
    book_levels equal to the book's own levels (read before and after each, so a stale cache would show)."""
    ds = DataStorage(Settings(), FixedClock(T0), [SYM])
    bids = [(round(100.0 - 0.1 * i, 1), round(0.37 * (i + 1), 3)) for i in range(50)]
    asks = [(round(100.1 + 0.1 * i, 1), round(1.13 * (i + 1), 3)) for i in range(50)]
    ds.apply(BookSnapshot(SYM, T0, bids, asks, 1))

    def check() -> None:
        for side in ("bid", "ask"):
            px, notional = ds.book_levels(SYM, side, 50)
            top = ds.book_top(SYM, side, 50)
            assert px == top[:, 0].tolist() and notional == top[:, 2].tolist(), side

    check()
    ds.apply(BookDelta(SYM, T0 + 1, [(100.0, 9.0)], [], 2))  # size only, bid side only
    check()
    assert ds.book_levels(SYM, "bid", 1)[1] == [100.0 * 9.0]
    ds.apply(BookDelta(SYM, T0 + 2, [], [(100.1, 0.0), (100.15, 4.0)], 3))  # ask side: one level out, one in
    check()
    assert ds.book_levels(SYM, "ask", 1) == ([100.15], [100.15 * 4.0])
    ds.apply(BookDelta(SYM, T0 + 3, [(100.0, 1.0), (100.2, 1.0)], [], 4))  # crossed: rejected, book unchanged
    check()
    assert ds.book_levels(SYM, "bid", 1)[1] == [100.0 * 9.0]
    ds.apply(BookSnapshot(SYM, T0 + 4, bids[:3], asks[:3], 5))
    check()
    assert ds.book_levels(SYM, "bid", 50)[0] == [p for p, _ in bids[:3]]
