"""One trial's work (a worker-side replay) and its score.

Workers only replay: :func:`evaluate` takes a picklable :class:`TrialTask` (settings as JSON, a window, the symbols),
runs the real bot on each symbol through :func:`replay.engine.run_account` (one isolated account per symbol, in a
scratch folder so no trial sees another's trades.csv) and returns plain numbers. The parent owns the study.

**Score** (what the optimizer maximises), per symbol::

    score = total_pnl_bps / days

the net PnL of every closed trade in basis points of its own entry notional (fees included), summed, per replayed day:
the normalised PnL of ``replay.metrics``, so it does not depend on position size, leverage or max open positions.
Unified mode aggregates the symbols' scores with the median or the worst one (``--aggregate``), so one symbol
cannot carry the set.

**Constraints** from ``backtest.target_metrics`` are constraints, not bonuses: a symbol with fewer than
``min_trades * days / 30`` closed trades (the target is per 30 days, scaled to the window, at least 1) or a max
drawdown above ``max_drawdown_pct`` makes the trial infeasible. An infeasible trial is told to Optuna with
``INFEASIBLE_SCORE - violation`` (so it ranks below every feasible one while TPE still sees which infeasible region is
closer), and its constraint values go to ``Trial.set_constraint`` for TPE's constrained mode. The other targets
(win rate, profit factor, Sharpe) are reported in the metrics, not optimized.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loguru import logger

INFEASIBLE_SCORE = -1.0e6
SCRATCH_PREFIX = "naporrr-trial-"
CONSTRAINT_NAMES = ("min_trades", "max_drawdown")
METRIC_KEYS = ("total_trades", "win_rate", "profit_factor", "total_pnl_bps", "avg_pnl_bps", "max_drawdown_pct",
               "sharpe", "fees_paid_usdt")
Aggregate = Literal["median", "worst"]


@dataclass(frozen=True, slots=True)
class TrialTask:
    """Everything a worker needs for one evaluation; picklable (settings travel as JSON)."""

    key: int  # the trial number (or a caller's id) echoed back
    settings_json: str
    symbols: tuple[str, ...]
    start: str
    end: str
    seed: int
    data_dir: str | None = None
    keep_equity: bool = False
    calibration_json: str | None = None  # generator coefficients (``optimize --calibration FILE``), as JSON text


@dataclass(slots=True)
class SymbolScore:
    symbol: str
    days: float
    metrics: dict[str, Any]
    trade_bps: list[float]  # per-trade normalised returns, for the deflated Sharpe ratio
    equity: list[tuple[float, float]] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(self.metrics["total_pnl_bps"]) / max(self.days, 1e-9)


@dataclass(slots=True)
class TrialOutcome:
    key: int
    symbols: dict[str, SymbolScore]
    error: str | None = None


def evaluate(task: TrialTask) -> TrialOutcome:
    """Replay every symbol of ``task`` on its own account and return its metrics (runs in a worker)."""
    from replay.engine import SymbolJob, run_account

    logger.disable("bot")  # a trial's bot log is noise at this level; the study keeps the numbers
    logger.disable("replay")
    sweep_orphan_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    out: dict[str, SymbolScore] = {}
    try:
        for sym in task.symbols:
            job = SymbolJob(symbol=sym, settings_json=task.settings_json, out_dir=str(scratch / sym), seed=task.seed,
                            start=task.start, end=task.end, data_dir=task.data_dir,
                            calibration_json=task.calibration_json)
            r = run_account(job).symbols[sym]
            metrics = {k: r.metrics.get(k) for k in METRIC_KEYS}
            equity = [(p.ts, p.equity) for p in r.equity] if task.keep_equity else []
            out[sym] = SymbolScore(sym, (r.end_ts - r.start_ts) / 86_400.0, metrics, [t.pnl_bps for t in r.trades],
                                   equity)
        return TrialOutcome(task.key, out)
    except Exception as exc:  # a settings combination the bot refuses is a failed trial, not a failed study
        return TrialOutcome(task.key, out, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        logger.enable("bot")
        logger.enable("replay")


def sweep_orphan_scratch(tmp: Path | None = None) -> list[Path]:
    """Delete trial scratch folders whose worker process is gone (a killed study leaves them behind).

    Scratch lives in the worker's temp dir (a Dask worker may be another host, so not under the study folder); its
    name carries the worker's pid, and a folder whose pid no longer runs belongs to nobody.
    """
    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = d.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@dataclass(frozen=True, slots=True)
class Constraints:
    min_trades_per_30d: int
    max_drawdown_pct: float

    @classmethod
    def from_settings(cls, settings: Any) -> Constraints:
        tm = settings.backtest.target_metrics
        return cls(tm.min_trades, tm.max_drawdown_pct)

    def min_trades(self, days: float) -> int:
        """The trade-count floor for a window of ``days`` (the target is per 30 days)."""
        if self.min_trades_per_30d <= 0:
            return 0
        return max(1, math.ceil(self.min_trades_per_30d * days / 30.0))

    def violations(self, s: SymbolScore) -> list[float]:
        """Constraint values, <= 0 when satisfied (Optuna's convention): relative trade shortfall, excess DD."""
        need = self.min_trades(s.days)
        trades = int(s.metrics["total_trades"])
        short = (need - trades) / need if need else -1.0
        dd = (float(s.metrics["max_drawdown_pct"]) - self.max_drawdown_pct) / self.max_drawdown_pct
        return [short, dd]


def aggregate_scores(values: Sequence[float], how: Aggregate) -> float:
    if not values:
        return INFEASIBLE_SCORE
    return float(statistics.median(values)) if how == "median" else float(min(values))


def score_outcome(outcome: TrialOutcome, constraints: Constraints, how: Aggregate = "median"
                  ) -> tuple[float, list[float], dict[str, Any]]:
    """(value told to Optuna, constraint values, attributes to store) for one finished trial."""
    if outcome.error is not None or not outcome.symbols:
        return INFEASIBLE_SCORE * 2, [1.0, 1.0], {"error": outcome.error or "no result", "feasible": False}
    per = {s: r.score for s, r in outcome.symbols.items()}
    viol = [max(v) for v in zip(*(constraints.violations(r) for r in outcome.symbols.values()), strict=True)]
    feasible = all(v <= 0 for v in viol)
    raw = aggregate_scores(list(per.values()), how)
    value = raw if feasible else INFEASIBLE_SCORE - sum(max(v, 0.0) for v in viol)
    attrs: dict[str, Any] = {
        "feasible": feasible,
        "raw_score": raw,
        "scores": per,
        "metrics": {s: r.metrics for s, r in outcome.symbols.items()},
        "trade_bps": {s: r.trade_bps for s, r in outcome.symbols.items()},
    }
    return value, viol, attrs


def summary_metrics(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Key metrics summed/averaged over symbols (for trials.csv and reports)."""
    ms = list(metrics.values())
    if not ms:
        return {}
    return {
        "trades": sum(int(m["total_trades"]) for m in ms),
        "pnl_bps": round(sum(float(m["total_pnl_bps"]) for m in ms), 4),
        "max_dd_pct": max(float(m["max_drawdown_pct"]) for m in ms),
        "win_rate": round(statistics.fmean(float(m["win_rate"]) for m in ms), 4),
    }
