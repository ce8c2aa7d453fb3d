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
    # 30 days whose closes return +20%, −25%, +10%, +10%, +20%, ... (each cycle: a 25% drawdown from a new peak)
    rets = ([0.2, -0.25, 0.1, 0.1] * 8)[:30]
    curve = [EquityPoint(0.0, 100.0)]
    for i, r in enumerate(rets):
        curve.append(EquityPoint((i + 0.5) * DAY, curve[-1].equity * (1 + r)))
    m = compute_metrics([], curve, start_ts=0.0, end_ts=30 * DAY, initial_equity=100.0)
    assert m["daily_returns"] == 30 and m["ratios_note"] is None
    mean = sum(rets) / 30
    std = math.sqrt(sum((r - mean) ** 2 for r in rets) / 29)
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / 30)
    assert m["max_drawdown_pct"] == pytest.approx(25.0)
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(365), rel=1e-5)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365), rel=1e-5)
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


def _flat_curve(days: float, *, start: float = 0.0, step: float = 300.0) -> list[EquityPoint]:
    """Equity sampled every ``step`` seconds like a replay, drifting so no ratio is trivially zero."""
    n = round(days * DAY / step)
    return [EquityPoint(start + i * step, 1000.0 + 0.01 * i + (i % 7)) for i in range(n + 1)]


@pytest.mark.parametrize(("days", "start", "expected"), [
    (0.9, 0.0, 1),
    (2.0, 0.0, 2),        # issue 13: a 2-day run was annualised
    (2.0, 0.5 * DAY, 3),  # noon to noon: two part days and one whole day
    (29.0, 0.0, 29),
])
def test_annualised_ratios_need_thirty_daily_returns(days: float, start: float, expected: int) -> None:
    m = compute_metrics([], _flat_curve(days, start=start), start_ts=start, end_ts=start + days * DAY,
                        initial_equity=1000.0)
    assert m["daily_returns"] == expected
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert m["ratios_note"] == (f"Sharpe/Sortino/Calmar need at least 30 daily returns to be annualised, this run has "
                                f"{expected} (replay 30 days or more)")


def test_a_sample_at_midnight_closes_the_day_before() -> None:
    """A 30-day run from 00:00 to 00:00 has 30 daily returns, not 31 (the last sample is the 30th day's close)."""
    m = compute_metrics([], _flat_curve(30.0), start_ts=0.0, end_ts=30 * DAY, initial_equity=1000.0)
    assert m["daily_returns"] == 30 and m["ratios_note"] is None
    assert m["sharpe"] is not None and m["sortino"] is not None and m["calmar"] is not None
