"""Run metrics from closed trades and an equity curve (pure functions).

Conventions, stated once so a report can be read without the code:
- PnL is net of fees (both legs), from the bot's own fills. It is given in quote currency (USDT) at the bot's sizing and
  normalised: ``pnl_bps`` = net PnL / entry notional · 1e4, and ``norm_pnl_usdt`` = the same return on a fixed notional
  (``NORMALISED_NOTIONAL_USDT``), so comparisons do not depend on position size, leverage or max open positions.
- Sharpe, Sortino and Calmar use **daily** returns of the equity curve (the last equity of each UTC day, flat days
  included; a sample at exactly 00:00 UTC closes the day before), annualised with √365 / 365 because crypto perpetuals
  trade every day. Risk-free rate 0. With fewer than ``MIN_DAILY_RETURNS`` (30) daily returns they are None and
  ``ratios_note`` says why: the standard error of an annualised Sharpe from n daily returns is about √(365/n), ±13.5
  at n = 2 and still ±3.5 at n = 30, so below a month the figure is noise presented as a number.
- Max drawdown is on the equity curve (mark-to-market samples), in % of the running peak.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NORMALISED_NOTIONAL_USDT = 10_000.0
DAYS_PER_YEAR = 365.0
MIN_DAILY_RETURNS = 30  # fewer daily returns make annualised ratios meaningless: None, with ``ratios_note`` saying why


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One round trip, as the bot's trades.csv CLOSE row (plus its OPEN row) states it."""

    position_id: str
    symbol: str
    side: str            # Buy (long) | Sell (short)
    qty: float
    entry_price: float
    exit_price: float
    opened_ts: float
    closed_ts: float
    reason: str
    fees: float
    gross_pnl: float
    net_pnl: float
    maker_qty: float
    taker_qty: float
    sl: float
    tp: float
    entry_slippage_bps: float = 0.0  # signed, positive = entry worse than the mid at the signal

    @property
    def notional(self) -> float:
        return self.qty * self.entry_price

    @property
    def pnl_bps(self) -> float:
        return self.net_pnl / self.notional * 1e4 if self.notional > 0 else 0.0


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: float
    equity: float


def _streaks(wins: Sequence[bool]) -> tuple[int, int]:
    best_w = best_l = cur = 0
    prev: bool | None = None
    for w in wins:
        cur = cur + 1 if w == prev else 1
        prev = w
        if w:
            best_w = max(best_w, cur)
        else:
            best_l = max(best_l, cur)
    return best_w, best_l


def _daily_returns(equity: Sequence[EquityPoint]) -> np.ndarray:
    if len(equity) < 2:
        return np.zeros(0)
    ts = np.array([p.ts for p in equity])
    eq = np.array([p.equity for p in equity])
    day = np.floor(ts / 86_400.0).astype(np.int64)
    day[1:] = np.maximum(np.ceil(ts[1:] / 86_400.0).astype(np.int64) - 1, day[0])  # 00:00 UTC closes the day before
    days = np.arange(day[0], day[-1] + 1)
    idx = np.searchsorted(day, days, side="right") - 1  # last sample of each day (carried over flat days)
    closes = np.concatenate([[eq[0]], eq[idx]])
    return np.diff(closes) / closes[:-1]


def ratios_note(daily_returns: int) -> str:
    """Why Sharpe/Sortino/Calmar are absent from a run with ``daily_returns`` daily returns."""
    return (f"Sharpe/Sortino/Calmar need at least {MIN_DAILY_RETURNS} daily returns to be annualised, this run has "
            f"{daily_returns} (replay {MIN_DAILY_RETURNS} days or more)")


def max_drawdown_pct(equity: Sequence[EquityPoint]) -> float:
    if not equity:
        return 0.0
    eq = np.array([p.equity for p in equity])
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak) * 100.0)


def _r(x: float, nd: int = 6) -> float:
    """Rounded for byte-stable JSON; inf/nan become None-free sentinels the JSON writer maps."""
    if math.isinf(x) or math.isnan(x):
        return x
    return round(x, nd)


def compute_metrics(trades: Sequence[ClosedTrade], equity: Sequence[EquityPoint], *, start_ts: float,
                    end_ts: float, initial_equity: float, entry_attempts: int | None = None,
                    entries_filled: int | None = None) -> dict[str, object]:
    """Every metric the reports show, as a flat JSON-ready dict (floats rounded for stable bytes).

    ``fill_rate`` = entries that got any fill / entry orders placed (None when the caller cannot count attempts).
    ``avg_entry_slippage_bps`` is signed against the trade: average entry price vs the book mid when the entry was
    decided (positive = paid more than mid for a long / received less for a short).
    """
    n = len(trades)
    days = max((end_ts - start_ts) / 86_400.0, 1e-9)
    pnl = np.array([t.net_pnl for t in trades]) if n else np.zeros(0)
    wins = pnl > 0
    gross_win = float(pnl[wins].sum()) if n else 0.0
    gross_loss = float(-pnl[~wins].sum()) if n else 0.0
    final_equity = equity[-1].equity if equity else initial_equity
    total_pnl = float(pnl.sum()) if n else 0.0
    mdd = max_drawdown_pct(equity)
    rets = _daily_returns(equity)
    mean_r = float(rets.mean()) if rets.size else 0.0
    std_r = float(rets.std(ddof=1)) if rets.size > 1 else 0.0
    dstd = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2))) if rets.size else 0.0  # downside dev. over all days
    ann_return = mean_r * DAYS_PER_YEAR
    enough = rets.size >= MIN_DAILY_RETURNS
    reasons = Counter(t.reason for t in trades)
    maker = sum(t.maker_qty for t in trades)
    taker = sum(t.taker_qty for t in trades)
    streak_w, streak_l = _streaks(list(wins))
    norm = np.array([t.pnl_bps for t in trades]) if n else np.zeros(0)
    sl_bps = [abs(t.entry_price - t.sl) / t.entry_price * 1e4 for t in trades if t.sl > 0]
    tp_bps = [abs(t.tp - t.entry_price) / t.entry_price * 1e4 for t in trades if t.tp > 0]
    return {
        "total_trades": n,
        "win_rate": _r(float(wins.mean()) if n else 0.0),
        "avg_win": _r(float(pnl[wins].mean()) if wins.any() else 0.0),
        "avg_loss": _r(float(pnl[~wins].mean()) if (~wins).any() else 0.0),
        "profit_factor": _r(gross_win / gross_loss if gross_loss > 0 else (math.inf if gross_win > 0 else 0.0)),
        "total_pnl_usdt": _r(total_pnl),
        "total_pnl_pct": _r(total_pnl / initial_equity * 100.0),
        "final_equity": _r(final_equity),
        "largest_win": _r(float(pnl.max()) if n else 0.0),
        "largest_loss": _r(float(pnl.min()) if n else 0.0),
        "max_drawdown_pct": _r(mdd),
        "sharpe": _r(mean_r / std_r * math.sqrt(DAYS_PER_YEAR) if std_r > 0 else 0.0) if enough else None,
        "sortino": _r(mean_r / dstd * math.sqrt(DAYS_PER_YEAR) if dstd > 0 else 0.0) if enough else None,
        "calmar": _r(ann_return * 100.0 / mdd if mdd > 0 else 0.0) if enough else None,
        "recovery_factor": _r(total_pnl / (mdd / 100.0 * initial_equity) if mdd > 0 else 0.0),
        "annualisation": "daily equity returns, sqrt(365); risk-free 0",
        "daily_returns": int(rets.size),
        "ratios_note": None if enough else ratios_note(int(rets.size)),
        "avg_hold_sec": _r(float(np.mean([t.closed_ts - t.opened_ts for t in trades])) if n else 0.0, 3),
        "trades_per_day": _r(n / days),
        "close_reasons": {k: reasons[k] for k in sorted(reasons)},
        "close_reason_share": {k: _r(reasons[k] / n) for k in sorted(reasons)},
        "max_win_streak": streak_w,
        "max_loss_streak": streak_l,
        "avg_sl_distance_bps": _r(float(np.mean(sl_bps)) if sl_bps else 0.0),
        "avg_tp_distance_bps": _r(float(np.mean(tp_bps)) if tp_bps else 0.0),
        "fees_paid_usdt": _r(sum(t.fees for t in trades)),
        "maker_share": _r(maker / (maker + taker) if maker + taker > 0 else 0.0),
        "fill_rate": (_r(entries_filled / entry_attempts if entry_attempts else 0.0)
                      if entry_attempts is not None and entries_filled is not None else None),
        "entry_attempts": entry_attempts,
        "avg_entry_slippage_bps": _r(float(np.mean([t.entry_slippage_bps for t in trades])) if n else 0.0),
        "avg_pnl_bps": _r(float(norm.mean()) if n else 0.0),
        "total_pnl_bps": _r(float(norm.sum()) if n else 0.0),
        "normalised_notional_usdt": NORMALISED_NOTIONAL_USDT,
        "total_norm_pnl_usdt": _r(float(norm.sum()) * NORMALISED_NOTIONAL_USDT / 1e4 if n else 0.0),
    }
