"""Property tests: path and volume invariants over random valid candles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.instruments import InstrumentRegistry
from replay.synthetic import Candles, GeneratorParams, SymbolProfile, SyntheticMarketBuilder
from tests.event_helpers import canonical

INS = InstrumentRegistry.bundled()["BTCUSDT"]
PROFILE = SymbolProfile("BTCUSDT", volatility_pct=0.04, mean_volume_per_min=50.0, median_price=100_000.0,
                        spread_bps=0.01, trend_share=0.4)
T0 = 1_750_000_000_000 // 60_000 * 60_000


@st.composite
def candles(draw: st.DrawFn) -> Candles:
    n = draw(st.integers(1, 6))
    rows = []
    for _ in range(n):
        lo = draw(st.integers(900_000, 1_100_000))
        rng = draw(st.sampled_from([0, 1, 2, 3, 10, 500, 20_000]))
        o = lo + draw(st.integers(0, rng))
        c = lo + draw(st.integers(0, rng))
        vol_units = draw(st.sampled_from([0, 1, 2, 7, 1000, 250_000, 2_000_000]))  # up to 2,000 BTC a minute
        rows.append((o, lo + rng, lo, c, vol_units))
    a = np.array(rows, dtype=np.int64)
    gaps = np.array([draw(st.sampled_from([1, 1, 1, 2, 1440])) for _ in range(n)])
    t = T0 + np.cumsum(gaps) * 60_000
    px = [np.round(a[:, j] * 0.1, 1) for j in range(4)]
    return Candles("BTCUSDT", t.astype(np.int64), *px, np.round(a[:, 4] * 0.001, 3))


@settings(max_examples=60, deadline=None)
@given(c=candles(), seed=st.integers(0, 2**31), K=st.sampled_from([4, 5, 12, 60]), pes=st.booleans())
def test_path_touches_ohlc_inside_range(c: Candles, seed: int, K: int, pes: bool) -> None:
    b = SyntheticMarketBuilder(INS, PROFILE, GeneratorParams.load_defaults(), seed=seed, points_per_candle=K,
                               pessimistic=pes)
    P = b.path_prices(c, 0, len(c))
    assert P.shape == (len(c), K)
    assert np.array_equal(P[:, 0], c.open) and np.array_equal(P[:, -1], c.close)
    assert np.array_equal(P.max(1), c.high) and np.array_equal(P.min(1), c.low)
    ticks = P / 0.1
    assert np.abs(ticks - np.rint(ticks)).max() < 1e-6


@settings(max_examples=40, deadline=None)
@given(c=candles(), seed=st.integers(0, 2**31), K=st.sampled_from([4, 12, 60]))
def test_volume_exact_and_prints_inside_touch(c: Candles, seed: int, K: int) -> None:
    b = SyntheticMarketBuilder(INS, PROFILE, GeneratorParams.load_defaults(), seed=seed, points_per_candle=K)
    ch = b.generate(c, 0, len(c))
    tr = ch.trades
    want = np.floor(c.volume / INS.step + 0.5).astype(np.int64)
    got = np.bincount(tr.row // K, weights=tr.units, minlength=len(c)).astype(np.int64)
    assert np.array_equal(got, want)
    assert np.all(tr.units >= 1)
    assert np.all(np.diff(tr.ts_ms) >= 0) and np.all(np.diff(tr.row) >= 0)
    bb, ba = ch.bid_ticks[tr.row, 0], ch.ask_ticks[tr.row, 0]
    assert np.all((bb <= tr.price_ticks) & (tr.price_ticks <= ba))
    assert np.all(ch.bid_ticks[:, 0] < ch.ask_ticks[:, 0])
    assert np.all(np.diff(ch.bid_ticks, axis=1) < 0) and np.all(np.diff(ch.ask_ticks, axis=1) > 0)
    hi = np.rint(c.high / 0.1).astype(np.int64)[tr.row // K]
    lo = np.rint(c.low / 0.1).astype(np.int64)[tr.row // K]
    assert np.all((lo <= tr.price_ticks) & (tr.price_ticks <= hi))
    # the open, high, low and close are printed; the first trade of a candle is the open, the last the close
    for i in range(len(c)):
        sel = tr.row // K == i
        if want[i] >= 4:
            p = tr.price_ticks[sel]
            o, h, lo_, cl = (np.rint(x[i] / 0.1) for x in (c.open, c.high, c.low, c.close))
            assert p[0] == o and p[-1] == cl and p.max() == h and p.min() == lo_
    # the events regenerate identically, candle by candle
    full = list(b.iter_batches(c))
    for i in range(len(c)):
        t0 = c.open_time_ms[i] / 1000.0
        mine = [x for x in full if t0 < x[0] <= t0 + 60.0]
        assert canonical(b.candle_events(i, c)) == canonical(mine)
