"""Calibration: real recordings read into one form, hand-checked statistics, bad input, and the fidelity regression
(the synthetic market judged against a real recording it was not fitted on, through the real CLI)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibration.recordings import Recording, RecordingError, read_recording
from calibration.stats import market_stats, order_starts

ROOT = Path(__file__).resolve().parent.parent
L2 = ROOT / "data" / "l2"
BTC = L2 / "binance-usdm-btcusdt-2024-08-08-345s.gz"
ETH = L2 / "binance-usdm-ethusdt-2024-08-08-345s.gz"
CAPTURE = ROOT / "data" / "ws" / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calibration", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


@pytest.mark.parametrize(("judged", "fit_on"), [(BTC, ETH), (ETH, BTC)])
def test_fidelity_on_a_recording_the_generator_was_not_fitted_on(judged: Path, fit_on: Path) -> None:
    """The bands of the market-fidelity issue: each Binance recording judged with the generator fitted on the other."""
    out = _cli("compare", "--recording", str(judged), "--fit-on", str(fit_on), "--json")
    assert out.returncode == 0, out.stderr
    f = json.loads(out.stdout)
    print(json.dumps(f, indent=1))  # the figures, for the log
    assert 0.8 <= f["trades_per_min_ratio"] <= 1.25
    assert f["trade_notional_ks"] <= 0.15
    assert abs(f["active_second_share_synthetic"] - f["active_second_share_real"]) <= 0.10
    assert 0.7 <= f["depth_l1_ratio"] <= 1.4
    assert 0.7 <= f["depth_10bps_ratio"] <= 1.4
    assert abs(f["spread_1tick_share_synthetic"] - f["spread_1tick_share_real"]) <= 0.05
    assert 0.9 <= f["buy_share_ratio"] <= 1.1
    # leak probes: the reversal within the real probe's noise, nothing before a divergence changed beyond the
    # documented spread narrowing, the first seconds' volume nearly blind to the candle's volume
    assert abs(f["reversal_corr_synthetic"] - f["reversal_corr_real"]) <= 2 * f["reversal_corr_real_se"]
    assert abs(f["reversal_corr_synthetic"]) < 0.15
    assert f["perturb_event_changed_share"] < 0.1
    assert 0.95 < f["volume_first5s_ratio"] < 1.10


def test_default_table_names_every_figure() -> None:
    out = _cli("compare", "--recording", str(ETH))
    assert out.returncode == 0, out.stderr
    for label in ("trades / min", "trade notional median", "seconds with a trade", "spread = 1 tick",
                  "level-1 notional", "depth within 10bps", "buy share", "probe: corr(first 10 s, rest)",
                  "project defaults"):
        assert label in out.stdout, label


def test_readers_give_one_form_for_both_venues() -> None:
    (btc,) = read_recording(BTC)
    assert btc.venue == "binance-usdm" and btc.symbol == "BTCUSDT" and btc.tick == 0.1 and btc.step == 0.001
    assert np.all(np.diff(btc.trade_ms) >= 0) and btc.n_trades > 20_000
    assert np.all(btc.bid_px[:, 0] < btc.ask_px[:, 0]) and btc.bid_px.shape[1] == 50
    bybit = read_recording(CAPTURE)
    assert [r.symbol for r in bybit] == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(r.venue == "bybit-linear" and r.n_trades > 10 and len(r.book_ms) > 30 for r in bybit)
    # the rebuilt Bybit book is never crossed, and every trade is at or through the touch current when it prints
    for r in bybit:
        assert np.all(r.touch_bid < r.touch_ask)


def test_bad_recordings_name_file_and_line(tmp_path: Path) -> None:
    with gzip.open(ETH, "rb") as fh:
        lines = fh.read().splitlines()[:2000]
    bad = tmp_path / "corrupt.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\n".join([*lines[:10], b"1723161255088169167 {not json", *lines[10:]]))
    with pytest.raises(RecordingError, match=r"corrupt\.gz:11"):
        read_recording(bad)
    nosnap = tmp_path / "nosnap.gz"
    with gzip.open(nosnap, "wb") as f:
        f.write(b"\n".join(x for x in lines if b"lastUpdateId" not in x))
    with pytest.raises(RecordingError, match="no REST depth snapshot"):
        read_recording(nosnap)
    (tmp_path / "junk.txt").write_text("hello\n")
    with pytest.raises(RecordingError, match=r"junk\.txt:1"):
        read_recording(tmp_path / "junk.txt")
    out = _cli("compare", "--recording", str(tmp_path / "missing.gz"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "missing.gz" in out.stderr
    out = _cli()
    assert out.returncode == 2 and "compare" in out.stdout


def _rec(ms: list[int], px: list[float], qty: list[float], buy: list[bool]) -> Recording:
    bid = np.array([[9999.5, 9999.0] + [np.nan] * 48, [9999.5, 9990.0] + [np.nan] * 48])
    ask = np.array([[10000.0, 10000.5] + [np.nan] * 48, [10000.0, 10001.0] + [np.nan] * 48])
    q = np.full((2, 50), np.nan)
    q[:, :2] = 1.0
    return Recording("XUSDT", "test", "hand", 0.5, 0.1, np.array(ms, np.int64), np.array(px), np.array(qty),
                     np.array(buy), np.array([0, 1000], np.int64), bid, q, ask, q.copy(),
                     np.array([0, 500, 1000], np.int64), np.array([9999.0, 9999.5, 9999.5]),
                     np.array([10000.0, 10000.0, 10000.0]))


def test_stats_by_hand() -> None:
    # 6 trades over 120 s: an order of 3 fills at 0 ms, one at 500 ms, one at 61 s, one at 120 s
    r = _rec([0, 0, 0, 500, 61_000, 120_000], [100, 100, 100, 99, 99.5, 100], [1, 2, 1, 1, 1, 2],
             [True, True, True, False, True, True])
    assert order_starts(r.trade_ms, r.trade_is_buy).tolist() == [True, False, False, True, True, True]
    s = market_stats(r)
    assert s.trades_per_min == pytest.approx(3.0) and s.orders_per_min == pytest.approx(2.0)
    assert s.fills_per_order == pytest.approx(1.5)
    assert s.active_second_share == pytest.approx(3 / 121)
    assert s.inter_trade_zero_share == pytest.approx(2 / 5)
    assert s.spread_1tick_share == pytest.approx(2 / 3)  # spreads 2, 1, 1 ticks of 0.5
    assert s.depth_l1_notional == pytest.approx(9999.75)
    # per side and sample within 5 bps of the mid 9999.75: 19998.5, 20000.5 | 9999.5 (9990 is 9.75 bps away), 20001
    assert s.depth_cum_notional["5bps"] == pytest.approx(19999.5)
    assert s.depth_cum_notional["25bps"] == pytest.approx((19998.5 + 20000.5) / 2)
    assert s.buy_share == pytest.approx(5 / 6)
    assert s.notional_median == pytest.approx(100.0)
