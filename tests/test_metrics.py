"""Run metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from replay.engine import with_entry_slippage
from replay.metrics import ClosedTrade, EquityPoint, compute_metrics, max_drawdown_pct

DAY = 86_400.0


def _t(pid: str, net: float, *, side: str = "LONG", entry: float = 100.0, qty: float = 1.0, reason: str = "TP_HIT",
       opened: float = 0.0, closed: float = 60.0) -> ClosedTrade:
    return ClosedTrade(position_id=pid, symbol="X", side=side, qty=qty, entry_price=entry, exit_price=entry,
                       opened_ts=opened, closed_ts=closed, reason=reason, fees=0.1, gross_pnl=net + 0.1, net_pnl=net,
                       maker_qty=qty, taker_qty=qty, sl=entry * 0.99, tp=entry * 1.02)


def test_trade_metrics_by_hand() -> None:
    trades = [_t("a", 2.0), _t("b", -1.0, reason="SL_HIT"), _t("c", 3.0), _t("d", -0.5, reason="SL_HIT"),
              _t("e", -0.5, reason="TIME_EXIT")]
    eq = [EquityPoint(0.0, 1000.0), EquityPoint(DAY, 1003.0)]
    m = compute_metrics(trades, eq, start_ts=0.0, end_ts=2 * DAY, initial_equity=1000.0, entry_attempts=6,
                        entries_filled=5)
    assert m["total_trades"] == 5
    assert m["win_rate"] == pytest.approx(0.4)
    assert m["profit_factor"] == pytest.approx(5.0 / 2.0)
    assert m["total_pnl_usdt"] == pytest.approx(3.0)
    assert m["total_pnl_pct"] == pytest.approx(0.3)
    assert m["avg_win"] == pytest.approx(2.5) and m["avg_loss"] == pytest.approx(-2.0 / 3.0)
    assert m["largest_win"] == 3.0 and m["largest_loss"] == -1.0
    assert m["max_win_streak"] == 1 and m["max_loss_streak"] == 2
    assert m["close_reasons"] == {"SL_HIT": 2, "TIME_EXIT": 1, "TP_HIT": 2}
    assert m["close_reason_share"]["SL_HIT"] == pytest.approx(0.4)
    assert m["trades_per_day"] == pytest.approx(2.5)
    assert m["fees_paid_usdt"] == pytest.approx(0.5)
    assert m["maker_share"] == pytest.approx(0.5)
    assert m["fill_rate"] == pytest.approx(5 / 6)
    assert m["avg_sl_distance_bps"] == pytest.approx(100.0) and m["avg_tp_distance_bps"] == pytest.approx(200.0)
    assert m["total_pnl_bps"] == pytest.approx(300.0)  # 3 USDT on 100 USDT notional each = 300 bps in total
    assert m["total_norm_pnl_usdt"] == pytest.approx(300.0)  # 300 bps of 10,000 USDT


def test_drawdown_and_daily_ratios() -> None:
    eq = [EquityPoint(0.0, 100.0), EquityPoint(0.5 * DAY, 120.0), EquityPoint(DAY + 1, 90.0),
          EquityPoint(2 * DAY + 1, 99.0), EquityPoint(3 * DAY + 1, 108.9)]
    assert max_drawdown_pct(eq) == pytest.approx(25.0)
    m = compute_metrics([], eq, start_ts=0.0, end_ts=4 * DAY, initial_equity=100.0)
    # daily closes: 100 (start), 120, 90, 99, 108.9 → returns +20%, −25%, +10%, +10%
    rets = [0.2, -0.25, 0.1, 0.1]
    mean = sum(rets) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in rets) / 3)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(365), rel=1e-5)
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.25**2 / 4) * math.sqrt(365), rel=1e-5)
    assert m["calmar"] == pytest.approx(mean * 365 * 100 / 25.0, rel=1e-5)
    assert m["fill_rate"] is None


def test_entry_slippage_is_signed_against_the_trade() -> None:
    class Rec:
        def __init__(self, pid: str, mid: float) -> None:
            self.position_id, self.decision_mid = pid, mid

    trades = [_t("L", 1.0, side="LONG", entry=100.1), _t("S", 1.0, side="SHORT", entry=100.1)]
    out = with_entry_slippage(trades, [Rec("L", 100.0), Rec("S", 100.0)])
    assert out[0].entry_slippage_bps == pytest.approx(10.0)   # long paid 10 bps above mid: worse
    assert out[1].entry_slippage_bps == pytest.approx(-10.0)  # short sold 10 bps above mid: better


def test_annualised_ratios_need_enough_days() -> None:
    eq = [EquityPoint(0.0, 100.0), EquityPoint(0.9 * DAY, 101.0)]
    m = compute_metrics([], eq, start_ts=0.0, end_ts=DAY, initial_equity=100.0)
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
