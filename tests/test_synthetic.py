"""Synthetic market builder: invariants on real bundled BTCUSDT candles, storage acceptance, determinism, causality
(within a candle: the book and the prints before the path diverges; across candles: the scales and the truncation
invariance the no-repaint contract needs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, TradeBatch, as_levels
from bot.instruments import InstrumentRegistry
from calibration.defaults_fit import DEFAULT_OUT
from calibration.probes import perturb_probe, reversal_synthetic, volume_probe
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder, profile_from_candles
from replay.synthetic.book import Lattice, Points, StepScale, book_deltas, full_books
from replay.synthetic.scales import ScalePrior, causal_scales, lagged_ewma
from tests.event_helpers import canonical

DATA = Path(__file__).resolve().parent.parent / "data" / "klines" / "bybit-linear-1m"
SEED = 7
K = 12  # points per candle in most tests here (the default, 60, is exercised where it matters)


def _load(sym: str, n: int | None = None, start: int = 0) -> Candles:
    df = pd.read_csv(next(DATA.glob(f"{sym}_1m_*.csv.gz")))
    df = df.iloc[start:start + n] if n else df
    return Candles(sym, df.open_time_ms.to_numpy(np.int64),
                   *(df[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume")))


@pytest.fixture(scope="module")
def btc() -> Candles:
    return _load("BTCUSDT", 600, start=1000)


@pytest.fixture(scope="module")
def builder(btc: Candles) -> SyntheticMarketBuilder:
    ins = InstrumentRegistry.bundled()["BTCUSDT"]
    return SyntheticMarketBuilder(ins, profile_from_candles(_load("BTCUSDT"), ins), GeneratorParams.load_defaults(),
                                  seed=SEED, points_per_candle=K, candles=btc)


@pytest.fixture(scope="module")
def batches(builder: SyntheticMarketBuilder, btc: Candles) -> list:
    return list(builder.iter_batches(btc))


def test_paths_touch_ohlc_and_stay_inside(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    P = builder.path_prices(btc, 0, len(btc))
    assert np.array_equal(P[:, 0], btc.open) and np.array_equal(P[:, -1], btc.close)
    assert np.array_equal(P.max(1), btc.high) and np.array_equal(P.min(1), btc.low)
    ticks = P / builder.instrument.tick
    assert np.abs(ticks - np.rint(ticks)).max() < 1e-6


def _trades(b: list) -> list[TradeBatch]:
    return [e for e in b if isinstance(e, TradeBatch)]


def _books(batches: list) -> list:
    return [e for _, b in batches for e in b if isinstance(e, BookSnapshot | BookDelta)]


def _candle_of(batches: list, t0_ms: np.ndarray) -> np.ndarray:
    """Index of the candle each release belongs to (releases lie in (open, open + 60 s])."""
    rel = np.array([r for r, _ in batches])
    return np.searchsorted(t0_ms / 1000.0, rel, side="left") - 1


def _of_candles(batches: list, t0_ms: np.ndarray, lo: int, hi: int) -> list:
    c = _candle_of(batches, t0_ms)
    return [x for x, ci in zip(batches, c, strict=True) if lo <= ci < hi]


def test_release_times_and_event_windows(batches: list, btc: Candles) -> None:
    """One book update per point released at the end of its first second, trades released per whole second; every
    event at or before its release, releases in time order with the book first at equal times."""
    books = _books(batches)
    assert len(books) == len(btc) * K
    rel = np.array([r for r, _ in batches])
    assert np.all(np.diff(rel) >= 0)
    assert np.all(np.abs(rel - np.rint(rel)) < 1e-9)  # whole seconds (K = 12: 5 s points)
    book_ts = np.array([e.ts for e in books])
    opens = np.repeat(btc.open_time_ms / 1000.0, K)
    assert np.allclose(book_ts - opens, np.tile(np.arange(K) * 5.0 + 0.001, len(btc)), atol=1e-6)
    last_id = -1
    seconds_with_trades = 0
    for i, (r, b) in enumerate(batches):
        if i and batches[i - 1][0] == r:  # equal release: a book, then that second's trades
            assert isinstance(batches[i - 1][1][0], BookSnapshot | BookDelta) and _trades(b)
        for ev in b:
            if isinstance(ev, BookSnapshot | BookDelta):
                assert r - 1.0 < ev.ts <= r
        for tb in _trades(b):
            seconds_with_trades += 1
            assert len(tb) > 0 and tb.symbol == "BTCUSDT"
            assert np.all(np.diff(tb.ts) >= 0) and tb.ts[0] > r - 1.0 and tb.ts[-1] <= r
            assert tb.trade_id.dtype == np.int64 and tb.trade_id[0] > last_id and np.all(np.diff(tb.trade_id) > 0)
            last_id = int(tb.trade_id[-1])
    assert seconds_with_trades > 0.5 * 60 * len(btc)


def test_volume_sums_exactly_on_step_grid(batches: list, btc: Candles, builder: SyntheticMarketBuilder) -> None:
    step = builder.instrument.step
    units = np.zeros(len(btc), np.int64)
    cand = _candle_of(batches, btc.open_time_ms)
    for i, (_, b) in enumerate(batches):
        for tb in _trades(b):
            u = tb.size / step
            assert np.abs(u - np.rint(u)).max() < 1e-6 and np.rint(u).min() >= 1
            units[cand[i]] += int(np.rint(u).sum())
    assert np.array_equal(units, np.floor(btc.volume / step + 0.5).astype(np.int64))


def test_open_high_low_close_are_printed(batches: list, btc: Candles) -> None:
    for i in range(len(btc)):
        px = np.concatenate([tb.price for _, b in _of_candles(batches, btc.open_time_ms, i, i + 1)
                             for tb in _trades(b)])
        assert px[0] == btc.open[i] and px[-1] == btc.close[i]
        assert px.max() == btc.high[i] and px.min() == btc.low[i]


def test_orders_sweep_several_fills_in_one_millisecond(batches: list) -> None:
    """Fills of one aggressor order share ms, side and price; many orders have several fills (real tapes: ~4)."""
    ts = np.concatenate([tb.ts for _, b in batches for tb in _trades(b)])
    buy = np.concatenate([tb.is_buy for _, b in batches for tb in _trades(b)])
    new = np.ones(len(ts), bool)
    new[1:] = (np.diff(ts) != 0) | (buy[1:] != buy[:-1])
    fills_per_order = len(ts) / new.sum()
    assert 2.0 < fills_per_order < 8.0


def test_trades_print_inside_touch_and_range(batches: list, btc: Candles) -> None:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    n = 0
    cand = _candle_of(batches, btc.open_time_ms)
    for i, (_, b) in enumerate(batches):
        for ev in b:
            if isinstance(ev, BookSnapshot):
                bids, asks = dict(ev.bids), dict(ev.asks)
            elif isinstance(ev, BookDelta):
                for side, lv in ((bids, as_levels(ev.bids)), (asks, as_levels(ev.asks))):
                    for p, s in lv:
                        if s == 0:
                            assert p in side
                            side.pop(p)
                        else:
                            side[p] = s
        assert len(bids) == len(asks) == 50
        bb, ba = max(bids), min(asks)
        assert bb < ba
        c = cand[i]
        for tb in _trades(b):
            n += len(tb)
            assert np.all(tb.price == np.where(tb.is_buy, ba, bb))  # every trade at the touch it hits
            assert np.all((btc.low[c] <= tb.price) & (tb.price <= btc.high[c]))
    assert n > 50 * len(btc)


def test_storage_accepts_every_event_without_issues(batches: list, btc: Candles) -> None:
    from bot.storage import DataStorage
    from settings import Settings

    clock = FixedClock(batches[0][0])
    st = DataStorage(Settings(), clock, ["BTCUSDT"])
    for r, b in batches:
        clock.set(r)
        st.apply_batch(b)
        top = st.best("BTCUSDT")
        assert top is not None and top.best_bid < top.best_ask
        for tb in _trades(b):
            assert top.best_bid <= tb.price[-1] <= top.best_ask
    assert list(st.issues) == []
    assert not st.resync_requested()
    last = [tb for _, b in batches for tb in _trades(b)][-1]
    assert st.last_price("BTCUSDT") == last.price[-1]


def test_candle_alone_equals_day_run(builder: SyntheticMarketBuilder, batches: list, btc: Candles) -> None:
    for i in (0, 1, 17, 333, len(btc) - 1):
        alone = builder.candle_events(i)
        assert canonical(alone) == canonical(_of_candles(batches, btc.open_time_ms, i, i + 1))


def test_snapshot_then_contiguous_update_ids(batches: list) -> None:
    books = _books(batches)
    assert isinstance(books[0], BookSnapshot)
    assert np.all(np.diff([e.update_id for e in books]) == 1)
    assert sum(isinstance(e, BookSnapshot) for e in books) == 1 + sum(
        1 for e in books[1:] if (e.ts - 0.001) % 86_400 == 0)


def test_day_boundary_emits_snapshot() -> None:
    full = _load("BTCUSDT", 1500)
    ins = InstrumentRegistry.bundled()["BTCUSDT"]
    b = SyntheticMarketBuilder(ins, profile_from_candles(full, ins), GeneratorParams.load_defaults(), seed=1)
    day0 = int(np.flatnonzero(full.open_time_ms % 86_400_000 == 0)[0])
    books = _books(list(b.iter_batches(full.slice(day0 - 3, day0 + 3))))
    kinds = [type(e).__name__ for e in books]
    assert len(books) == 6 * b.K
    assert kinds[0] == "BookSnapshot" and kinds[3 * b.K] == "BookSnapshot"
    assert kinds.count("BookSnapshot") == 2
    assert np.all(np.diff([e.update_id for e in books]) == 1)


def test_same_seed_same_output_different_seed_differs(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    again = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED, points_per_candle=K)
    other = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED + 1,
                                   points_per_candle=K)
    a = canonical(list(again.iter_batches(btc.slice(0, 30))))
    assert a == canonical(list(builder.iter_batches(btc.slice(0, 30))))
    b = canonical(list(other.iter_batches(btc.slice(0, 30))))
    assert a != b
    assert not np.array_equal(again.path_prices(btc, 0, 30), other.path_prices(btc, 0, 30))


def _random_points(n: int, seed: int = 0) -> tuple[Points, StepScale]:
    rng = np.random.default_rng(seed)
    p = 1_000_000 + np.cumsum(rng.integers(-30, 31, n))
    up = rng.random(n) < 0.5
    spread = rng.integers(1, 3, n)
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 5000 + 1
    pts = Points(np.where(up, p - spread, p), np.where(up, p, p + spread), np.where(up, 1, -1),
                 rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n), t, rng.uniform(50, 500, n))
    scale = StepScale(int(t[0] // 60_000) - 10, rng.uniform(5, 50, n // 12 + 20))
    return pts, scale


def _with_path(pts: Points, k: int, shift: np.ndarray) -> Points:
    """The same points with the touch moved after point k."""
    bid, ask = pts.bid.copy(), pts.ask.copy()
    bid[k + 1:] += shift
    ask[k + 1:] += shift
    return dataclasses.replace(pts, bid=bid, ask=ask)


def test_book_is_causal(builder: SyntheticMarketBuilder) -> None:
    """Books and deltas at points ≤ k are unchanged when the path after k is altered."""
    n, k = 240, 120
    pts, scale = _random_points(n)
    lat = Lattice.build(builder.model, 0.2, 990_000, 1_010_000)
    base = full_books(pts, builder.model, lat, scale)
    alt_pts = _with_path(pts, k, np.random.default_rng(1).integers(-500, 500, n - k - 1))
    alt = full_books(alt_pts, builder.model, lat, scale)
    for x, y in zip(base, alt, strict=True):
        assert np.array_equal(x[:k + 1], y[:k + 1])
        assert not np.array_equal(x[k + 2:], y[k + 2:])
    d1 = book_deltas(pts, builder.model, lat, scale)
    d2 = book_deltas(alt_pts, builder.model, lat, scale)
    for a, b in zip(d1, d2, strict=True):  # delta rows 1..k live at cut[0]:cut[k]
        assert np.array_equal(a.cut[:k + 1], b.cut[:k + 1])
        assert np.array_equal(a.ticks[:a.cut[k]], b.ticks[:b.cut[k]])
        assert np.array_equal(a.units[:a.cut[k]], b.units[:b.cut[k]])
    # a single point evaluated alone gives the same book as inside the batch
    one = full_books(pts.rows(slice(k, k + 1)), builder.model, lat, scale)
    for x, y in zip(base, one, strict=True):
        assert np.array_equal(x[k], y[0])


def test_prints_do_not_see_the_candles_later_extremes_close_or_volume(btc: Candles) -> None:
    """Perturb only candle m's high, low or close: every event before the path first differs is identical, but for the
    documented exception (no buy can print while the ask sits above the candle's high, e.g. a down-tick open at the
    high); double only its volume: the first 5 s trade about the same volume (the pacing bound's documented residue)."""
    ins = InstrumentRegistry.bundled()["BTCUSDT"]
    b = SyntheticMarketBuilder(ins, None, GeneratorParams.load_defaults(), seed=SEED)
    idx = np.arange(20, 600, 48)
    probes, touched, ev_share = perturb_probe(b, btc, idx)
    assert probes >= 30 and touched <= 0.05 and ev_share < 0.01
    ratio = volume_probe(b, btc, idx)
    assert 0.95 < ratio < 1.10


def test_path_has_no_reversal_artifact() -> None:
    """corr(move over a minute's first 10 s, move over the rest): real prices ≈ 0; random interior extremes gave
    −0.2…−0.4. Two days of BTCUSDT at the default one point a second."""
    c = _load("BTCUSDT", 2880)
    b = SyntheticMarketBuilder(InstrumentRegistry.bundled()["BTCUSDT"], None, GeneratorParams.load_defaults(), seed=1)
    assert abs(reversal_synthetic(b, c)) < 0.15


def _replay_sides(batches: list, depth: int | None = None) -> list[tuple[dict[float, float], dict[float, float]]]:
    """Mirror the feed's book after every book update; ``depth`` truncates each side to its best levels."""
    books, bids, asks = [], {}, {}
    for ev in _books(batches):
        if isinstance(ev, BookSnapshot):
            bids, asks = dict(ev.bids), dict(ev.asks)
        else:
            for side, lv in ((bids, as_levels(ev.bids)), (asks, as_levels(ev.asks))):
                for p, s in lv:
                    if s == 0:
                        del side[p]
                    else:
                        side[p] = s
        if depth is not None:
            bids = {p: bids[p] for p in sorted(bids, reverse=True)[:depth]}
            asks = {p: asks[p] for p in sorted(asks)[:depth]}
        books.append((dict(bids), dict(asks)))
    return books


@pytest.mark.parametrize(("sym", "k", "n", "start"), [("BTCUSDT", 12, 240, 1000), ("DOGEUSDT", 60, 100, 3000),
                                                      ("ETHUSDT", 20, 120, 500)])
def test_deltas_rebuild_the_full_books(sym: str, k: int, n: int, start: int) -> None:
    """The hot path's deltas (computed without the full books) replay to exactly ``generate``'s (P, 50) books."""
    ins = InstrumentRegistry.bundled()[sym]
    day = _load(sym, n, start=start)
    b = SyntheticMarketBuilder(ins, None, GeneratorParams.load_defaults(), seed=SEED, points_per_candle=k)
    ch = b.generate(day, 0, len(day))
    books = _replay_sides(list(b.iter_batches(day)))
    assert len(books) == n * k
    for r, (bids, asks) in enumerate(books):
        want_b = dict(zip(np.round(ch.bid_ticks[r] * ins.tick, ins.price_decimals).tolist(),
                          np.round(ch.bid_units[r] * ins.step, ins.qty_decimals).tolist(), strict=True))
        want_a = dict(zip(np.round(ch.ask_ticks[r] * ins.tick, ins.price_decimals).tolist(),
                          np.round(ch.ask_units[r] * ins.step, ins.qty_decimals).tolist(), strict=True))
        assert bids == want_b and asks == want_a, r


def test_without_far_deletes_a_depth_50_mirror_is_unchanged(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    part = btc.slice(0, 120)
    lean = SyntheticMarketBuilder(builder.instrument, None, builder.params, seed=SEED, points_per_candle=K,
                                  far_deletes=False)
    exact = SyntheticMarketBuilder(builder.instrument, None, builder.params, seed=SEED, points_per_candle=K)
    full_ev, lean_ev = list(exact.iter_batches(part)), list(lean.iter_batches(part))
    n_full = sum(len(e.bids) + len(e.asks) for e in _books(full_ev))
    n_lean = sum(len(e.bids) + len(e.asks) for e in _books(lean_ev))
    assert n_lean < 0.95 * n_full
    assert _replay_sides(lean_ev, depth=50) == _replay_sides(full_ev)
    trades = [(r, _trades(b)) for r, b in lean_ev]
    assert canonical(trades) == canonical([(r, _trades(b)) for r, b in full_ev])  # same prints


def _events_up_to(batches: list, t0_ms: np.ndarray, c: int) -> list:
    return canonical(_of_candles(batches, t0_ms, 0, c + 1))


def test_truncation_invariance(builder: SyntheticMarketBuilder) -> None:
    """Generating candles [0, c] gives byte-identical events for candles ≤ c to generating [0, N] (no-repaint: the
    events of candle i depend on candles ≤ i only), for cuts mid-day, just before and at a UTC day boundary."""
    full = _load("BTCUSDT", 300, start=300)
    day0 = int(np.flatnonzero(full.open_time_ms % 86_400_000 == 0)[0])
    b = SyntheticMarketBuilder(builder.instrument, None, builder.params, seed=SEED, points_per_candle=K)
    ref = list(b.iter_batches(full))
    assert 100 < day0 < 300
    for c in (0, 7, 77, day0 - 1, day0, day0 + 5, len(full) - 2):
        cut = list(b.iter_batches(full.slice(0, c + 1)))
        assert len(_books(cut)) == (c + 1) * K
        assert canonical(cut) == _events_up_to(ref, full.open_time_ms, c), c
    # and the later candles really do change something (the comparison can fail)
    other = dataclasses.replace(full, volume=full.volume * np.where(np.arange(len(full)) > 80, 3.0, 1.0))
    alt = list(b.iter_batches(other))
    assert _events_up_to(alt, full.open_time_ms, 80) == _events_up_to(ref, full.open_time_ms, 80)
    assert canonical(alt) != canonical(ref)


def test_scales_are_causal_and_seeded_from_the_first_candle(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    sc = causal_scales(btc, builder.instrument, builder.params)
    assert sc.mean_volume[0] == btc.volume[0]
    assert sc.mean_volume[5] == pytest.approx(btc.volume[:5].mean(), rel=0.02)  # ≈ expanding mean at the start
    changed = dataclasses.replace(btc, volume=btc.volume[::-1].copy(), high=btc.high + 50.0)
    sc2 = causal_scales(changed.slice(0, 300), builder.instrument, builder.params)
    assert not np.array_equal(sc.mean_volume[:300], sc2.mean_volume)
    for i in (0, 1, 10, 299):  # value i from candles < i (candle 0 from itself): only the prefix matters
        part = causal_scales(btc.slice(0, i + 1), builder.instrument, builder.params)
        for f in ("mean_volume", "range_ticks", "touch_units", "deep_units", "fill_units", "presence_q"):
            assert getattr(part, f)[i] == getattr(sc, f)[i], (i, f)
    x = np.random.default_rng(3).uniform(1, 2, 500)
    y = lagged_ewma(x, 50.0)
    w = 0.5 ** (1 / 50)
    wt = w ** np.arange(299, -1, -1)
    assert y[300] == pytest.approx(float((wt * x[:300]).sum() / wt.sum()), rel=1e-12)
    # with a prior (a short recording's own typical volume) the scale starts there and moves causally
    pri = causal_scales(btc, builder.instrument, builder.params, ScalePrior(volume=123.0, range_ticks=40.0))
    assert pri.mean_volume[0] == 123.0 and pri.range_ticks[0] == pytest.approx(40.0)
    wh = 0.5 ** (1 / builder.params.scale_halflife_min)
    assert pri.mean_volume[1] == pytest.approx(123.0 * wh + (1 - wh) * btc.volume[0])


def test_extremes_order_follows_candle_shape(builder: SyntheticMarketBuilder) -> None:
    """The bridge decides which extreme comes first: usually the low in an up candle with a long lower wick, but
    not always (a rule the bot could learn would be a leak)."""
    n = 4000
    t = 1_750_000_000_000 // 60000 * 60000 + np.arange(n, dtype=np.int64) * 60000
    o = np.full(n, 100_000.0)
    up = Candles("BTCUSDT", t, o, o + 50.0, o - 10.0, o + 40.0, np.full(n, 10.0))
    down = Candles("BTCUSDT", t, o, o + 10.0, o - 50.0, o - 40.0, np.full(n, 10.0))
    doji = Candles("BTCUSDT", t, o, o + 30.0, o - 30.0, o, np.full(n, 10.0))

    def low_first_share(c: Candles) -> float:
        P = builder.path_prices(c, 0, n)
        return float(np.mean(np.argmin(P, 1) < np.argmax(P, 1)))

    s_up, s_down, s_doji = low_first_share(up), low_first_share(down), low_first_share(doji)
    assert s_up > 0.6 and s_down < 0.4
    assert 0.4 < s_doji < 0.6
    assert s_up < 0.97 and s_down > 0.03


def test_pessimistic_orders_extremes_against_previous_candle(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    pes = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED, pessimistic=True,
                                 points_per_candle=K)
    P = pes.path_prices(btc, 0, len(btc))
    prev_dir = np.sign(btc.close[:-1] - btc.open[:-1])
    o, h, lo, c = btc.open[1:], btc.high[1:], btc.low[1:], btc.close[1:]
    both = (h > np.maximum(o, c)) & (lo < np.minimum(o, c))
    low_first = np.argmin(P[1:], 1) < np.argmax(P[1:], 1)
    assert np.all(low_first[both & (prev_dir > 0)])
    assert not np.any(low_first[both & (prev_dir < 0)])
    assert np.array_equal(P.max(1), btc.high) and np.array_equal(P.min(1), btc.low)


def test_bad_input_is_refused(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    bad = dataclasses.replace(btc.slice(0, 5), high=btc.high[:5] - 1000.0)
    with pytest.raises(ValueError, match="high < max"):
        list(builder.iter_batches(bad))
    s5 = btc.slice(0, 5)
    off = dataclasses.replace(s5, open=s5.open + 0.03, high=s5.high + 0.03, low=s5.low + 0.03, close=s5.close + 0.03)
    with pytest.raises(ValueError, match="tick grid"):
        list(builder.iter_batches(off))
    with pytest.raises(ValueError, match=r"\[4, 600\]"):
        SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=1, points_per_candle=3)
    eth = _load("ETHUSDT", 5)
    with pytest.raises(ValueError, match="ETHUSDT"):
        list(builder.iter_batches(eth))


def test_other_symbols_and_k(btc: Candles) -> None:
    reg = InstrumentRegistry.bundled()
    for sym, k in (("DOGEUSDT", 6), ("SOLUSDT", 60)):
        c = _load(sym, 120)
        ins = reg[sym]
        b = SyntheticMarketBuilder(ins, profile_from_candles(c, ins), GeneratorParams.load_defaults(), seed=3,
                                   points_per_candle=k)
        ev = list(b.iter_batches(c))
        assert len(_books(ev)) == 120 * k
        vol = sum(int(np.rint(e.size / ins.step).sum()) for _, bt in ev for e in _trades(bt))
        assert vol == int(np.floor(c.volume / ins.step + 0.5).sum())


def test_calibrate_from_ws_stats(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    p = builder.params.calibrate_from_ws_stats({"_source": "x", "large_fill_share": 0.0, "spread_ticks_pmf":
                                                [0, 2, 0, 0, 0], "fill_log_sigma": 0.1,
                                                "fill_notional_coef": {"value": 50_000.0}})
    assert p.large_fill_share == 0.0 and p.spread_ticks_pmf == (0.0, 1.0, 0.0, 0.0, 0.0)
    assert p.fill_notional_coef == 50_000.0 and p.fill_log_sigma == 0.1
    with pytest.raises(ValueError, match="unknown key"):
        builder.params.calibrate_from_ws_stats({"spread_pmf_typo": [1]})
    with pytest.raises(ValueError, match="finite"):
        builder.params.calibrate_from_ws_stats({"fill_log_sigma": float("nan")})
    base = list(builder.iter_batches(btc.slice(0, 20)))
    cal = builder.calibrate_from_ws_stats({"spread_ticks_pmf": [0, 1], "fill_notional_coef": 50_000.0})
    ev = list(cal.iter_batches(btc.slice(0, 20)))
    spreads = {round((b[0].asks[0][0] - b[0].bids[0][0]) / 0.1) for _, b in ev if isinstance(b[0], BookSnapshot)}
    assert spreads == {2}  # always two ticks
    n_base = sum(len(tb) for _, b in base for tb in _trades(b))
    n_cal = sum(len(tb) for _, b in ev for tb in _trades(b))
    assert n_cal < 0.5 * n_base  # bigger fills, fewer trades


def test_profile_is_measured_from_candles() -> None:
    reg = InstrumentRegistry.bundled()
    btc, doge = _load("BTCUSDT", 3000), _load("DOGEUSDT", 3000)
    pb, pd_ = profile_from_candles(btc, reg["BTCUSDT"]), profile_from_candles(doge, reg["DOGEUSDT"])
    assert pb.mean_volume_per_min == pytest.approx(float(btc.volume.mean()))
    assert pb.volatility_pct == pytest.approx(float(np.median((btc.high - btc.low) / btc.low) * 100))
    assert pd_.spread_bps > pb.spread_bps > 0
    assert 0 <= pb.trend_share <= 1 and pb.symbol == "BTCUSDT"


def test_defaults_file_documents_every_value() -> None:
    d = json.loads(DEFAULT_OUT.read_text())
    for k, v in d.items():
        if k.startswith("_"):
            continue
        assert set(v) == {"value", "unit", "sources", "method"}, k
        assert v["sources"] and v["method"] and v["unit"]
    p = GeneratorParams.load_defaults()
    assert set(GeneratorParams.fitted_names()) <= set(d)
    assert 0 < p.large_fill_share < 0.5 and p.spread_ticks_pmf[0] > 0.9
    lo, flat, hi = p.buy_prob_by_move
    assert lo < flat < hi  # buyers lift the ask in the seconds price rises
