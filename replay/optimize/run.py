"""``optimize``: resolve the window, search in sample, measure out of sample, write results (and maybe apply).

Out of sample, two ways:

- hold-out (default): the last ``validation_split`` of the window is never seen by the search; the best in-sample
  parameters and the *current* parameters (settings + overlay) are both replayed on it, which is what ``apply``
  compares.
- walk-forward (``walk_forward_enabled`` / ``--walk-forward``): :mod:`replay.optimize.walkforward`.

Targets: ``optimize_unified`` gives one target ("unified": one parameter set scored on every symbol with a robust
aggregate); otherwise ``optimize_per_symbol`` gives one target per symbol (its own study inside the same study.db).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from replay.backtest import calibration_hash, calibration_text
from replay.data import load_segments
from replay.data.timeutil import fmt_utc
from replay.optimize import apply as ap
from replay.optimize import space as sp
from replay.optimize.executors import memory_capped_jobs, open_executor
from replay.optimize.objective import Aggregate, Constraints, TrialOutcome, TrialTask, evaluate, score_outcome
from replay.optimize.overfit import deflated_sharpe_of_search
from replay.optimize.study import Mode, StudySpec, best_feasible, run_studies, write_trials_csv
from settings import Settings
from settings.fields import ParamSpec
from settings.search import apply_optimizer_params

MINUTE_MS = 60_000
STUDY_CALIBRATION = "calibration.json"  # the --calibration file, copied into the study folder


@dataclass(slots=True)
class OptimizeConfig:
    study: str
    symbols: list[str]
    settings: Settings
    trials: int
    days: float | None = None
    start: str | None = None
    end: str | None = None
    mode: Mode = "tpe"
    jobs: int = 1
    executor: str = "local"
    params: list[str] | None = None
    unified: bool | None = None
    aggregate: Aggregate = "median"
    overlay: Path = ap.DEFAULT_OVERLAY
    root: Path | None = None
    seed: int | None = None
    data_dir: str | None = None
    calibration: Path | None = None  # generator coefficients for every replay (``--calibration FILE``)
    walk_forward: bool | None = None
    wf_window_days: float | None = None
    wf_step_days: float | None = None
    validation_split: float | None = None
    grid_points: int = 3
    progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    calibration_json: str | None = field(default=None, init=False)  # read once by :func:`optimize`

    @property
    def folder(self) -> Path:
        return self.optimization_root / self.study

    @property
    def optimization_root(self) -> Path:
        return self.root if self.root is not None else Path(self.settings.backtest.report_path) / "optimization"


def resolve_window(symbols: Sequence[str], cfg: OptimizeConfig) -> tuple[int, int]:
    """The [start, end) ms every symbol has data for (the intersection of their windows)."""
    extra = {"data_dir": Path(cfg.data_dir)} if cfg.data_dir else {}
    lo, hi = [], []
    for s in symbols:
        segs = load_segments(s, days=cfg.days, start=cfg.start, end=cfg.end, settings=cfg.settings, **extra)
        lo.append(int(segs[0].open_time_ms[0]))
        hi.append(int(segs[-1].open_time_ms[-1]) + MINUTE_MS)
    a, b = max(lo), min(hi)
    if b - a < 2 * MINUTE_MS:
        raise ValueError(f"the symbols' windows overlap on less than two minutes ({fmt_utc(a)} → {fmt_utc(b)})")
    return a, b


def targets(cfg: OptimizeConfig) -> dict[str, tuple[str, ...]]:
    unified = cfg.settings.backtest.optimize_unified if cfg.unified is None else cfg.unified
    if unified or (len(cfg.symbols) == 1 and not cfg.settings.backtest.optimize_per_symbol):
        return {"unified": tuple(cfg.symbols)}
    return {s: (s,) for s in cfg.symbols}


def evaluation(outcome: TrialOutcome, constraints: Constraints, how: Aggregate) -> dict[str, Any]:
    """Score, feasibility and per-symbol metrics of one replay of fixed parameters."""
    value, _, attrs = score_outcome(outcome, constraints, how)
    return {"score": attrs.get("raw_score", value), "feasible": attrs.get("feasible", False),
            "metrics": attrs.get("metrics", {}), "error": attrs.get("error"),
            "equity": {s: r.equity for s, r in outcome.symbols.items() if r.equity}}


def run_evaluations(executor: Executor, tasks: Sequence[TrialTask]) -> list[TrialOutcome]:
    """Fan fixed-parameter replays out together (the out-of-sample part of every target/fold at once)."""
    futures = [executor.submit(evaluate, t) for t in tasks]
    return [f.result() for f in futures]


def current_values(base: Settings, specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The searched parameters' values in the current settings (settings + overlay)."""
    flat = ap.flatten(base.snapshot_dict())
    return {k: flat[k] for k in specs}


def study_spec(cfg: OptimizeConfig, name: str, symbols: tuple[str, ...], lo: int, hi: int,
               specs: dict[str, ParamSpec], base: Settings) -> StudySpec:
    return StudySpec(name=name, symbols=symbols, start=fmt_utc(lo), end=fmt_utc(hi), params=specs, base=base,
                     trials=cfg.trials, mode=cfg.mode, seed=_seed(cfg), aggregate=cfg.aggregate,
                     data_dir=cfg.data_dir, calibration_json=cfg.calibration_json, grid_points=cfg.grid_points,
                     checkpoint_every=cfg.settings.backtest.checkpoint_every_n_iterations)


def _seed(cfg: OptimizeConfig) -> int:
    return cfg.settings.backtest.seed if cfg.seed is None else cfg.seed


def search(cfg: OptimizeConfig, executor: Executor, slots: int, items: Sequence[tuple[str, tuple[str, ...], int, int]],
           specs: dict[str, ParamSpec], base: Settings) -> dict[str, optuna.Study]:
    """Studies ``(name, symbols, lo, hi)`` side by side on one executor; each rewrites its rows of trials.csv every
    ``checkpoint_every_n_iterations`` trials."""
    path = cfg.folder / "trials.csv"
    study_specs = [study_spec(cfg, name, syms, lo, hi, specs, base) for name, syms, lo, hi in items]

    def checkpoint(name: str) -> Any:
        return lambda st: write_trials_csv(st, path, specs, name)

    return run_studies(study_specs, cfg.folder, executor, slots, progress=cfg.progress,
                       on_checkpoint={n: checkpoint(n) for n, *_ in items})


def overfitting(study: optuna.Study, best: optuna.trial.FrozenTrial | None) -> dict[str, Any]:
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    series = [[x for r in t.user_attrs.get("trade_bps", {}).values() for x in r] for t in trials]  # one per trial
    chosen = [x for r in (best.user_attrs.get("trade_bps", {}).values() if best else []) for x in r]
    return deflated_sharpe_of_search(chosen, series)


def task(key: int, settings: Settings, symbols: tuple[str, ...], lo: int, hi: int, cfg: OptimizeConfig,
         keep_equity: bool = False) -> TrialTask:
    return TrialTask(key, settings.model_dump_json(), symbols, fmt_utc(lo), fmt_utc(hi), _seed(cfg), cfg.data_dir,
                     keep_equity, cfg.calibration_json)


def optimize(cfg: OptimizeConfig) -> dict[str, Any]:
    """The whole ``optimize`` command; returns what it wrote to result.json."""
    specs = sp.resolve(cfg.params)
    base = ap.settings_with_overlay(cfg.settings, cfg.overlay)
    calibration = use_calibration(cfg)
    lo, hi = resolve_window(cfg.symbols, cfg)
    days = (hi - lo) / 86_400_000
    cfg.folder.mkdir(parents=True, exist_ok=True)
    if cfg.calibration is not None:  # the study records the generator it searched on (ARCHITECTURE.md §7)
        shutil.copyfile(cfg.calibration, cfg.folder / STUDY_CALIBRATION)
    bt = cfg.settings.backtest
    # max_memory_gb is this machine's budget; Dask workers live elsewhere, under their own memory limits
    jobs = cfg.jobs if cfg.executor != "local" else memory_capped_jobs(cfg.jobs, days, bt.max_memory_gb)
    wf = bt.walk_forward_enabled if cfg.walk_forward is None else cfg.walk_forward
    with open_executor(cfg.executor, jobs) as (executor, slots):
        if wf:
            from replay.optimize.walkforward import walk_forward

            result = walk_forward(cfg, executor, slots, specs, base, lo, hi)
        else:
            result = holdout(cfg, executor, slots, specs, base, lo, hi)
    result |= {"study": cfg.study, "symbols": cfg.symbols, "mode": cfg.mode, "jobs": slots, "executor": cfg.executor,
               "seed": _seed(cfg), "score": "total_pnl_bps / days (normalised net PnL per day); unified: "
               f"{cfg.aggregate} over symbols; constraints from backtest.target_metrics", "calibration": calibration,
               **cfg.extra}
    ap.write_json(cfg.folder / "result.json", result)
    only = next(iter(result["targets"].values())) if len(result["targets"]) == 1 else None
    if bt.auto_apply_params and only is not None and only["best"] is not None:  # per-symbol sets: no single overlay
        result["auto_apply"] = ap.propose(cfg.optimization_root, cfg.study, None, cfg.settings, cfg.overlay)
    return result


def use_calibration(cfg: OptimizeConfig) -> dict[str, Any] | None:
    """Read ``cfg.calibration`` once (a bad file fails before any trial) and return what result.json records.

    A study resumed with other coefficients than its finished trials were scored on would mix two generators in one
    search, so that is refused (a new ``--study`` name starts clean)."""
    if cfg.calibration is None:
        cfg.calibration_json = None
        if (cfg.folder / STUDY_CALIBRATION).exists():
            raise ValueError(f"study {cfg.study} was run with --calibration ({cfg.folder / STUDY_CALIBRATION}); "
                             "resume it with the same file or use a new --study name")
        return None
    cfg.calibration_json = calibration_text(cfg.calibration)
    digest = calibration_hash(cfg.calibration_json)
    previous = cfg.folder / STUDY_CALIBRATION
    if (cfg.folder / "study.db").exists():
        before = calibration_hash(calibration_text(previous)) if previous.exists() else None
        if before != digest:
            was = "other generator coefficients" if before else "no --calibration"
            raise ValueError(f"study {cfg.study} was run with {was}; resuming it with --calibration {cfg.calibration} "
                             "would mix two generators in one search (use a new --study name)")
    return {"file": str(cfg.calibration), "copied_to": STUDY_CALIBRATION, "generator_hash": digest}


def holdout(cfg: OptimizeConfig, executor: Executor, slots: int, specs: dict[str, ParamSpec], base: Settings,
            lo: int, hi: int) -> dict[str, Any]:
    """Search on the first ``1 - validation_split`` of the window, measure best and current on the rest."""
    split = cfg.settings.backtest.validation_split if cfg.validation_split is None else cfg.validation_split
    cut = lo + round((hi - lo) * (1 - split) / MINUTE_MS) * MINUTE_MS
    if not lo < cut < hi:
        raise ValueError(f"validation_split {split} leaves no in-sample or no out-of-sample minute")
    constraints = Constraints.from_settings(base)
    tg = targets(cfg)
    studies = search(cfg, executor, slots, [(name, syms, lo, cut) for name, syms in tg.items()], specs, base)
    bests = {name: best_feasible(st) for name, st in studies.items()}
    jobs: list[tuple[str, str, TrialTask]] = []
    for name, syms in tg.items():
        jobs.append((name, "current_is", task(len(jobs), base, syms, lo, cut, cfg)))
        jobs.append((name, "current_oos", task(len(jobs), base, syms, cut, hi, cfg)))
        if bests[name] is not None:
            best_settings = apply_optimizer_params(base, sp.decode(specs, bests[name].params))
            jobs.append((name, "best_oos", task(len(jobs), best_settings, syms, cut, hi, cfg)))
    outs = run_evaluations(executor, [j[2] for j in jobs])
    evals: dict[str, dict[str, Any]] = {}
    for (name, kind, _), out in zip(jobs, outs, strict=True):
        evals.setdefault(name, {})[kind] = evaluation(out, constraints, cfg.aggregate)
    result_targets: dict[str, Any] = {}
    for name, study in studies.items():
        best, ev = bests[name], evals[name]
        entry: dict[str, Any] = {
            "symbols": list(tg[name]),
            "in_sample": [fmt_utc(lo), fmt_utc(cut)], "out_of_sample": [fmt_utc(cut), fmt_utc(hi)],
            "trials": len(study.trials), "params_searched": list(specs),
            "current": {"params": current_values(base, specs), "is": _strip(ev["current_is"]),
                        "oos": _strip(ev["current_oos"])},
            "best": None, "improvement": None, "overfitting": overfitting(study, best),
            "overlay_hash": ap.overlay_hash(cfg.overlay),
        }
        if best is not None:
            params = sp.decode(specs, best.params)
            is_block = {"score": best.user_attrs["raw_score"], "feasible": True, "metrics": best.user_attrs["metrics"]}
            entry["best"] = {"trial": best.number, "params": params, "is": is_block, "oos": _strip(ev["best_oos"])}
            entry["improvement"] = round(ap.improvement(ev["best_oos"]["score"], ev["current_oos"]["score"]), 6)
            preset = cfg.folder / f"preset_{name}.toml"
            ap.write_preset(preset, apply_optimizer_params(base, params), _preset_header(cfg, name, entry))
            entry["preset"] = str(preset)
        result_targets[name] = entry
        write_trials_csv(study, cfg.folder / "trials.csv", specs, name)
    return {"kind": "holdout", "validation_split": split, "targets": result_targets}


def _strip(ev: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != "equity"}


def _preset_header(cfg: OptimizeConfig, name: str, entry: Mapping[str, Any]) -> str:
    best = entry["best"]
    def line(tag: str, block: Mapping[str, Any]) -> str:
        m = block["metrics"]
        trades = sum(int(x["total_trades"]) for x in m.values())
        return f"{tag}: score {block['score']:.3f} bps/day, {trades} trades, feasible {block['feasible']}"
    dsr = entry["overfitting"].get("dsr")
    return "\n".join([
        f"preset from python -m replay optimize, study {cfg.study}, target {name}, trial #{best['trial']}",
        f"in sample {entry['in_sample'][0]} → {entry['in_sample'][1]}; "
        f"out of sample {entry['out_of_sample'][0]} → {entry['out_of_sample'][1]}",
        line("in sample", best["is"]), line("out of sample", best["oos"]),
        f"current parameters out of sample: score {entry['current']['oos']['score']:.3f} bps/day; "
        f"improvement {entry['improvement']}",
        f"deflated Sharpe ratio {dsr} over {entry['overfitting']['n_trials']} trials",
        f"generator calibration: {cfg.calibration or 'none (project defaults)'}",
        f"reproduce: python -m replay --settings THIS_FILE --symbols {','.join(entry['symbols'])} --isolated "
        f"--start {entry['out_of_sample'][0]} --end {entry['out_of_sample'][1]} --seed {_seed(cfg)}"
        + (f" --calibration {cfg.folder / STUDY_CALIBRATION}" if cfg.calibration else ""),
    ])
