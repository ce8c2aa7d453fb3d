"""The robustness study of one run: every variant replay built, fanned out on one executor, and summarised.

A variant is the base run with one thing changed (generator seed, pessimistic path, a stress window, a parameter).
All variants of a phase go to the executor at once (the same ``concurrent.futures`` executor sweeps use) behind one
tqdm bar; the 3×3 grid needs the one-at-a-time results first, so it is a second, small phase. The base seed is
replayed again rather than read back, so the Monte Carlo and the sensitivity baseline use exactly the code and data
of the variants they are compared with.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from replay.artifacts import write_json
from replay.backtest import BacktestEngine
from replay.engine import Job, run_job
from replay.optimize.space import resolve as resolve_params
from replay.robustness import stats
from replay.runs import Run
from settings import Settings
from settings.search import with_overrides

RESULT_FILE = "robustness.json"
SCRATCH = "robustness_runs"
METRIC_KEYS = ("total_pnl_usdt", "total_pnl_bps", "profit_factor", "max_drawdown_pct", "total_trades", "win_rate")
GAP_HOURS = 3.0  # a gap is replayed with this many hours either side of it


@dataclass(frozen=True, slots=True)
class Base:
    """What the study varies around: a complete run's settings, symbols, window and seed."""

    run_dir: Path
    settings: Settings
    symbols: tuple[str, ...]
    start: str
    end: str
    seed: int
    isolated: bool = False
    calibration: Path | None = None  # the run's calibration.json: every variant replays the generator it used


@dataclass(slots=True)
class Variant:
    kind: str  # seed | stress | sensitivity | grid
    label: str
    settings: Settings
    start: str
    end: str
    seed: int
    pessimistic: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # the base seed keeps its full results (trades, equity) for the MC and the report


def base_from_run(run: Run) -> Base:
    """The base of a complete run folder, from its manifest (settings snapshot, symbols, window, seed, and the
    calibration copied into the folder, so a calibrated run is studied on its calibrated generator)."""
    m = run.manifest
    window = run.window()
    if window is None or not m.get("symbols"):
        raise ValueError(f"{run.path}: the manifest names no symbols or window")
    settings = Settings.model_validate(m["settings"])
    calibration = None
    if m.get("calibration"):
        calibration = run.path / str(m["calibration"].get("copied_to") or "calibration.json")
        if not calibration.is_file():
            raise FileNotFoundError(f"{run.path}: the run was calibrated but {calibration.name} is missing "
                                    "(its variants would replay the uncalibrated generator)")
    return Base(run.path, settings, tuple(m["symbols"]), window[0], window[1], int(m["seed"]),
                isolated=str(m.get("account", "")).startswith("isolated") and len(m["symbols"]) > 1,
                calibration=calibration)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _get(settings: Settings, path: str) -> Any:
    node: Any = settings
    for part in path.split("."):
        node = getattr(node, part)
    return node


class Study:
    """Builds and runs the variants of one base; ``run`` returns the JSON-ready result."""

    def __init__(self, base: Base, executor: Executor, *, progress: bool = False) -> None:
        self.base = base
        self.executor = executor
        self.progress = progress
        self.engine = BacktestEngine(base.settings, isolated=base.isolated, calibration=base.calibration)
        self.scratch = base.run_dir / SCRATCH
        self.phase = 0

    def variant(self, kind: str, label: str, *, settings: Settings | None = None, start: str | None = None,
                end: str | None = None, seed: int | None = None, pessimistic: bool = False, **info: Any) -> Variant:
        b = self.base
        return Variant(kind, label, settings or b.settings, start or b.start, end or b.end,
                       b.seed if seed is None else seed, pessimistic, info)

    def execute(self, variants: Sequence[Variant], desc: str) -> None:
        """Replay every variant on the executor (one job per account), filling ``metrics`` and ``result``."""
        from tqdm import tqdm

        self.phase += 1
        jobs: list[tuple[int, Job]] = []
        for i, v in enumerate(variants):
            engine = BacktestEngine(v.settings, isolated=self.base.isolated, calibration=self.base.calibration)
            out = self.scratch / f"{self.phase}-{i}"
            jobs += [(i, j) for j in engine._jobs(list(self.base.symbols), out, None, v.start, v.end, v.seed, False,
                                                  v.pessimistic)]
        futures = {self.executor.submit(run_job, j): k for k, (_, j) in enumerate(jobs)}
        done: list[Any] = [None] * len(jobs)
        with tqdm(total=len(jobs), desc=desc, unit="replay", disable=not self.progress) as bar:
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                bar.update(1)
        for i, v in enumerate(variants):
            results, agg, corr, equity = self.engine._collect([r for (vi, _), r in zip(jobs, done, strict=True)
                                                              if vi == i])
            v.metrics = {k: agg.get(k) for k in METRIC_KEYS}
            v.result = (results, agg, corr, equity)

    # -- variant builders -------------------------------------------------------------------------------------

    def seed_variants(self, n: int) -> list[Variant]:
        out = [self.variant("seed", f"seed {self.base.seed + k}{' (base)' if k == 0 else ''}",
                            seed=self.base.seed + k) for k in range(max(n, 1))]
        out.append(self.variant("seed", f"seed {self.base.seed}, pessimistic path", pessimistic=True))
        return out

    def stress_variants(self, k: int, candles: dict[str, Any]) -> list[Variant]:
        """The k most volatile UTC days (mean relative range over the symbols) and the k largest 1m moves (gaps)."""
        if k <= 0 or not candles:
            return []
        lo, hi = _ts(self.base.start), _ts(self.base.end)
        ranges: dict[int, list[float]] = {}
        for c in candles.values():
            for d, r in stats.daily_ranges(c.open_time_ms, c.high, c.low, c.open).items():
                ranges.setdefault(d, []).append(r)
        mean = {d: float(np.mean(r)) for d, r in ranges.items()}
        out = []
        for d in stats.most_volatile_days(mean, k):
            s, e = max(lo, float(d)), min(hi, d + 86_400.0)
            out.append(self.variant("stress", f"volatile day {_iso(d)[:10]}", start=_iso(s), end=_iso(e),
                                    what="volatile day", day_range_pct=round(mean[d] * 100, 4)))
        gaps = []
        for sym, c in candles.items():
            gaps += [(abs(g), t, g, sym) for t, g in stats.largest_gaps(c.open_time_ms, c.close, k,
                                                                       int(2 * GAP_HOURS * 3_600_000))]
        for _, t, g, sym in sorted(gaps, key=lambda x: (-x[0], x[1]))[:k]:
            s, e = max(lo, t / 1000 - GAP_HOURS * 3600), min(hi, t / 1000 + GAP_HOURS * 3600)
            out.append(self.variant("stress", f"1m move {sym} {_iso(t / 1000)}", start=_iso(s), end=_iso(e),
                                    what="largest 1m move", gap_pct=round(g * 100, 4)))
        return out

    def sensitivity_variants(self, params: Sequence[str] | None, pct: float) -> tuple[list[Variant], list[str]]:
        """Each numeric OPTIMIZABLE parameter moved ±pct % one at a time; returns the variants and the skipped."""
        out, skipped = [], []
        for name, spec in resolve_params(params).items():
            value = _get(self.base.settings, name)
            if spec.kind not in ("int", "float") or not isinstance(value, int | float) or isinstance(value, bool):
                skipped.append(f"{name} (not numeric)")
                continue
            moved = stats.perturbed(float(value), pct, spec.low, spec.high, spec.kind == "int")
            if not moved:
                skipped.append(f"{name} (cannot move from {value})")
            for v in moved:
                try:
                    s = with_overrides(self.base.settings, {name: v}, optimizer=True)
                except ValueError as exc:  # a cross-field rule (e.g. TP above SL) refuses this value
                    skipped.append(f"{name}={v} (invalid: {' '.join(str(exc).split())[:120]})")
                    continue
                out.append(self.variant("sensitivity", f"{name}={v}", settings=s, param=name, base_value=value,
                                        value=v, move_pct=round((v - value) / value * 100, 4) if value else None))
        return out, skipped

    def grid_variants(self, oat: Sequence[Variant], names: Sequence[str]) -> list[Variant]:
        """The corners of the 3×3 grid of the two named parameters (the axes are one-at-a-time runs)."""
        if len(names) < 2:
            return []
        a, b = names[:2]
        va = [v.info["value"] for v in oat if v.info["param"] == a]
        vb = [v.info["value"] for v in oat if v.info["param"] == b]
        return [self.variant("grid", f"{a}={x}, {b}={y}", settings=with_overrides(self.base.settings, {a: x, b: y},
                                                                                    optimizer=True),
                             params={a: x, b: y}) for x in va for y in vb]


def _row(v: Variant) -> dict[str, Any]:
    return {"label": v.label, "start": v.start, "end": v.end, "seed": v.seed, "pessimistic": v.pessimistic,
            **v.info, **v.metrics}


def _grid(settings: Settings, base_pnl: float, oat: Sequence[Variant], corners: Sequence[Variant],
          names: Sequence[str]) -> dict[str, Any]:
    """The 3×3 net-PnL grid of two parameters: the centre is the base run, the axes its one-at-a-time moves, the
    corners the grid replays (a cell a clipped parameter could not reach is None)."""
    a, b = names[:2]
    a0, b0 = _get(settings, a), _get(settings, b)
    cells: dict[tuple[Any, Any], Any] = {(a0, b0): base_pnl}
    cells |= {(v.info["value"], b0): v.metrics["total_pnl_usdt"] for v in oat if v.info["param"] == a}
    cells |= {(a0, v.info["value"]): v.metrics["total_pnl_usdt"] for v in oat if v.info["param"] == b}
    cells |= {(v.info["params"][a], v.info["params"][b]): v.metrics["total_pnl_usdt"] for v in corners}
    xs = sorted({x for x, _ in cells})
    ys = sorted({y for _, y in cells})
    return {"x": a, "y": b, "x_values": xs, "y_values": ys, "metric": "total_pnl_usdt",
            "z": [[cells.get((x, y)) for x in xs] for y in ys]}


def run_study(base: Base, executor: Executor, *, seeds: int = 4, mc: int = 1000, stress: int = 2,
              pct: float = 10.0, params: Sequence[str] | None = None, progress: bool = False
              ) -> tuple[dict[str, Any], Variant]:
    """Every part of the study; returns ``robustness.json``'s content and the base-seed variant (for the report)."""
    study = Study(base, executor, progress=progress)
    seed_vs = study.seed_variants(seeds)
    base_v = seed_vs[0]
    # the base first, alone: the stress windows are chosen from its candles
    try:
        study.execute([base_v], "robustness: base")
        candles = {s: r.extra.get("candles") for s, r in base_v.result[0].items() if r.extra.get("candles") is not None}
        stress_vs = study.stress_variants(stress, candles)
        sens_vs, skipped = study.sensitivity_variants(params, pct) if pct > 0 else ([], [])
        study.execute(seed_vs[1:] + stress_vs + sens_vs, "robustness: variants")
        base_pnl = float(base_v.metrics["total_pnl_usdt"])
        top = stats.most_sensitive([{"param": v.info["param"], **v.metrics} for v in sens_vs], base_pnl)
        grid_vs = study.grid_variants(sens_vs, top)
        if grid_vs:
            study.execute(grid_vs, "robustness: grid")
    finally:
        shutil.rmtree(study.scratch, ignore_errors=True)

    plain = [v for v in seed_vs if not v.pessimistic]
    trades = sorted((t for r in base_v.result[0].values() for t in r.trades), key=lambda t: (t.closed_ts,
                                                                                           t.position_id))
    initial = float(base.settings.backtest.initial_balance_usdt)
    neighbours = [float(v.metrics["total_pnl_usdt"]) for v in sens_vs + grid_vs]
    grid = _grid(base.settings, base_pnl, sens_vs, grid_vs, top) if grid_vs else None
    sens_rows = []
    for v in sens_vs:
        change = stats.pnl_change(base_pnl, float(v.metrics["total_pnl_usdt"]))
        sens_rows.append({**_row(v), "pnl_change": change})
    result = {
        "base": {"run_id": base.run_dir.name, "symbols": list(base.symbols), "start": base.start, "end": base.end,
                 "seed": base.seed, "calibration": base.calibration.name if base.calibration else None,
                 "initial_balance_usdt": initial, "metrics": base_v.metrics},
        "seeds": {"rows": [_row(v) for v in seed_vs],
                  "summary": stats.seed_summary([v.metrics for v in plain]),
                  "flag": stats.one_seed_flag(base_pnl, [float(v.metrics["total_pnl_usdt"]) for v in plain]),
                  "rule": "flagged when the base run is profitable but the median seed (pessimistic path not "
                          "counted) is not"},
        "monte_carlo": stats.monte_carlo([t.net_pnl for t in trades], initial, mc, base.seed),
        "stress": {"rows": [_row(v) for v in stress_vs], "gap_hours": GAP_HOURS},
        "sensitivity": {"pct": pct, "rows": sens_rows, "skipped": skipped, "grid": grid,
                        "fragile": stats.fragile(base_pnl, neighbours),
                        "rule": f"fragile when the base run is profitable and a ±{pct:g}% move of one parameter (or "
                                f"a 3×3 grid neighbour) keeps less than {stats.FRAGILE_KEEP:.0%} of its net PnL"},
    }
    write_json(base.run_dir / RESULT_FILE, result)
    return result, base_v
