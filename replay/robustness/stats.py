"""Pure robustness statistics over metric dicts, trade PnL lists and candles: no replay, no files, all seeded.

Rules (stated once here, quoted by the report and the README):

- **one-seed result**: the base run is profitable but the median generator seed is not (so at most half of the
  seeds are) — the edge may be a property of one synthetic path, not of the strategy.
- **ruin**: a Monte Carlo path whose drawdown from its running peak reaches :data:`RUIN_DD_PCT` % (50 %: half the
  peak equity gone is where a trader stops the bot).
- **fragile**: the base run is profitable and moving one parameter by ±PCT % (or a neighbour on the 3×3 grid) keeps
  less than :data:`FRAGILE_KEEP` (half) of its net PnL — a sharp peak, likely fitted to noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RUIN_DD_PCT = 50.0
FRAGILE_KEEP = 0.5
QUANTILES = (5.0, 50.0, 95.0)
SEED_METRICS = ("total_pnl_usdt", "profit_factor", "max_drawdown_pct", "total_trades")


def _finite(x: Any) -> float | None:
    """A metric as a float for statistics; PF ∞ (no losing trade) is capped so it still orders above any PF."""
    if not isinstance(x, int | float) or isinstance(x, bool) or math.isnan(x):
        return None
    return 1e9 if math.isinf(x) else float(x)


def distribution(values: Sequence[Any]) -> dict[str, float | None]:
    """min / median / max / share > 0 of one metric over variants (non-numbers ignored)."""
    xs = [v for v in (_finite(x) for x in values) if v is not None]
    if not xs:
        return {"min": None, "median": None, "max": None, "share_positive": None, "n": 0}
    return {"min": min(xs), "median": float(statistics.median(xs)), "max": max(xs),
            "share_positive": sum(x > 0 for x in xs) / len(xs), "n": len(xs)}


def seed_summary(rows: Sequence[Mapping[str, Any]], keys: Sequence[str] = SEED_METRICS) -> dict[str, dict[str, Any]]:
    """The distribution of each key metric over the seed rows (each row a metrics dict)."""
    return {k: distribution([r.get(k) for r in rows]) for k in keys}


def one_seed_flag(base_pnl: float, seed_pnls: Sequence[float]) -> str | None:
    """Why the base result only holds on its own seed, or None (rule in the module docstring)."""
    if base_pnl <= 0 or not seed_pnls:
        return None
    median = statistics.median(seed_pnls)
    if median > 0:
        return None
    share = sum(p > 0 for p in seed_pnls) / len(seed_pnls)
    return (f"base run is profitable but the median seed is not (median net {median:.2f} USDT, {share:.0%} of "
            f"the seeds profitable)")


def max_drawdown_pct(pnl: np.ndarray, initial: float) -> np.ndarray:
    """Max drawdown (% of the running peak, the start included) of each row of per-trade PnL paths: closed-trade
    equity, so it can be below the run's mark-to-market drawdown (open losses are not seen)."""
    paths = np.atleast_2d(pnl)
    equity = initial + np.cumsum(paths, axis=1)
    equity = np.concatenate([np.full((paths.shape[0], 1), float(initial)), equity], axis=1)
    peak = np.maximum.accumulate(equity, axis=1)
    dd = np.where(peak > 0, (peak - equity) / np.where(peak > 0, peak, 1.0), 1.0)
    return dd.max(axis=1) * 100.0


def resample_paths(pnl: Sequence[float], n: int, seed: int, method: str) -> np.ndarray:
    """``n`` trade sequences from the base trades: ``bootstrap`` draws with replacement (other outcomes the edge
    could have produced), ``shuffle`` permutes (same trades, same total, another order: path risk only)."""
    x = np.asarray(pnl, dtype=float)
    rng = np.random.default_rng(seed)
    if x.size == 0:
        return np.zeros((n, 0))
    if method == "bootstrap":
        return x[rng.integers(0, x.size, size=(n, x.size))]
    if method == "shuffle":
        return np.stack([rng.permutation(x) for _ in range(n)])
    raise ValueError(f"unknown Monte Carlo method {method!r} (bootstrap or shuffle)")


def monte_carlo(pnl: Sequence[float], initial: float, n: int, seed: int,
                ruin_dd_pct: float = RUIN_DD_PCT) -> dict[str, Any]:
    """Drawdown quantiles, final-PnL quantiles and risk of ruin per method, plus each path's max DD (for the
    histogram). Trades are in close order; sizes are the ones the base run traded (no re-sizing with equity)."""
    out: dict[str, Any] = {"paths": n, "seed": seed, "trades": len(pnl), "ruin_dd_pct": ruin_dd_pct,
                           "base_max_dd_pct": float(max_drawdown_pct(np.asarray(pnl, dtype=float), initial)[0])}
    for k, method in enumerate(("bootstrap", "shuffle")):
        paths = resample_paths(pnl, n, seed + k, method)
        dd = max_drawdown_pct(paths, initial)
        final = paths.sum(axis=1)
        out[method] = {
            "max_dd_pct": {f"p{q:g}": float(np.percentile(dd, q)) for q in QUANTILES},
            "net_pnl_usdt": {f"p{q:g}": float(np.percentile(final, q)) for q in QUANTILES},
            "risk_of_ruin": float((dd >= ruin_dd_pct).mean()),
            "dd_samples": [round(float(v), 4) for v in dd],
        }
    return out


def daily_ranges(open_time_ms: np.ndarray, high: np.ndarray, low: np.ndarray, open_: np.ndarray
                 ) -> dict[int, float]:
    """Each UTC day's range (max high − min low) relative to its first open: day start (epoch s) → range."""
    day = (np.asarray(open_time_ms, dtype=np.int64) // 86_400_000) * 86_400
    out: dict[int, float] = {}
    for d in np.unique(day):
        m = day == d
        first = float(np.asarray(open_)[m][0])
        out[int(d)] = (float(np.asarray(high)[m].max()) - float(np.asarray(low)[m].min())) / first if first else 0.0
    return out


def most_volatile_days(ranges: Mapping[int, float], k: int) -> list[int]:
    """The ``k`` days with the largest relative range, largest first (ties: earlier day first)."""
    return sorted(ranges, key=lambda d: (-ranges[d], d))[:k]


def largest_gaps(open_time_ms: np.ndarray, close: np.ndarray, k: int, min_apart_ms: int) -> list[tuple[int, float]]:
    """The ``k`` largest |close − previous close| / previous close 1m moves, as (open_time_ms, signed move), at least
    ``min_apart_ms`` apart so two windows do not replay the same hours. Close to close, so a gap between a candle's
    open and the previous close is included: Bybit's 1m klines open at the previous close (the bundled data has no
    open gap at all), so a pure open gap would find nothing. A zero move is no gap."""
    t = np.asarray(open_time_ms, dtype=np.int64)
    c = np.asarray(close, dtype=float)
    if t.size < 2:
        return []
    move = (c[1:] - c[:-1]) / np.where(c[:-1] != 0, c[:-1], 1.0)
    order = np.lexsort((t[1:], -np.abs(move)))
    chosen: list[tuple[int, float]] = []
    for i in order:
        if len(chosen) >= k or move[i] == 0:  # sorted by |move|: the rest are no move at all
            break
        if all(abs(int(t[i + 1]) - ct) >= min_apart_ms for ct, _ in chosen):
            chosen.append((int(t[i + 1]), float(move[i])))
    return chosen


def perturbed(value: float, pct: float, low: float | None, high: float | None, integer: bool) -> list[float]:
    """``value`` moved −pct % and +pct %, clipped to the field's range (an int rounded, at least one step away);
    a value that cannot move (zero, or pinned at both ends) gives fewer points."""
    out = []
    for sign in (-1.0, 1.0):
        v = value * (1.0 + sign * pct / 100.0)
        if integer:
            v = float(round(v))
            if v == value:
                v = value + sign
        if low is not None:
            v = max(v, float(low))
        if high is not None:
            v = min(v, float(high))
        if v != value and v not in out:
            out.append(int(v) if integer else round(v, 10))
    return out


def pnl_change(base: float, value: float) -> float | None:
    """Net PnL change as a fraction of the base's |net PnL| (None when the base is zero)."""
    return (value - base) / abs(base) if base else None


def fragile(base_pnl: float, neighbour_pnls: Sequence[float], keep: float = FRAGILE_KEEP) -> bool:
    """A profitable point is fragile when some neighbour keeps less than ``keep`` of its net PnL."""
    return base_pnl > 0 and any(p < keep * base_pnl for p in neighbour_pnls)


def most_sensitive(rows: Sequence[Mapping[str, Any]], base_pnl: float, n: int = 2) -> list[str]:
    """The ``n`` parameters whose one-at-a-time moves changed net PnL most (largest |Δ|), in that order."""
    worst: dict[str, float] = {}
    for r in rows:
        worst[r["param"]] = max(worst.get(r["param"], 0.0), abs(float(r["total_pnl_usdt"]) - base_pnl))
    return sorted(worst, key=lambda p: (-worst[p], p))[:n]
