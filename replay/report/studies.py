"""Hooks for the sections a run folder gains when an optimizer or a walk-forward wrote into it.

Each hook takes the run folder and the page, and adds nothing when the folder holds no such data, so
``write_report`` can always call them. The files' shapes are the contract in :mod:`replay.report`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from replay.report import figures
from replay.report.data import Trials, read_trials, read_walk_forward
from replay.report.formatting import fmt_num, fmt_text
from replay.report.layout import Page, esc, table

IMPORTANCE_FILE = Path("optimization") / "importance.json"
MIN_TRIALS_FOR_IMPORTANCE = 5


def numeric_params(trials: Trials, rows: Sequence[int]) -> dict[str, list[float]]:
    """The parameters that are numbers on every given trial and not constant (the ones a chart can place)."""
    out = {}
    for name, col in trials.params.items():
        vals = [col[i] for i in rows]
        if all(isinstance(v, float) and math.isfinite(v) for v in vals) and len(set(vals)) > 1:
            out[name] = [float(v) for v in vals]  # type: ignore[arg-type]
    return out


def importance(trials: Trials, rows: Sequence[int]) -> tuple[dict[str, float], str]:
    """Parameter importance: the optimizer's own (``optimization/importance.json``) if given, else |Spearman ρ|
    between each parameter and the objective over the complete trials, scaled to sum to 1 (a rough, monotone-only
    estimate: a parameter that matters non-monotonically scores low)."""
    from scipy.stats import spearmanr  # only when a study is drawn: scipy.stats takes a second to import

    params = numeric_params(trials, rows)
    values = [trials.value[i] for i in rows]
    scores: dict[str, float] = {}
    for name, col in params.items():
        rho = spearmanr(col, values).statistic if len(set(values)) > 1 else 0.0
        scores[name] = abs(float(rho)) if rho == rho else 0.0  # NaN (constant input) → 0
    total = sum(scores.values())
    return ({k: v / total for k, v in scores.items()} if total > 0 else scores), "|Spearman ρ| with the objective"


def _given_importance(run_dir: Path) -> dict[str, float] | None:
    path = run_dir / IMPORTANCE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping) or not all(isinstance(v, int | float) for v in data.values()):
        raise ValueError(f"{path}: must map parameter names to numbers")
    return {str(k): float(v) for k, v in data.items()}


def optimization_section(run_dir: Path, page: Page) -> bool:
    """Optimization history, parameter importance and parallel coordinates from ``optimization/trials.csv``."""
    trials = read_trials(run_dir)
    if trials is None:
        return False
    rows = trials.complete()
    page.section("Optimization", "optimization")
    states: dict[str, int] = {}
    for s in trials.state:
        states[s] = states.get(s, 0) + 1
    maximize = trials.direction == "maximize"
    page.note(f"{len(trials.number)} trials ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))}); "
              f"objective {trials.objective}, {'higher' if maximize else 'lower'} is better.")
    if not rows:
        page.note("No trial completed: nothing to draw.")
        return True
    number = [trials.number[i] for i in rows]
    values = [float(trials.value[i]) for i in rows]  # type: ignore[arg-type]
    best = (max if maximize else min)(range(len(rows)), key=lambda k: values[k])
    page.figure(figures.optimization_history(number, values, maximize, trials.objective), "opt-history")
    best_params = [(name, fmt_text(col[rows[best]])) for name, col in trials.params.items()]
    page.html(f"<p>Best trial: {esc(number[best])}, {esc(trials.objective)} = {esc(fmt_num(values[best], 4))}</p>"
              + table(("parameter", "value"), best_params))
    given = _given_importance(run_dir)
    if given is not None:
        page.figure(figures.parameter_importance(given, "as the optimizer computed it"), "opt-importance")
    elif len(rows) >= MIN_TRIALS_FOR_IMPORTANCE:
        scores, method = importance(trials, rows)
        if scores:
            page.figure(figures.parameter_importance(scores, method), "opt-importance")
    else:
        page.note(f"Parameter importance needs at least {MIN_TRIALS_FOR_IMPORTANCE} complete trials.")
    params = numeric_params(trials, rows)
    if params:
        page.figure(figures.parallel_coordinates(params, values, trials.objective), "opt-parallel")
    return True


def _cell(m: Any, key: str) -> str:
    return fmt_num(m.get(key), 2) if isinstance(m, Mapping) else "n/a"


def walk_forward_section(run_dir: Path, page: Page) -> bool:
    """In-sample vs out-of-sample per fold from ``walk_forward.json``."""
    data = read_walk_forward(run_dir)
    if data is None:
        return False
    folds: list[dict[str, Any]] = data["folds"]
    objective = str(data.get("objective", "total_pnl_bps"))
    page.section("Walk-forward", "walk-forward")
    page.note("Each fold optimizes on its train window (in sample) and is then replayed, unchanged, on the following "
              "test window (out of sample). Out-of-sample results are the ones to believe.")
    page.figure(figures.walk_forward_folds(folds, objective), "walk-forward")
    keys = [objective] + [k for k in ("total_trades", "total_pnl_usdt", "max_drawdown_pct") if k != objective]
    header = ["fold", "train (UTC)", "test (UTC)"] + [f"{k} IS" for k in keys] + [f"{k} OOS" for k in keys]
    rows = []
    for i, f in enumerate(folds):
        rows.append([f.get("fold", i + 1), f"{f['train_start']} → {f['train_end']}", f"{f['test_start']} → "
                     f"{f['test_end']}", *[_cell(f["in_sample"], k) for k in keys],
                     *[_cell(f["out_of_sample"], k) for k in keys]])
    page.html(table(header, rows))
    oos = [f["out_of_sample"].get(objective) for f in folds if isinstance(f["out_of_sample"], Mapping)]
    oos_f = np.array([v for v in oos if isinstance(v, int | float)], dtype=float)
    if oos_f.size:
        page.note(f"Out of sample: {objective} summed over folds {fmt_num(oos_f.sum(), 2)}, positive in "
                  f"{int((oos_f > 0).sum())} of {oos_f.size} folds.")
    params = [f.get("params") for f in folds]
    if any(isinstance(p, Mapping) and p for p in params):
        names = sorted({k for p in params if isinstance(p, Mapping) for k in p})
        page.html("<details><summary>chosen parameters per fold</summary>" + table(
            ["fold", *names], [[f.get("fold", i + 1), *[fmt_text((p or {}).get(n)) for n in names]]
                               for i, (f, p) in enumerate(zip(folds, params, strict=True))]) + "</details>")
    return True
