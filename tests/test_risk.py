"""RiskManager §7.2–§7.4: SL/TP distances, prices, lifetime and the win-rate ring."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.instruments import InstrumentRegistry
from bot.risk import RiskManager, side_dir
from settings import Settings

REG = InstrumentRegistry.bundled()


def rm(**kw: dict) -> RiskManager:
    return RiskManager(Settings(**kw), REG)


# ------------------------------------------------------------------------------------------------ distances
@pytest.mark.parametrize(("range_pct", "atr_pct", "sl", "tp"), [
    (0.3, 0.1, 0.003, 0.010),     # sl from range·1.0; tp floor min_tp_pct
    (0.1, 0.2, 0.003, 0.010),     # sl from atr·1.5
    (0.5, 0.0, 0.004, 0.0125),    # sl 0.005 clamped to max_sl; tp from range·2.5
    (100.0, 0.0, 0.004, 0.015),   # range capped at max_vol_used_pct=5 → both clamped to max
    (0.0, 0.0, 0.002, 0.010),     # no volatility → static minimums
    (0.05, 0.02, 0.002, 0.010),   # tiny volatility → floors
])
def test_dynamic_distances(range_pct: float, atr_pct: float, sl: float, tp: float) -> None:
    assert rm().distances("BTCUSDT", range_pct, atr_pct) == pytest.approx((sl, tp))


def test_static_distances_when_dynamic_off() -> None:
    assert rm(risk={"enable_dynamic_tpsl": False}).distances("BTCUSDT", 3.0, 3.0) == (0.002, 0.010)


def test_negative_or_nan_volatility_is_an_error() -> None:
    with pytest.raises(ValueError, match="range_pct"):
        rm().distances("BTCUSDT", -1.0, 0.0)
    with pytest.raises(ValueError, match="atr_pct"):
        rm().distances("BTCUSDT", 0.0, float("nan"))


def _fill_history(r: RiskManager, sym: str, wins: int, losses: int) -> None:
    for i in range(wins + losses):
        r.record_close(sym, 1.0 if i < wins else -1.0, "TP_HIT" if i < wins else "SL_HIT", 1000.0 + i)


@pytest.mark.parametrize(("wins", "losses", "tp"), [
    (14, 6, 0.010),    # WR 0.70 > 0.6 → ratio 5.0 → 0.002·5
    (12, 8, 0.012),    # WR 0.60 (not > high) → medium ratio 6.0
    (10, 10, 0.012),   # WR 0.50 → medium
    (8, 12, 0.012),    # WR 0.40 (not < low) → medium
    (6, 14, 0.015),    # WR 0.30 → ratio 7.5 → 0.015
])
def test_ratio_adaptation_bands(wins: int, losses: int, tp: float) -> None:
    r = rm()
    _fill_history(r, "ETHUSDT", wins, losses)
    assert r.tpsl_ratio("ETHUSDT") is not None
    assert r.distances("ETHUSDT", 0.0, 0.0) == pytest.approx((0.002, tp))
    assert r.distances("BTCUSDT", 0.0, 0.0) == pytest.approx((0.002, 0.010))  # other symbol untouched


def test_ratio_needs_min_history_and_flag() -> None:
    r = rm()
    _fill_history(r, "ETHUSDT", 5, 14)  # 19 < 20
    assert r.tpsl_ratio("ETHUSDT") is None
    r.record_close("ETHUSDT", -1.0, "SL_HIT", 2000.0)
    assert r.tpsl_ratio("ETHUSDT") == 7.5
    off = rm(risk={"enable_dynamic_tpsl_ratio": False})
    _fill_history(off, "ETHUSDT", 5, 25)
    assert off.tpsl_ratio("ETHUSDT") is None


def test_ratio_applies_before_clamp() -> None:
    r = rm()
    _fill_history(r, "SOLUSDT", 20, 0)  # ratio 5
    # sl = 0.0025 from range 0.25 → tp = 0.0125 (range·2.5 = 0.00625 would have been floored to 0.010)
    assert r.distances("SOLUSDT", 0.25, 0.0) == pytest.approx((0.0025, 0.0125))


def test_history_ring_is_bounded() -> None:
    r = rm(risk={"position_history_size": 50, "min_history_for_adaptation": 5})
    _fill_history(r, "BTCUSDT", 0, 60)
    _fill_history(r, "BTCUSDT", 50, 0)  # the 50 wins push every loss out
    assert len(r.history("BTCUSDT")) == 50 and r.win_rate("BTCUSDT") == 1.0


# ------------------------------------------------------------------------------------------------ prices
@pytest.mark.parametrize(("sym", "side", "e", "sl", "tp", "sl_p", "tp_p"), [
    ("BTCUSDT", 1, D("60000.05"), 0.002, 0.01, D("59880.0"), D("60600.1")),
    ("BTCUSDT", -1, D("60000"), 0.002, 0.01, D("60120.0"), D("59400.0")),
    ("BTCUSDT", "Buy", D("60000.05"), 0.0, 0.0, D("59999.9"), D("60000.2")),    # one-tick minimum off-grid e
    ("BTCUSDT", "SHORT", D("60000"), 0.0, 0.0, D("60000.1"), D("59999.9")),     # one-tick minimum on-grid e
    ("1000PEPEUSDT", 1, D("0.0123456"), 0.002, 0.01, D("0.012321"), D("0.012469")),
    ("DOGEUSDT", -1, D("0.12"), 0.002, 0.01, D("0.12024"), D("0.11880")),
])
def test_sltp_prices(sym: str, side: int | str, e: D, sl: float, tp: float, sl_p: D, tp_p: D) -> None:
    got = rm().sltp_prices(sym, side, e, sl, tp)
    assert got == (sl_p, tp_p)
    assert all(REG[sym].on_tick(p) for p in got)


def test_sltp_prices_rejects_bad_entry_and_side() -> None:
    with pytest.raises(ValueError, match="entry price"):
        rm().sltp_prices("BTCUSDT", 1, D(0), 0.002, 0.01)
    with pytest.raises(ValueError, match="side"):
        side_dir(0)


# ------------------------------------------------------------------------------------------------ lifetime
@pytest.mark.parametrize(("kw", "std", "expected"), [
    ({}, 0.3, 5400.0),     # low vol → ×1.5
    ({}, 1.0, 3600.0),
    ({}, 2.5, 2520.0),     # high vol → ×0.7
    ({"base_position_lifetime_minutes": 200}, 0.3, 7200.0),   # clamp max
    ({"base_position_lifetime_minutes": 4}, 3.0, 300.0),      # clamp min
    ({"enable_adaptive_lifetime": False}, 0.3, 3600.0),
])
def test_lifetime(kw: dict, std: float, expected: float) -> None:
    assert rm(risk=kw).lifetime(std) == pytest.approx(expected)


# ------------------------------------------------------------------------------------------------ rebuild
HEADER = ("ts,event,position_id,symbol,side,qty,price,entry_price,sl,tp,reason,maker_qty,taker_qty,fees,gross_pnl,"
          "net_pnl,hold_sec,max_lifetime_sec,signal_ts,signal,meta\n")


def test_rebuild_from_trades_csv(tmp_path: Path) -> None:
    p = tmp_path / "trades.csv"
    p.write_text(HEADER
                 + "2025-12-08T13:29:09.412Z,OPEN,a1,BTCUSDT,LONG,0.010,60000.0,60000.0,59880.0,60600.0,LIMIT,"
                   "0.010,0,0.12,,,,3600,2025-12-08T13:29:00.000Z,BUY3,\n"
                 + "2025-12-08T13:39:09.412Z,CLOSE,a1,BTCUSDT,LONG,0.010,60600.0,60000.0,59880.0,60600.0,TP_HIT,"
                   "0.010,0.010,0.45,6.0,5.55,600,3600,2025-12-08T13:29:00.000Z,BUY3,\n"
                 + "2025-12-08T13:49:09.000Z,CLOSE,b2,ETHUSDT,SHORT,0.33,3010.00,3000.00,3006.00,2970.00,SL_HIT,"
                   "0.33,0.33,0.75,-3.3,-4.05,60,3600,2025-12-08T13:48:00.000Z,SELL3,\n")
    r = rm()
    assert r.rebuild_from_trades_csv(p) == 2
    (h,) = r.history("BTCUSDT")
    assert h.net_pnl == 5.55 and h.reason == "TP_HIT" and h.ts == pytest.approx(1765200549.412)
    assert r.win_rate("ETHUSDT") == 0.0
    assert rm().rebuild_from_trades_csv(tmp_path / "missing.csv") == 0


def test_rebuild_rejects_garbage(tmp_path: Path) -> None:
    p = tmp_path / "trades.csv"
    p.write_text(HEADER + "yesterday,CLOSE,a1,BTCUSDT,LONG,1,1,1,1,1,TP_HIT,0,0,0,0,oops,0,0,,,\n")
    with pytest.raises(ValueError, match=r"trades.csv:2"):
        rm().rebuild_from_trades_csv(p)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        rm().rebuild_from_trades_csv(tmp_path / "x.csv")
