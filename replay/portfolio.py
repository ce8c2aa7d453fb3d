"""One account, several symbols: per-symbol equity contributions, the isolated-runs aggregate, return correlation.

A portfolio replay runs one bot on one simulated account (ARCHITECTURE.md §8), so its equity curve is the account's.
Per-symbol rows are *contributions* to that account: ``initial balance + the symbol's realised PnL − its fees − its
funding + its unrealised PnL``, re-derived from the exchange's own execution list with the exchange's own netting
rule (:func:`bot.adapters.simulated.ledger.net_fill`), in ``Decimal``. The contributions therefore add up exactly to
the account's equity, and a one-symbol run's contribution *is* its account equity.

Isolated runs (``--isolated``: one account per symbol) are summed by :func:`aggregate` on their common sample grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from bot.adapters.simulated.ledger import ZERO, net_fill
from bot.instruments import to_decimal
from replay.metrics import EquityPoint, compute_metrics

CORRELATION_BUCKET_SEC = 3600.0
MIN_CORRELATION_POINTS = 3


class Contributions:
    """Per-symbol PnL contributions to one simulated account, brought up to date from its ledger on demand."""

    def __init__(self, exchange: Any, symbols: Sequence[str]) -> None:
        self._ex = exchange
        self.symbols = tuple(symbols)
        self._seen = 0  # ledger entries already applied
        self._pos: dict[str, tuple[Decimal, Decimal]] = {}  # symbol → (signed size, cost), as the exchange nets
        self._net: dict[str, Decimal] = {s: ZERO for s in self.symbols}  # realised − fees − funding

    def _catch_up(self) -> None:
        entries = self._ex.ledger.entries
        for ex in entries[self._seen:]:
            sym = ex.symbol
            if ex.exec_type == "Funding":
                self._net[sym] = self._net.get(sym, ZERO) - ex.exec_fee
                continue
            size, cost = self._pos.get(sym, (ZERO, ZERO))
            size, cost, realised, _ = net_fill(size, cost, 1 if ex.side == "Buy" else -1, ex.exec_qty, ex.exec_price)
            self._pos[sym] = (size, cost)
            self._net[sym] = self._net.get(sym, ZERO) + realised - ex.exec_fee
        self._seen = len(entries)

    def pnl(self) -> dict[str, Decimal]:
        """Each symbol's PnL so far (net realised plus unrealised at the exchange's last trade price)."""
        self._catch_up()
        out: dict[str, Decimal] = {}
        for sym in self.symbols:
            total = self._net.get(sym, ZERO)
            size, cost = self._pos.get(sym, (ZERO, ZERO))
            last = self._ex.last_price(sym)
            if size and last is not None:
                total += size * to_decimal(last) - (cost if size > 0 else -cost)
            out[sym] = total
        return out


def aggregate(results: Mapping[str, Any], initial_equity: float) -> dict[str, Any]:
    """Isolated runs (one account of ``initial_equity`` per symbol) as one book: equity curves summed on their common
    sample grid, trades pooled. Each curve holds one point per timestamp, so nothing is counted twice."""
    if not results:
        return {}
    trades = sorted((t for r in results.values() for t in r.trades), key=lambda t: (t.closed_ts, t.symbol,
                                                                                      t.position_id))
    start = min(r.start_ts for r in results.values())
    end = max(r.end_ts for r in results.values())
    curves = [{p.ts: p.equity for p in r.equity} for r in results.values()]  # last value per ts wins
    grid = sorted({ts for c in curves for ts in c})
    series = []
    for c in curves:  # carry each curve's last value forward over timestamps it does not have
        ts = sorted(c)
        idx = np.searchsorted(ts, grid, side="right") - 1
        vals = np.array([c[t] for t in ts])
        series.append(np.where(idx >= 0, vals[np.maximum(idx, 0)], initial_equity))
    total = np.sum(series, axis=0) if series else np.zeros(0)
    eq = [EquityPoint(t, float(v)) for t, v in zip(grid, total, strict=True)]
    attempts = [r.metrics.get("entry_attempts") for r in results.values()]
    filled = [r.metrics.get("entries_filled") for r in results.values()]
    known = None not in attempts and None not in filled
    m = compute_metrics(trades, eq, start_ts=start, end_ts=end, initial_equity=initial_equity * len(results),
                        entry_attempts=sum(attempts) if known else None,  # type: ignore[arg-type]
                        entries_filled=sum(filled) if known else None)  # type: ignore[arg-type]
    m["entries_filled"] = sum(filled) if known else None  # type: ignore[arg-type]
    m["symbols"] = list(results)
    m["open_positions_at_end"] = sum(int(r.metrics.get("open_positions_at_end", 0)) for r in results.values())
    return m


def correlation(equity: Mapping[str, Sequence[EquityPoint]],
                bucket_sec: float = CORRELATION_BUCKET_SEC) -> dict[str, Any]:
    """Pearson correlation of the symbols' equity changes per ``bucket_sec`` (mark-to-market PnL per hour).

    A pair is None when either series is flat or fewer than :data:`MIN_CORRELATION_POINTS` changes exist.
    """
    syms = list(equity)
    basis = f"equity change per {bucket_sec / 3600.0:g} h (mark-to-market), Pearson"
    if not syms:
        return {"basis": basis, "points": 0, "matrix": {}}
    start = min(p.ts for s in syms for p in equity[s][:1]) if any(equity[s] for s in syms) else 0.0
    end = max(p.ts for s in syms for p in equity[s][-1:]) if any(equity[s] for s in syms) else 0.0
    edges = start + bucket_sec * np.arange(0, math.floor((end - start) / bucket_sec) + 1)
    if len(edges) and edges[-1] < end:
        edges = np.append(edges, end)
    changes: dict[str, np.ndarray] = {}
    for s in syms:
        pts = equity[s]
        if not pts:
            changes[s] = np.zeros(max(len(edges) - 1, 0))
            continue
        ts = np.array([p.ts for p in pts])
        vals = np.array([p.equity for p in pts])
        idx = np.searchsorted(ts, edges, side="right") - 1
        at = np.where(idx >= 0, vals[np.maximum(idx, 0)], vals[0])
        changes[s] = np.diff(at)
    n = len(edges) - 1 if len(edges) else 0
    matrix: dict[str, dict[str, float | None]] = {}
    for a in syms:
        row: dict[str, float | None] = {}
        for b in syms:
            row[b] = _pearson(changes[a], changes[b]) if n >= MIN_CORRELATION_POINTS else None
        matrix[a] = row
    return {"basis": basis, "points": max(n, 0), "matrix": matrix}


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    sx, sy = float(np.std(x)), float(np.std(y))
    if sx == 0.0 or sy == 0.0:
        return None
    r = float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))
    return round(max(-1.0, min(1.0, r)), 6)
