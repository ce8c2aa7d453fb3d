"""What the report reads besides the in-memory results: the bot's own trades.csv (execution details), candles made
coarse enough to draw, and the optional optimization / walk-forward files of a run folder.

The optional files follow the contract in :mod:`replay.report` (module docstring); a malformed file raises
``ValueError`` naming the file and the problem, since a silently empty section would look like "no data".
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from replay.metrics import EquityPoint

# Candle intervals the price chart may use, in seconds; the finest one that keeps at most MAX_CANDLES is chosen.
CANDLE_INTERVALS_SEC = (60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400)
MAX_CANDLES = 1000
MAX_EQUITY_POINTS = 1200
TRIALS_FILE = Path("optimization") / "trials.csv"
STUDY_FILE = Path("optimization") / "study.json"
WALK_FORWARD_FILE = Path("walk_forward.json")


@dataclass(frozen=True, slots=True)
class OHLC:
    """Candles for drawing: open times in epoch ms and prices, at ``interval_sec``."""

    interval_sec: int
    time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def candle_interval(span_sec: float, max_candles: int = MAX_CANDLES) -> int:
    """The finest interval of :data:`CANDLE_INTERVALS_SEC` that draws ``span_sec`` in at most ``max_candles``."""
    for iv in CANDLE_INTERVALS_SEC:
        if span_sec / iv <= max_candles:
            return iv
    return CANDLE_INTERVALS_SEC[-1]


def resample(time_ms: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
             max_candles: int = MAX_CANDLES) -> OHLC:
    """1m candles → the coarsest needed interval (aligned to UTC multiples of it), so a 30-day chart stays small.

    Buckets without candles (data gaps) are absent, not interpolated.
    """
    t = np.asarray(time_ms, dtype=np.int64)
    if t.size == 0:
        return OHLC(60, t, *(np.zeros(0) for _ in range(4)))
    span = (int(t[-1]) - int(t[0])) / 1000.0 + 60.0
    iv = candle_interval(span, max_candles)
    if iv == 60:
        return OHLC(iv, t, np.asarray(o), np.asarray(h), np.asarray(lo), np.asarray(c))
    bucket = t // (iv * 1000)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], t.size] - 1
    return OHLC(iv, bucket[starts] * iv * 1000, np.asarray(o)[starts], np.maximum.reduceat(np.asarray(h), starts),
                np.minimum.reduceat(np.asarray(lo), starts), np.asarray(c)[ends])


def equity_series(equity: Sequence[EquityPoint], max_points: int = MAX_EQUITY_POINTS
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time ms, equity, drawdown %) thinned to at most ``max_points``.

    Drawdown is computed on every sample first; a thinned point keeps its bucket's last equity and its deepest
    drawdown, so the worst drawdown drawn is the worst one measured.
    """
    if not equity:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)
    ts = np.array([p.ts for p in equity])
    eq = np.array([p.equity for p in equity])
    peak = np.maximum.accumulate(eq)
    dd = np.where(peak > 0, (eq - peak) / peak * 100.0, 0.0)
    t_ms = np.round(ts * 1000).astype(np.int64)
    eq, dd = eq.astype(np.float32), dd.astype(np.float32)  # 7 digits are plenty to draw; half the bytes
    if eq.size <= max_points:
        return t_ms, eq, dd
    step = math.ceil(eq.size / max_points)
    starts = np.arange(0, eq.size, step)
    ends = np.r_[starts[1:], eq.size] - 1
    return t_ms[ends], eq[ends], np.minimum.reduceat(dd, starts)


def summed_equity(curves: Sequence[Sequence[EquityPoint]]) -> list[EquityPoint]:
    """Isolated accounts as one: the curves summed on their common time grid, each carried forward (as
    :func:`replay.portfolio.aggregate` sums them for the metrics)."""
    grid = sorted({p.ts for c in curves for p in c})
    total = np.zeros(len(grid))
    for c in curves:
        if not c:
            continue
        ts = np.array([p.ts for p in c])
        vals = np.array([p.equity for p in c])
        idx = np.searchsorted(ts, grid, side="right") - 1
        total += np.where(idx >= 0, vals[np.maximum(idx, 0)], vals[0])
    return [EquityPoint(t, float(v)) for t, v in zip(grid, total, strict=True)]


@dataclass(slots=True)
class Execution:
    """Per-symbol execution facts from the bot's trades.csv: how each entry filled and how often it was chased."""

    entry_types: dict[str, int] = field(default_factory=dict)  # LIMIT, LIMIT_PARTIAL, LIMIT_PLUS_MARKET, ...
    amends: list[int] = field(default_factory=list)            # chase amends per closed position
    entry_maker_qty: float = 0.0
    entry_taker_qty: float = 0.0
    exit_maker_qty: float = 0.0
    exit_taker_qty: float = 0.0

    @property
    def market_fallbacks(self) -> int:
        return self.entry_types.get("MARKET_FALLBACK", 0) + self.entry_types.get("LIMIT_PLUS_MARKET", 0)


def _meta(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            out[k] = v
    return out


def _qty(x: str) -> float:
    try:
        return float(x)
    except ValueError:
        return 0.0


def read_execution(run_dir: Path) -> dict[str, Execution]:
    """Execution facts per symbol from every ``bot_*/trades.csv`` of a run folder (empty when there is none)."""
    out: dict[str, Execution] = {}
    opens: dict[str, tuple[float, float]] = {}
    for path in sorted(run_dir.glob("bot_*/trades.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                ex = out.setdefault(row["symbol"], Execution())
                maker, taker = _qty(row["maker_qty"]), _qty(row["taker_qty"])
                if row["event"] == "OPEN":
                    ex.entry_types[row["reason"]] = ex.entry_types.get(row["reason"], 0) + 1
                    ex.entry_maker_qty += maker
                    ex.entry_taker_qty += taker
                    opens[row["position_id"]] = (maker, taker)
                elif row["event"] == "CLOSE":
                    m0, t0 = opens.get(row["position_id"], (0.0, 0.0))
                    ex.exit_maker_qty += max(maker - m0, 0.0)  # CLOSE rows count entry and exit fills together
                    ex.exit_taker_qty += max(taker - t0, 0.0)
                    amends = _meta(row.get("meta", "")).get("amends")
                    if amends is not None and amends.isdigit():
                        ex.amends.append(int(amends))
    return out


@dataclass(frozen=True, slots=True)
class Trials:
    """An optimization's trials: numbers, objective values (None when not complete), states and parameters."""

    number: list[int]
    value: list[float | None]
    state: list[str]
    params: dict[str, list[float | str | None]]
    direction: str = "maximize"
    objective: str = "objective"

    def complete(self) -> list[int]:
        """Indices of the trials with a finite value."""
        return [i for i, v in enumerate(self.value) if v is not None and math.isfinite(v)]


def _cell(x: str) -> float | str | None:
    if x == "":
        return None
    try:
        return float(x)
    except ValueError:
        return x


def read_trials(run_dir: Path) -> Trials | None:
    """``optimization/trials.csv`` (+ optional ``optimization/study.json``), or None when the run has none."""
    path = run_dir / TRIALS_FILE
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = list(reader.fieldnames or ())
        if "number" not in cols or "value" not in cols:
            raise ValueError(f"{path}: needs the columns number and value (got {', '.join(cols) or 'none'})")
        pcols = [c for c in cols if c.startswith("params_")]
        rows = list(reader)
    number, value, state = [], [], []
    params: dict[str, list[float | str | None]] = {c.removeprefix("params_"): [] for c in pcols}
    for i, r in enumerate(rows, start=2):
        try:
            number.append(int(float(r["number"])))
        except ValueError:
            raise ValueError(f"{path}:{i}: number {r['number']!r} is not an integer") from None
        v = _cell(r["value"])
        value.append(v if isinstance(v, float) else None)
        state.append(r.get("state") or ("COMPLETE" if isinstance(v, float) else "FAIL"))
        for c in pcols:
            params[c.removeprefix("params_")].append(_cell(r[c]))
    study: dict[str, Any] = {}
    if (run_dir / STUDY_FILE).is_file():
        study = json.loads((run_dir / STUDY_FILE).read_text(encoding="utf-8"))
    direction = str(study.get("direction", "maximize")).lower()
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"{run_dir / STUDY_FILE}: direction must be maximize or minimize, got {direction!r}")
    return Trials(number, value, state, params, direction, str(study.get("objective", "objective")))


def read_walk_forward(run_dir: Path) -> dict[str, Any] | None:
    """``walk_forward.json``, checked for the fields the report draws, or None when the run has none."""
    path = run_dir / WALK_FORWARD_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    folds = data.get("folds") if isinstance(data, dict) else None
    if not isinstance(folds, list) or not folds:
        raise ValueError(f"{path}: needs a non-empty list 'folds'")
    need = ("train_start", "train_end", "test_start", "test_end", "in_sample", "out_of_sample")
    for i, fold in enumerate(folds):
        missing = [k for k in need if k not in fold]
        if missing:
            raise ValueError(f"{path}: fold {i} lacks {', '.join(missing)}")
    return data
