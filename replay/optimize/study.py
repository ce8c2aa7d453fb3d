"""The study loop: the parent owns an Optuna study in SQLite and fans trials out over an executor (ask/tell).

Why ask/tell: workers (local processes or Dask) only replay; they never open the database, so SQLite's single-writer
limit never bites and a Dask worker needs no access to the parent's disk.

Trials run in batches of ``slots``: ask ``slots`` trials, run them concurrently, tell them back **in trial order**.
The sampler therefore sees the same history whatever order workers finish in, so a seeded study is reproducible for a
given ``--jobs``. The price is that a batch waits for its slowest trial (trials of one window take similar time).

Resume: the same command reopens ``study.db``. Trials a killed run left RUNNING are marked FAIL and their parameters
re-queued (TPE/random), completed ones are kept, and only the missing ``trials - completed`` are run. The sampler is
seeded with ``seed + len(trials so far)`` so a resumed random/TPE study does not replay its first proposals.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from replay.optimize import space as sp
from replay.optimize.objective import (
    CONSTRAINT_NAMES,
    INFEASIBLE_SCORE,
    Aggregate,
    Constraints,
    TrialTask,
    evaluate,
    score_outcome,
    summary_metrics,
)
from settings import Settings
from settings.fields import ParamSpec
from settings.search import apply_optimizer_params

Mode = Literal["tpe", "grid", "random"]
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(slots=True)
class StudySpec:
    """One search: which symbols, which window, which dimensions, how."""

    name: str  # Optuna study name inside study.db (the target: a symbol, "unified", or a fold)
    symbols: tuple[str, ...]
    start: str
    end: str
    params: dict[str, ParamSpec]
    base: Settings
    trials: int
    mode: Mode = "tpe"
    seed: int = 42
    aggregate: Aggregate = "median"
    data_dir: str | None = None
    calibration_json: str | None = None  # every trial's synthetic market uses these generator coefficients
    grid_points: int = 3
    checkpoint_every: int = 10
    extra_attrs: dict[str, Any] = field(default_factory=dict)


def storage_url(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'study.db').resolve()}"


def make_sampler(spec: StudySpec, offset: int) -> BaseSampler:
    seed = spec.seed + offset
    if spec.mode == "tpe":
        return TPESampler(seed=seed, constant_liar=True,  # constrained: reads Trial.set_constraint values
                          n_startup_trials=min(10, max(2, spec.trials // 4)))
    if spec.mode == "random":
        return RandomSampler(seed=seed)
    if spec.mode == "grid":
        return GridSampler(sp.grid(spec.params, spec.grid_points), seed=spec.seed)
    raise ValueError(f"--mode must be tpe, grid or random, got {spec.mode!r}")


def open_study(spec: StudySpec, url: str) -> optuna.Study:
    """Create or reopen the study, recovering trials a killed run left RUNNING."""
    probe = optuna.create_study(study_name=spec.name, storage=url, direction="maximize", load_if_exists=True)
    stale = probe.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study = optuna.create_study(study_name=spec.name, storage=url, direction="maximize", load_if_exists=True,
                                sampler=make_sampler(spec, len(probe.trials)))
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL)
        if spec.mode != "grid" and t.params:
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
    for k, v in spec.extra_attrs.items():
        study.set_user_attr(k, v)
    return study


def completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_study(spec: StudySpec, folder: Path, executor: Executor, slots: int, *, progress: bool = False,
              on_checkpoint: Callable[[optuna.Study], None] | None = None) -> optuna.Study:
    """Run (or resume) ``spec`` until it has ``spec.trials`` completed trials; returns the study."""
    checkpoints = {spec.name: on_checkpoint} if on_checkpoint is not None else {}
    return run_studies([spec], folder, executor, slots, progress=progress, on_checkpoint=checkpoints)[spec.name]


@dataclass(slots=True)
class _Running:
    spec: StudySpec
    study: optuna.Study
    dists: dict[str, Any]
    target: int
    constraints: Constraints
    done: int
    since_checkpoint: int = 0


def run_studies(specs: list[StudySpec], folder: Path, executor: Executor, slots: int, *, progress: bool = False,
                on_checkpoint: Mapping[str, Callable[[optuna.Study], None]] | None = None
                ) -> dict[str, optuna.Study]:
    """Run several studies (per-symbol targets, walk-forward folds) side by side on one executor.

    Each round fills the ``slots`` by asking the unfinished studies in turn (round-robin), runs the batch, and tells
    every trial back in batch order, so the rounds, and therefore every study, are the same for a given ``slots``
    whatever order the workers finish in. With a single study this is plain batches of ``slots`` trials.
    """
    url = storage_url(folder)
    checkpoints = dict(on_checkpoint or {})
    runs: list[_Running] = []
    for spec in specs:
        study = open_study(spec, url)
        target = spec.trials
        if spec.mode == "grid":
            target = min(target, sp.grid_size(sp.grid(spec.params, spec.grid_points)))
        runs.append(_Running(spec, study, sp.distributions(spec.params), target, Constraints.from_settings(spec.base),
                             completed(study)))
    total = sum(r.target for r in runs)
    label = specs[0].name if len(specs) == 1 else f"{len(specs)} studies"
    bar = _bar(label, total, sum(r.done for r in runs)) if progress else None
    try:
        while any(r.done < r.target for r in runs):
            batch: list[tuple[_Running, optuna.trial.Trial]] = []
            asked = {id(r): 0 for r in runs}
            while len(batch) < slots:
                before = len(batch)
                for r in runs:
                    if len(batch) < slots and r.done + asked[id(r)] < r.target:
                        batch.append((r, r.study.ask(r.dists)))
                        asked[id(r)] += 1
                if len(batch) == before:
                    break
            futures = []
            for r, trial in batch:
                task = _task(r.spec, trial)
                futures.append(executor.submit(evaluate, task) if isinstance(task, TrialTask) else task)
            for (r, trial), fut in zip(batch, futures, strict=True):
                if isinstance(fut, str):  # settings the validators refuse: a failed combination, told as such
                    value, viol, attrs = INFEASIBLE_SCORE * 2, [1.0, 1.0], {"error": fut, "feasible": False}
                else:
                    value, viol, attrs = score_outcome(fut.result(), r.constraints, r.spec.aggregate)
                for k, v in attrs.items():
                    trial.set_user_attr(k, v)
                for key, v in zip(CONSTRAINT_NAMES, viol, strict=True):
                    trial.set_constraint(key, v)
                try:
                    r.study.tell(trial, value)
                except RuntimeError as exc:  # GridSampler calls study.stop() on its last point, which only works
                    if "Study.stop" not in str(exc):  # inside study.optimize(); the trial is stored by then
                        raise
                r.done += 1
                r.since_checkpoint += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(_best_text(r.study, r.spec.name if len(runs) > 1 else ""))
            for r in runs:
                if r.spec.name in checkpoints and r.since_checkpoint >= r.spec.checkpoint_every:
                    checkpoints[r.spec.name](r.study)
                    r.since_checkpoint = 0
    finally:
        if bar is not None:
            bar.close()
        for r in runs:
            if r.spec.name in checkpoints:
                checkpoints[r.spec.name](r.study)
    return {r.spec.name: r.study for r in runs}


def _task(spec: StudySpec, trial: optuna.trial.Trial) -> TrialTask | str:
    params = sp.decode(spec.params, trial.params)
    try:
        settings = apply_optimizer_params(spec.base, params)
    except ValueError as exc:
        return " ".join(str(exc).split())[:500]
    return TrialTask(trial.number, settings.model_dump_json(), spec.symbols, spec.start, spec.end, spec.seed,
                     spec.data_dir, calibration_json=spec.calibration_json)


def _bar(name: str, total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"optimize {name}", unit="trial", file=sys.stderr,
                dynamic_ncols=True)


def best_feasible(study: optuna.Study) -> FrozenTrial | None:
    """The best trial that met the constraints (None when none did)."""
    ok = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get("feasible")]
    return max(ok, key=lambda t: (t.value, -t.number)) if ok else None


def _best_text(study: optuna.Study, name: str = "") -> str:
    best = best_feasible(study)
    where = f"{name} " if name else ""
    return f"{where}best: no feasible trial yet" if best is None else \
        f"{where}best {best.value:.2f} bps/day (#{best.number})"


def write_trials_csv(study: optuna.Study, path: Path, specs: Mapping[str, ParamSpec], target: str) -> None:
    """One row per trial: number, state, value, the parameters as columns, key metrics (atomic replace)."""
    names = list(specs)
    cols = ["target", "number", "state", "value", "feasible", "raw_score", "trades", "pnl_bps", "max_dd_pct",
            "win_rate", *names, "error"]
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        params = sp.decode(specs, {k: v for k, v in t.params.items() if k in specs})
        row = {"target": target, "number": t.number, "state": t.state.name, "value": t.value,
               "feasible": ua.get("feasible"), "raw_score": ua.get("raw_score"), "error": ua.get("error")}
        row |= summary_metrics(ua.get("metrics", {}))
        row |= {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
        rows.append(row)
    existing = _other_targets(path, target)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=_merge_cols(existing, cols), extrasaction="ignore")
        w.writeheader()
        w.writerows(existing + rows)
    tmp.replace(path)


def _other_targets(path: Path, target: str) -> list[dict[str, Any]]:
    """Rows of the other targets of the same study folder (per-symbol mode writes one file for all)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("target") != target]


def _merge_cols(existing: list[dict[str, Any]], cols: list[str]) -> list[str]:
    out = list(cols)
    for r in existing:
        for k in r:
            if k not in out:
                out.insert(len(out) - 1, k)
    return out
