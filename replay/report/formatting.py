"""Numbers as a trader reads them: percent, USDT with 2 decimals, bps, durations like ``1h 13m``.

Every formatter takes what a metrics dict may hold (a float, an int, None, or the strings ``"inf"``/``"nan"`` that
``summary.json`` uses for non-finite floats) and returns text; none of them raise, because a report with one odd
number is better than no report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NA = "n/a"
PF_INF_NOTE = ("∞: no losing trade, so gross wins / gross losses has no finite value (a profit factor of ∞ on a "
               "handful of trades says little).")


def as_float(x: Any) -> float | None:
    """A metric value as a float: None, non-numbers and booleans give None; ``"inf"``/``"-inf"``/``"nan"`` parse."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    return None


def _grouped(x: float, digits: int) -> str:
    return f"{x:,.{digits}f}"


def fmt_num(x: Any, digits: int = 2) -> str:
    """A plain number with thousands separators; ∞ kept as a symbol."""
    v = as_float(x)
    if v is None or math.isnan(v):
        return NA
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return _grouped(v, digits)


def fmt_int(x: Any) -> str:
    v = as_float(x)
    return NA if v is None or not math.isfinite(v) else f"{round(v):,d}"


def fmt_usdt(x: Any, *, sign: bool = False) -> str:
    """``1,234.56 USDT``; ``sign`` prefixes + for gains (PnL), never for balances."""
    v = as_float(x)
    if v is None or not math.isfinite(v):
        return fmt_num(x)
    text = _grouped(v, 2)
    if text in ("-0.00",):
        text = "0.00"
    return f"{'+' if sign and v > 0 and text != '0.00' else ''}{text} USDT"


def fmt_pct(x: Any, *, ratio: bool = False, digits: int = 2, sign: bool = False) -> str:
    """``12.34 %``. ``ratio``: the value is a fraction (0.1234) rather than already a percent."""
    v = as_float(x)
    if v is None or not math.isfinite(v):
        return fmt_num(x)
    v = v * 100.0 if ratio else v
    text = _grouped(v, digits)
    if text.lstrip("-").strip("0.,") == "":
        text = text.lstrip("-")
    return f"{'+' if sign and v > 0 and text.strip('0.,') else ''}{text} %"


def fmt_bps(x: Any, digits: int = 1) -> str:
    v = as_float(x)
    if v is None or not math.isfinite(v):
        return fmt_num(x)
    return f"{_grouped(v, digits)} bps"


def fmt_duration(seconds: Any) -> str:
    """``45s``, ``12m 5s``, ``1h 13m``, ``2d 4h``: two units at most, the larger one first."""
    v = as_float(seconds)
    if v is None or not math.isfinite(v):
        return NA
    neg, s = v < 0, round(abs(v))
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        text = f"{d}d {h}h" if h else f"{d}d"
    elif h:
        text = f"{h}h {m}m" if m else f"{h}h"
    elif m:
        text = f"{m}m {sec}s" if sec else f"{m}m"
    else:
        text = f"{sec}s"
    return f"−{text}" if neg else text


def fmt_pf(x: Any) -> str:
    """Profit factor with 2 decimals; ∞ (no losing trade) is marked for the footnote :data:`PF_INF_NOTE`."""
    v = as_float(x)
    if v is not None and math.isinf(v) and v > 0:
        return "∞ *"
    return fmt_num(v, 2)


def fmt_ratio(x: Any) -> str:
    """Sharpe/Sortino/Calmar: None means the metrics chose not to annualise (see ``ratios_note``)."""
    return "n/a †" if x is None else fmt_num(x, 2)


def fmt_text(x: Any) -> str:
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, list | tuple):
        return ", ".join(str(i) for i in x) if x else "none"
    return str(x)


Formatter = Callable[[Any], str]

# The headline rows: (label, metrics key, formatter). The order is the order a trader asks the questions in.
HEADLINE: tuple[tuple[str, str, Formatter], ...] = (
    ("Net PnL", "total_pnl_usdt", lambda x: fmt_usdt(x, sign=True)),
    ("Net PnL, % of starting balance", "total_pnl_pct", lambda x: fmt_pct(x, sign=True)),
    ("Net PnL, sum of bps of entry notional", "total_pnl_bps", fmt_bps),
    ("Final equity", "final_equity", fmt_usdt),
    ("Max drawdown", "max_drawdown_pct", fmt_pct),
    ("Trades", "total_trades", fmt_int),
    ("Trades per day", "trades_per_day", lambda x: fmt_num(x, 1)),
    ("Win rate", "win_rate", lambda x: fmt_pct(x, ratio=True, digits=1)),
    ("Profit factor", "profit_factor", fmt_pf),
    ("Average win", "avg_win", lambda x: fmt_usdt(x, sign=True)),
    ("Average loss", "avg_loss", fmt_usdt),
    ("Average trade", "avg_pnl_bps", fmt_bps),
    ("Largest win", "largest_win", lambda x: fmt_usdt(x, sign=True)),
    ("Largest loss", "largest_loss", fmt_usdt),
    ("Longest win / loss streak", "streaks", fmt_text),
    ("Sharpe (daily, annualised)", "sharpe", fmt_ratio),
    ("Sortino (daily, annualised)", "sortino", fmt_ratio),
    ("Calmar", "calmar", fmt_ratio),
    ("Recovery factor", "recovery_factor", lambda x: fmt_num(x, 2)),
    ("Average hold", "avg_hold_sec", fmt_duration),
    ("Fees paid", "fees_paid_usdt", fmt_usdt),
    ("Maker share of filled quantity", "maker_share", lambda x: fmt_pct(x, ratio=True, digits=1)),
    ("Entry fill rate", "fill_rate", lambda x: fmt_pct(x, ratio=True, digits=1)),
    ("Average entry slippage vs mid", "avg_entry_slippage_bps", lambda x: fmt_bps(x, 2)),
    ("Average SL / TP distance", "sl_tp", fmt_text),
    ("Positions open at the end (marked to market)", "open_positions_at_end", fmt_int),
)


def headline_value(metrics: dict[str, Any], key: str, fmt: Formatter) -> str:
    """One headline cell; a few rows combine two metrics into one cell."""
    if key == "streaks":
        return f"{fmt_int(metrics.get('max_win_streak'))} / {fmt_int(metrics.get('max_loss_streak'))}"
    if key == "sl_tp":
        return f"{fmt_bps(metrics.get('avg_sl_distance_bps'))} / {fmt_bps(metrics.get('avg_tp_distance_bps'))}"
    return fmt(metrics.get(key))


def is_inf(x: Any) -> bool:
    v = as_float(x)
    return v is not None and math.isinf(v)
