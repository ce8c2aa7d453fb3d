"""Walk-forward: rolling in-sample searches, each judged on the out-of-sample part that follows it.

Fold k: in sample ``[lo + k·step, lo + k·step + window)``, out of sample ``[that end, that end + step)``; folds are
added while the out-of-sample part ends inside the data. Out-of-sample parts are therefore back to back and never
overlap, and together cover ``[lo + window, lo + window + n·step)``.

Per fold the search runs as its own study (``fold00-unified``, ...) in the same study.db, so an interrupted
walk-forward resumes fold by fold. The folds' searches run side by side on one executor (each round takes trials from
every unfinished fold in turn, :func:`replay.optimize.study.run_studies`), then the out-of-sample replays of every
fold (best and current parameters) fan out together.

Reported (``walk_forward.json``): each fold's windows, chosen parameters, in/out-of-sample metrics and deflated Sharpe
ratio; the concatenated out-of-sample PnL curve (each fold's curve shifted to start where the previous one ended, in
USDT at the bot's sizing, summed over the target's symbols); **walk-forward efficiency** = mean out-of-sample score /
mean in-sample score of the chosen parameters (both per day, so window lengths cancel; None when the in-sample mean is
not positive); **parameter stability** per parameter: numeric: ``1 - min(1, 2·std/(high - low))`` of the chosen
values across folds (1 = the same value every fold), categorical: the share of folds choosing the most common value;
overall: the mean.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from replay.data.timeutil import fmt_utc
from replay.optimize import apply as ap
from replay.optimize import space as sp
from replay.optimize.objective import Constraints
from replay.optimize.run import (
    MINUTE_MS,
    OptimizeConfig,
    _strip,
    current_values,
    evaluation,
    overfitting,
    run_evaluations,
    search,
    targets,
    task,
)
from replay.optimize.study import best_feasible, write_trials_csv
from settings import Settings
from settings.fields import ParamSpec
from settings.search import apply_optimizer_params

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int

    def as_dict(self) -> dict[str, Any]:
        return {"fold": self.index, "in_sample": [fmt_utc(self.is_start), fmt_utc(self.is_end)],
                "out_of_sample": [fmt_utc(self.oos_start), fmt_utc(self.oos_end)]}


def make_folds(lo: int, hi: int, window_days: float, step_days: float) -> list[Fold]:
    """Rolling folds over ``[lo, hi)`` (ms); window and step are rounded to whole minutes."""
    window = round(window_days * DAY_MS / MINUTE_MS) * MINUTE_MS
    step = round(step_days * DAY_MS / MINUTE_MS) * MINUTE_MS
    if window <= 0 or step <= 0:
        raise ValueError("walk-forward window and step must be at least one minute")
    out: list[Fold] = []
    k = 0
    while lo + k * step + window + step <= hi:
        a = lo + k * step
        out.append(Fold(k, a, a + window, a + window, a + window + step))
        k += 1
    if not out:
        raise ValueError(f"the window {fmt_utc(lo)} → {fmt_utc(hi)} is shorter than one walk-forward fold "
                         f"({window_days:g} days in sample + {step_days:g} days out of sample)")
    return out


def stability(chosen: Sequence[Mapping[str, Any]], specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """How alike the folds' chosen parameters are (1 = identical); see the module docstring."""
    per: dict[str, float] = {}
    for name, spec in specs.items():
        values = [c[name] for c in chosen if name in c]
        if not values:
            continue
        if spec.kind in ("int", "float") and len(values) > 1:
            span = float(spec.high) - float(spec.low)  # type: ignore[arg-type]
            per[name] = round(1 - min(1.0, 2 * statistics.pstdev(map(float, values)) / span), 6) if span else 1.0
        elif spec.kind in ("int", "float"):
            per[name] = 1.0
        else:
            counts = Counter(repr(v) for v in values)
            per[name] = round(counts.most_common(1)[0][1] / len(values), 6)
    return {"per_param": per, "overall": round(statistics.fmean(per.values()), 6) if per else None}


def efficiency(is_scores: Sequence[float], oos_scores: Sequence[float]) -> float | None:
    if not is_scores or not oos_scores:
        return None
    m_is = statistics.fmean(is_scores)
    return round(statistics.fmean(oos_scores) / m_is, 6) if m_is > 0 else None


def concat_equity(curves: Sequence[Mapping[str, Sequence[tuple[float, float]]]]) -> list[list[float]]:
    """Per fold {symbol: [(ts, equity)]} → one cumulative PnL curve [[ts, pnl]] across folds."""
    out: list[list[float]] = []
    offset = 0.0
    for fold in curves:
        if not fold:
            continue
        series = list(fold.values())
        n = min(len(s) for s in series)
        starts = [s[0][1] for s in series]
        for i in range(n):
            pnl = sum(s[i][1] - s0 for s, s0 in zip(series, starts, strict=True))
            point = [series[0][i][0], round(offset + pnl, 6)]
            if out and point[0] <= out[-1][0]:  # a fold starts where the previous one ended: one point per time
                out[-1] = point
            else:
                out.append(point)
        offset = out[-1][1]
    return out


def walk_forward(cfg: OptimizeConfig, executor: Executor, slots: int, specs: dict[str, ParamSpec], base: Settings,
                 lo: int, hi: int) -> dict[str, Any]:
    bt = cfg.settings.backtest
    window = bt.walk_forward_window_days if cfg.wf_window_days is None else cfg.wf_window_days
    step = bt.walk_forward_step_days if cfg.wf_step_days is None else cfg.wf_step_days
    if step > window:
        raise ValueError(f"walk-forward step ({step:g} days) must not exceed its window ({window:g} days)")
    folds = make_folds(lo, hi, window, step)
    constraints = Constraints.from_settings(base)
    tg = targets(cfg)
    items = [(f"fold{f.index:02d}-{name}", syms, f.is_start, f.is_end) for f in folds for name, syms in tg.items()]
    by_name = search(cfg, executor, slots, items, specs, base)  # every fold's search side by side
    studies = {(f.index, name): by_name[f"fold{f.index:02d}-{name}"] for f in folds for name in tg}
    jobs: list[tuple[int, str, str, Any]] = []
    bests = {k: best_feasible(st) for k, st in studies.items()}
    for f in folds:
        for name, syms in tg.items():
            jobs.append((f.index, name, "current_oos", task(len(jobs), base, syms, f.oos_start, f.oos_end, cfg, True)))
            best = bests[(f.index, name)]
            if best is not None:
                s = apply_optimizer_params(base, sp.decode(specs, best.params))
                jobs.append((f.index, name, "best_oos", task(len(jobs), s, syms, f.oos_start, f.oos_end, cfg, True)))
    outs = run_evaluations(executor, [j[3] for j in jobs])
    evals: dict[tuple[int, str], dict[str, Any]] = {}
    for (i, name, kind, _), out in zip(jobs, outs, strict=True):
        evals.setdefault((i, name), {})[kind] = evaluation(out, constraints, cfg.aggregate)
    report: dict[str, Any] = {"window_days": window, "step_days": step, "targets": {}}
    result_targets: dict[str, Any] = {}
    for name in tg:
        rows, chosen, is_scores, oos_scores, curves = [], [], [], [], []
        for f in folds:
            best, ev, study = bests[(f.index, name)], evals[(f.index, name)], studies[(f.index, name)]
            row: dict[str, Any] = f.as_dict() | {"trials": len(study.trials), "params": None, "is": None,
                                                 "oos": None, "current_oos": _strip(ev["current_oos"]),
                                                 "overfitting": overfitting(study, best)}
            if best is not None:
                params = sp.decode(specs, best.params)
                chosen.append(params)
                row["params"] = params
                row["is"] = {"score": best.user_attrs["raw_score"], "metrics": best.user_attrs["metrics"]}
                row["oos"] = _strip(ev["best_oos"])
                is_scores.append(float(best.user_attrs["raw_score"]))
                oos_scores.append(float(ev["best_oos"]["score"]))
                curves.append(ev["best_oos"]["equity"])
            rows.append(row)
            write_trials_csv(study, cfg.folder / "trials.csv", specs, f"fold{f.index:02d}-{name}")
        report["targets"][name] = {
            "folds": rows, "walk_forward_efficiency": efficiency(is_scores, oos_scores),
            "oos_score_mean": round(statistics.fmean(oos_scores), 6) if oos_scores else None,
            "parameter_stability": stability(chosen, specs), "oos_equity": concat_equity(curves),
            "oos_equity_unit": "cumulative PnL, USDT at the bot's sizing, summed over the target's symbols"}
        last = rows[-1]
        result_targets[name] = {
            "symbols": list(tg[name]), "in_sample": last["in_sample"], "out_of_sample": last["out_of_sample"],
            "trials": last["trials"], "params_searched": list(specs),
            "current": {"params": current_values(base, specs), "oos": last["current_oos"]},
            "best": None if last["params"] is None else {"trial": None, "params": last["params"], "is": last["is"],
                                                        "oos": last["oos"]},
            "improvement": None if last["oos"] is None else round(
                ap.improvement(last["oos"]["score"], last["current_oos"]["score"]), 6),
            "overfitting": last["overfitting"], "overlay_hash": ap.overlay_hash(cfg.overlay),
            "walk_forward_efficiency": report["targets"][name]["walk_forward_efficiency"],
            "parameter_stability": report["targets"][name]["parameter_stability"]["overall"],
            "folds": [{"fold": r["fold"], "is": r["is"]["score"] if r["is"] else None,
                       "oos": r["oos"]["score"] if r["oos"] else None, "current_oos": r["current_oos"]["score"]}
                      for r in rows],
        }
        if last["params"] is not None:
            preset = cfg.folder / f"preset_{name}.toml"
            ap.write_preset(preset, apply_optimizer_params(base, last["params"]),
                            f"walk-forward preset, study {cfg.study}, target {name}: the last fold's choice\n"
                            f"in sample {last['in_sample']}, out of sample {last['out_of_sample']}\n"
                            f"IS score {last['is']['score']:.3f}, OOS score {last['oos']['score']:.3f} bps/day; "
                            f"WFE {report['targets'][name]['walk_forward_efficiency']}; "
                            f"DSR {last['overfitting'].get('dsr')}\n"
                            f"generator calibration: {cfg.calibration or 'none (project defaults)'}")
            result_targets[name]["preset"] = str(preset)
    ap.write_json(cfg.folder / "walk_forward.json", report)
    return {"kind": "walk_forward", "targets": result_targets, "walk_forward_file": "walk_forward.json"}
