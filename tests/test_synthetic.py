"""Synthetic market builder: invariants on real bundled BTCUSDT candles, storage acceptance, determinism, causality."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder, profile_from_candles
from replay.synthetic.book import book_at
from replay.synthetic.fit_defaults import DEFAULT_OUT

DATA = Path(__file__).resolve().parent.parent / "data" / "klines" / "bybit-linear-1m"
SEED = 7


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
                                  seed=SEED, points_per_candle=12, candles=btc)


@pytest.fixture(scope="module")
def batches(builder: SyntheticMarketBuilder, btc: Candles) -> list:
    return list(builder.iter_batches(btc))


def test_paths_touch_ohlc_and_stay_inside(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    P = builder.path_prices(btc, 0, len(btc))
    assert np.array_equal(P[:, 0], btc.open) and np.array_equal(P[:, -1], btc.close)
    assert np.array_equal(P.max(1), btc.high) and np.array_equal(P.min(1), btc.low)
    ticks = P / builder.instrument.tick
    assert np.abs(ticks - np.rint(ticks)).max() < 1e-6


def test_release_times_and_event_windows(batches: list, btc: Candles) -> None:
    K = 12
    assert len(batches) == len(btc) * K
    rel = np.array([r for r, _ in batches])
    assert np.all(np.diff(rel) > 0)
    opens = np.repeat(btc.open_time_ms / 1000.0, K)
    assert np.allclose(rel - opens, np.tile((np.arange(K) + 1) * 5.0, len(btc)))
    for (r, b), t0 in zip(batches, opens, strict=True):
        ts = [e.ts for e in b]
        assert ts == sorted(ts) and t0 < ts[0] and ts[-1] <= r
        assert isinstance(b[0], BookSnapshot | BookDelta) and all(isinstance(e, Trade) for e in b[1:])


def test_volume_sums_exactly_on_step_grid(batches: list, btc: Candles, builder: SyntheticMarketBuilder) -> None:
    step = builder.instrument.step
    units = np.zeros(len(btc), np.int64)
    for i, (_, b) in enumerate(batches):
        for e in b[1:]:
            u = e.size / step
            assert abs(u - round(u)) < 1e-6 and round(u) >= 1
            units[i // 12] += round(u)
    assert np.array_equal(units, np.floor(btc.volume / step + 0.5).astype(np.int64))


def test_trades_print_inside_touch_and_range(batches: list, btc: Candles) -> None:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    n = 0
    for i, (_, b) in enumerate(batches):
        ev = b[0]
        if isinstance(ev, BookSnapshot):
            bids, asks = dict(ev.bids), dict(ev.asks)
        else:
            for side, lv in ((bids, ev.bids), (asks, ev.asks)):
                for p, s in lv:
                    if s == 0:
                        assert p in side
                        side.pop(p)
                    else:
                        side[p] = s
        assert len(bids) == len(asks) == 50
        bb, ba = max(bids), min(asks)
        assert bb < ba
        c = i // 12
        for t in b[1:]:
            n += 1
            assert bb <= t.price <= ba
            assert t.price == (ba if t.side == "Buy" else bb) or t.price in (btc.high[c], btc.low[c])
            assert btc.low[c] <= t.price <= btc.high[c]
    assert n > len(btc)


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
        if len(b) > 1:
            assert top.best_bid <= b[-1].price <= top.best_ask
    assert list(st.issues) == []
    assert not st.resync_requested()
    assert st.last_price("BTCUSDT") == batches[-1][1][-1].price if len(batches[-1][1]) > 1 else True


def test_candle_alone_equals_day_run(builder: SyntheticMarketBuilder, batches: list, btc: Candles) -> None:
    for i in (0, 1, 17, 333, len(btc) - 1):
        alone = builder.candle_events(i)
        assert alone == batches[i * 12:(i + 1) * 12]


def test_snapshot_then_contiguous_update_ids(batches: list) -> None:
    uid = [b[0].update_id for _, b in batches]
    assert isinstance(batches[0][1][0], BookSnapshot)
    assert np.all(np.diff(uid) == 1)
    assert sum(isinstance(b[0], BookSnapshot) for _, b in batches) == 1 + sum(
        1 for r, _ in batches[12::12] if (r - 5) % 86_400 == 0)


def test_day_boundary_emits_snapshot() -> None:
    full = _load("BTCUSDT", 1500)
    ins = InstrumentRegistry.bundled()["BTCUSDT"]
    b = SyntheticMarketBuilder(ins, profile_from_candles(full, ins), GeneratorParams.load_defaults(), seed=1)
    day0 = int(np.flatnonzero(full.open_time_ms % 86_400_000 == 0)[0])
    ev = list(b.iter_batches(full.slice(day0 - 3, day0 + 3)))
    kinds = [type(x[1][0]).__name__ for x in ev]
    assert kinds[0] == "BookSnapshot" and kinds[36] == "BookSnapshot"
    assert kinds.count("BookSnapshot") == 2
    assert np.all(np.diff([x[1][0].update_id for x in ev]) == 1)


def test_same_seed_same_output_different_seed_differs(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    again = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED)
    other = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED + 1)
    a = list(again.iter_batches(btc.slice(0, 30)))
    assert a == list(builder.iter_batches(btc.slice(0, 30)))
    b = list(other.iter_batches(btc.slice(0, 30)))
    assert a != b
    assert not np.array_equal(again.path_prices(btc, 0, 30), other.path_prices(btc, 0, 30))


def test_book_is_causal(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    """Books at points ≤ k are unchanged when the path after k is altered (book_at sees p_k and p_{k-1} only)."""
    rng = np.random.default_rng(0)
    n = 200
    p = 1_000_000 + np.cumsum(rng.integers(-30, 31, n))
    prev = np.concatenate([[p[0]], p[:-1]])
    args = (rng.random(n), rng.random(n), rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n),
            1_700_000_000_000 + np.arange(n) * 5000)
    base = book_at(p, prev, *args, builder.model)
    k = 120
    p2 = p.copy()
    p2[k + 1:] += rng.integers(-500, 500, n - k - 1)
    prev2 = np.concatenate([[p2[0]], p2[:-1]])
    alt = book_at(p2, prev2, *args, builder.model)
    for x, y in zip(base, alt, strict=True):
        assert np.array_equal(x[:k + 1], y[:k + 1])
        assert not np.array_equal(x[k + 2:], y[k + 2:])
    # a single point evaluated alone gives the same book as inside the batch
    one = book_at(p[k:k + 1], prev[k:k + 1], *(a[k:k + 1] for a in args), builder.model)
    for x, y in zip(base, one, strict=True):
        assert np.array_equal(x[k], y[0])


def test_extremes_order_depends_on_candle_shape(builder: SyntheticMarketBuilder) -> None:
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
    assert s_up > 0.9 and s_down < 0.1
    assert 0.4 < s_doji < 0.6
    assert s_up < 1.0 and s_down > 0.0  # random, not a fixed rule


def test_pessimistic_orders_extremes_against_previous_candle(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    pes = SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=SEED, pessimistic=True)
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
    with pytest.raises(ValueError, match=">= 4"):
        SyntheticMarketBuilder(builder.instrument, builder.profile, builder.params, seed=1, points_per_candle=3)
    eth = _load("ETHUSDT", 5)
    with pytest.raises(ValueError, match="ETHUSDT"):
        list(builder.iter_batches(eth))


def test_other_symbols_and_k(btc: Candles) -> None:
    reg = InstrumentRegistry.bundled()
    for sym, K in (("DOGEUSDT", 6), ("SOLUSDT", 20)):
        c = _load(sym, 120)
        ins = reg[sym]
        b = SyntheticMarketBuilder(ins, profile_from_candles(c, ins), GeneratorParams.load_defaults(), seed=3,
                                   points_per_candle=K)
        ev = list(b.iter_batches(c))
        assert len(ev) == 120 * K
        vol = sum(round(e.size / ins.step) for _, bt in ev for e in bt[1:])
        assert vol == int(np.floor(c.volume / ins.step + 0.5).sum())


def test_calibrate_from_ws_stats(builder: SyntheticMarketBuilder, btc: Candles) -> None:
    p = builder.params.calibrate_from_ws_stats({"_source": "x", "large_print_share": 0.0, "spread_multiple_pmf":
                                                [0, 2, 0, 0, 0], "trade_size_body_sigma": 0.1,
                                                "trades_per_min_at_mean_volume": 6.0})
    assert p.large_print_share == 0.0 and p.spread_multiple_pmf == (0.0, 1.0, 0.0, 0.0, 0.0)
    assert p.real_trades_per_min_at_mean == 6.0
    with pytest.raises(ValueError, match="unknown key"):
        builder.params.calibrate_from_ws_stats({"spread_pmf_typo": [1]})
    cal = builder.calibrate_from_ws_stats({"spread_multiple_pmf": [0, 1], "trades_per_min_at_mean_volume": 6.0})
    ev = list(cal.iter_batches(btc.slice(0, 20)))
    spreads = []
    for _, b in ev:
        if isinstance(b[0], BookSnapshot):
            spreads.append(round((b[0].asks[0][0] - b[0].bids[0][0]) / 0.1))
    assert spreads == [2]
    counts = [sum(len(b) - 1 for _, b in ev[i * 12:(i + 1) * 12]) for i in range(20)]
    assert max(counts) <= 6 * 12 and np.mean(counts) < 15


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
    assert 0 < p.large_print_share < 0.5 and p.extreme_order_logit_slope > 0 and p.taker_buy_slope > 0
