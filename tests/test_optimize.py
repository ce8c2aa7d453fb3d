"""The optimizer (issue 11 parts 1-4): search space, resume, reproducibility, walk-forward folds, deflated Sharpe,
apply/approve with atomic overlay writes, Dask. Real replays on 1-2 hour windows of the bundled data, no mocks."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import optuna
import pytest

from replay.optimize import apply as ap
from replay.optimize import space as sp
from replay.optimize.executors import InlineExecutor, memory_capped_jobs, open_executor
from replay.optimize.overfit import deflated_sharpe, expected_max_sharpe, sharpe
from replay.optimize.run import OptimizeConfig, optimize
from replay.optimize.study import StudySpec, run_study
from replay.optimize.walkforward import make_folds, stability
from settings import Settings, load_settings
from settings.search import with_overrides

START, END = "2025-06-20T00:00", "2025-06-20T01:00"
PARAMS = ["risk.min_sl_pct", "risk.min_tp_pct", "trading.entry_signal_min_strength"]


def base_settings(tmp: Path, **over: object) -> Settings:
    """Defaults with the trade floor off (a 90-minute window has a trade or two) and runs under ``tmp``."""
    return with_overrides(Settings(), {"backtest.target_metrics.min_trades": 0, "backtest.report_path": str(tmp),
                                       **over})


def spec(tmp: Path, trials: int, *, seed: int = 7, mode: str = "random", name: str = "BTCUSDT") -> StudySpec:
    return StudySpec(name=name, symbols=("BTCUSDT",), start=START, end=END, params=sp.resolve(PARAMS),
                     base=base_settings(tmp), trials=trials, mode=mode, seed=seed)  # type: ignore[arg-type]


def rows(study: optuna.Study) -> list[tuple[int, str, float | None, dict]]:
    return [(t.number, t.state.name, t.value, t.params) for t in study.trials]


# ------------------------------------------------------------------------------------------------ search space
def test_fixed_field_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(sp.FixedFieldError, match=r"trading\.leverage.*FIXED"):
        sp.resolve(["risk.min_sl_pct", "trading.leverage"])
    with pytest.raises(sp.FixedFieldError, match=r"risk\.no_such_field: unknown"):
        sp.resolve(["risk.no_such_field"])
    from replay.cli import main

    code = main(["optimize", "--symbol", "BTCUSDT", "--start", START, "--end", END, "--trials", "1",
                 "--params", "risk.max_open_positions", "--report-path", str(tmp_path)])
    assert code == 2
    assert "risk.max_open_positions is FIXED" in capsys.readouterr().err
    assert not (tmp_path / "optimization").exists() or not any((tmp_path / "optimization").rglob("study.db"))


def test_space_never_holds_size_leverage_or_max_positions() -> None:
    every = sp.resolve(["all"])
    assert every and not [n for n in every if n.rsplit(".", 1)[-1] in sp.NEVER_TUNED]
    dists = sp.distributions(every)  # every OPTIMIZABLE field maps to a distribution, list choices by index
    lists = [n for n, s in every.items() if s.choices and isinstance(s.choices[0], tuple)]
    assert lists and all(isinstance(dists[n], optuna.distributions.CategoricalDistribution) for n in lists)
    assert sp.decode(every, {lists[0]: 0})[lists[0]] == list(every[lists[0]].choices[0])


def test_grid_stays_inside_ranges() -> None:
    specs = sp.resolve(PARAMS)
    g = sp.grid(specs, 3)
    assert g["risk.min_sl_pct"] == [0.001, 0.002, 0.003]
    assert g["trading.entry_signal_min_strength"] == [1, 3, 5]
    assert sp.grid_size(g) == 27


def test_memory_cap_limits_jobs() -> None:
    assert memory_capped_jobs(8, 7.0, 100.0) == 8
    assert memory_capped_jobs(8, 7.0, 1.2) == 3  # 0.335 GB a job
    assert memory_capped_jobs(8, 30.0, 0.1) == 1  # never below one


# ------------------------------------------------------------------------------------------- study mechanics
def test_seeded_study_is_reproducible(tmp_path: Path) -> None:
    a = run_study(spec(tmp_path, 2, mode="tpe"), tmp_path / "a", InlineExecutor(), 1)
    b = run_study(spec(tmp_path, 2, mode="tpe"), tmp_path / "b", InlineExecutor(), 1)
    assert rows(a) == rows(b)
    assert all(t.state.name == "COMPLETE" for t in a.trials)
    assert all("total_trades" in t.user_attrs["metrics"]["BTCUSDT"] for t in a.trials)


def test_resume_after_interruption_adds_trials(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    first = run_study(spec(tmp_path, 2), folder, InlineExecutor(), 1)
    before = rows(first)
    # What a killed run leaves behind: a trial asked for and never told (RUNNING in study.db).
    url = f"sqlite:///{folder / 'study.db'}"
    killed = optuna.load_study(study_name="BTCUSDT", storage=url)
    stale = killed.ask(sp.distributions(sp.resolve(PARAMS)))
    resumed = run_study(spec(tmp_path, 4), folder, InlineExecutor(), 1)
    after = rows(resumed)
    assert after[:2] == before  # finished trials are kept as they were, not re-run
    assert after[2][0] == stale.number and after[2][1] == "FAIL"
    complete = [r for r in after if r[1] == "COMPLETE"]
    assert len(complete) == 4 and len(after) == 5
    requeued = [t for t in resumed.trials if t.user_attrs.get("requeued_from") == stale.number]
    assert requeued and requeued[0].params == stale.params  # the interrupted parameters were evaluated after all
    again = run_study(spec(tmp_path, 4), folder, InlineExecutor(), 1)
    assert rows(again) == after  # nothing left to do


# ---------------------------------------------------------------------------------------------- walk-forward
def test_walk_forward_folds_cover_the_window_without_overlap() -> None:
    day = 86_400_000
    lo = 1_750_000_000_000 // 60_000 * 60_000
    folds = make_folds(lo, lo + 30 * day, 10, 5)
    assert len(folds) == 4
    assert folds[0].is_start == lo and folds[0].oos_start == lo + 10 * day
    for f in folds:
        assert f.is_end == f.oos_start and f.is_end - f.is_start == 10 * day and f.oos_end - f.oos_start == 5 * day
        assert f.oos_end <= lo + 30 * day
    for a, b in itertools.pairwise(folds):
        assert b.oos_start == a.oos_end  # back to back: no overlap, no hole
    assert folds[-1].oos_end == lo + 30 * day
    hourly = make_folds(lo, lo + 4 * 3_600_000, 1 / 24, 1 / 24)
    assert [(f.oos_start - lo) // 3_600_000 for f in hourly] == [1, 2, 3]
    with pytest.raises(ValueError, match="shorter than one walk-forward fold"):
        make_folds(lo, lo + day, 1, 1)


def test_parameter_stability() -> None:
    specs = sp.resolve(PARAMS)
    same = [{"risk.min_sl_pct": 0.002, "trading.entry_signal_min_strength": 3}] * 3
    assert stability(same, specs)["overall"] == 1.0
    spread = [{"risk.min_sl_pct": 0.001}, {"risk.min_sl_pct": 0.003}]
    assert stability(spread, specs)["per_param"]["risk.min_sl_pct"] == 0.0  # std = half the range


def test_walk_forward_run_writes_folds_and_trials(tmp_path: Path) -> None:
    cfg = OptimizeConfig(study="wf", symbols=["BTCUSDT"], settings=base_settings(tmp_path), trials=2,
                         start="2025-06-20T00:00", end="2025-06-20T03:00", mode="random", jobs=1, params=PARAMS,
                         overlay=tmp_path / "overlay.toml", walk_forward=True, wf_window_days=1 / 24,
                         wf_step_days=1 / 24, seed=3)
    result = optimize(cfg)
    wf = json.loads((cfg.folder / "walk_forward.json").read_text())
    folds = wf["targets"]["BTCUSDT"]["folds"]
    assert [f["out_of_sample"] for f in folds] == [["2025-06-20T01:00Z", "2025-06-20T02:00Z"],
                                                  ["2025-06-20T02:00Z", "2025-06-20T03:00Z"]]
    assert all(f["params"] is not None and f["oos"]["metrics"] and "dsr" in f["overfitting"] for f in folds)
    t = wf["targets"]["BTCUSDT"]
    assert "walk_forward_efficiency" in t and t["parameter_stability"]["overall"] is not None
    assert t["oos_equity"] and t["oos_equity"][0][0] < t["oos_equity"][-1][0]
    assert result["targets"]["BTCUSDT"]["out_of_sample"] == folds[-1]["out_of_sample"]
    lines = (cfg.folder / "trials.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 and "risk.min_sl_pct" in lines[0]  # 2 folds x 2 trials


# ------------------------------------------------------------------------------------------ deflated Sharpe
def test_deflated_sharpe_hand_computed() -> None:
    returns = [2.0, 0.0, 2.0, 0.0]  # mean 1, sample std sqrt(4/3): SR = 0.8660; skew 0, kurtosis 1
    assert sharpe(returns) == pytest.approx(math.sqrt(3) / 2)
    # One trial: SR0 = 0 and DSR = Φ(SR·sqrt(T-1) / sqrt(1 - 0 + (1-1)/4·SR²)) = Φ(1.5) = 0.933193
    assert deflated_sharpe(returns, 1, 0.0) == pytest.approx(0.933193, abs=1e-6)
    # Ten trials with Sharpe variance 0.25: SR0 = 0.5·(0.42278·1.28155 + 0.57722·1.78940) = 0.78734
    assert expected_max_sharpe(10, 0.25) == pytest.approx(0.78734, abs=2e-4)
    # DSR = Φ((0.86603 - 0.78734)·sqrt(3)) = Φ(0.13630) = 0.55421
    assert deflated_sharpe(returns, 10, 0.25) == pytest.approx(0.55421, abs=5e-4)
    assert deflated_sharpe([1.0], 1, 0.0) is None


# ------------------------------------------------------------------------------------------ results and apply
def _fake_result(root: Path, study: str, new: float, cur: float, overlay: Path,
                 params: dict | None = None) -> None:
    """A result.json as optimize writes it (only the fields apply reads), so the decision logic is tested alone."""
    params = params or {"risk.min_sl_pct": 0.0025}
    res = {"targets": {"unified": {"best": {"params": params, "oos": {"score": new}}, "current": {"oos": {
        "score": cur}}, "overfitting": {"dsr": 0.5}, "overlay_hash": ap.overlay_hash(overlay)}}}
    (root / study).mkdir(parents=True, exist_ok=True)
    (root / study / "result.json").write_text(json.dumps(res))


def test_apply_threshold_and_manual_approval(tmp_path: Path) -> None:
    root, overlay = tmp_path / "opt", tmp_path / "config" / "overlay.toml"
    manual = base_settings(tmp_path)  # defaults: threshold 10%, require_manual_approval
    _fake_result(root, "small", new=10.5, cur=10.0, overlay=overlay)  # +5%
    p = ap.propose(root, "small", None, manual, overlay)
    assert p["status"] == "rejected" and "below auto_apply_threshold_improvement" in p["why"]
    assert not overlay.exists()
    _fake_result(root, "big", new=12.0, cur=10.0, overlay=overlay)  # +20%
    p = ap.propose(root, "big", None, manual, overlay)
    assert p["status"] == "pending" and not overlay.exists()
    approved = ap.approve(root, p["id"], manual)
    assert approved["status"] == "approved"
    assert ap.read_overlay(overlay) == {"risk.min_sl_pct": 0.0025}
    with pytest.raises(ValueError, match="not pending"):
        ap.approve(root, p["id"], manual)
    auto = base_settings(tmp_path, **{"backtest.require_manual_approval": False})
    with pytest.raises(ValueError, match=r"overlay .* changed"):  # measured against an older overlay
        ap.propose(root, "big", None, auto, overlay)
    _fake_result(root, "auto", new=-5.0, cur=-10.0, overlay=overlay, params={"risk.min_tp_pct": 0.011})
    p = ap.propose(root, "auto", None, auto, overlay)  # (-5 - -10) / 10 = +50%
    assert p["status"] == "applied" and p["improvement"] == pytest.approx(0.5)
    assert ap.read_overlay(overlay) == {"risk.min_sl_pct": 0.0025, "risk.min_tp_pct": 0.011}
    actions = [json.loads(line)["action"] for line in ap.audit_path(overlay).read_text().splitlines()]
    assert actions == ["reject", "propose", "approve", "apply"]
    assert load_settings(overlay).risk.min_tp_pct == 0.011  # the overlay is itself a valid settings TOML
    assert ap.settings_with_overlay(Settings(), overlay).risk.min_sl_pct == 0.0025


def test_overlay_write_is_atomic_backed_up_audited_and_never_fixed(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.toml"
    base = Settings()
    ap.write_overlay(overlay, {"risk.min_sl_pct": 0.0021}, base, reason={"action": "apply", "proposal": "x"})
    first = overlay.read_bytes()
    ap.write_overlay(overlay, {"risk.min_sl_pct": 0.0022}, base, reason={"action": "apply", "proposal": "y"})
    backups = list(tmp_path.glob("overlay.toml.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == first
    audit = [json.loads(x) for x in ap.audit_path(overlay).read_text().splitlines()]
    assert [a["old"]["risk.min_sl_pct"] for a in audit] == [None, 0.0021]
    assert audit[1]["new"] == {"risk.min_sl_pct": 0.0022} and audit[1]["backup"] == str(backups[0])
    current = overlay.read_bytes()
    with pytest.raises(ValueError, match="FIXED"):
        ap.write_overlay(overlay, {"trading.leverage": 50}, base, reason={"action": "apply"})
    with pytest.raises(ValueError):  # outside the field's validation range
        ap.write_overlay(overlay, {"risk.min_sl_pct": 2.0}, base, reason={"action": "apply"})
    assert overlay.read_bytes() == current and len(list(tmp_path.glob("overlay.toml.bak-*"))) == 1
    assert not list(tmp_path.glob(".overlay.toml.*.tmp"))  # no temp file left behind
    overlay.write_text("[trading]\nleverage = 50\n")
    with pytest.raises(ValueError, match=r"FIXED field\(s\) trading.leverage"):
        ap.settings_with_overlay(base, overlay)


def test_holdout_cli_writes_result_preset_that_reproduces(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from replay.cli import main

    settings_file = tmp_path / "base.toml"
    settings_file.write_text("[backtest]\nauto_apply_params = true\n[backtest.target_metrics]\nmin_trades = 0\n")
    code = main(["optimize", "--symbol", "BTCUSDT", "--start", START, "--end", "2025-06-20T02:00", "--trials", "2",
                 "--jobs", "1", "--mode", "random", "--params", ",".join(PARAMS), "--study", "h",
                 "--settings", str(settings_file), "--report-path", str(tmp_path / "bt"), "--overlay",
                 str(tmp_path / "overlay.toml"), "--no-progress", "--seed", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    folder = tmp_path / "bt" / "optimization" / "h"
    res = json.loads((folder / "result.json").read_text())["targets"]["BTCUSDT"]
    assert res["in_sample"] == ["2025-06-20T00:00Z", "2025-06-20T01:24Z"]  # validation_split 0.3 held out
    assert res["best"] and res["overfitting"]["measure"].startswith("deflated Sharpe")
    preset = Path(res["preset"])
    oos = res["best"]["oos"]["metrics"]["BTCUSDT"]
    code = main(["--settings", str(preset), "--symbol", "BTCUSDT", "--start", res["out_of_sample"][0], "--end",
                 res["out_of_sample"][1], "--seed", "5", "--report-path", str(tmp_path / "runs"), "--no-progress"])
    assert code == 0
    run_metrics = json.loads(next((tmp_path / "runs").rglob("metrics_BTCUSDT.json")).read_text())
    assert {k: run_metrics[k] for k in oos} == oos
    assert len((folder / "trials.csv").read_text().splitlines()) == 3
    proposal = json.loads((tmp_path / "bt" / "optimization" / "proposals" / "0001.json").read_text())  # auto-apply
    assert proposal["study"] == "h" and proposal["status"] in ("rejected", "pending")  # manual approval by default
    assert not (tmp_path / "overlay.toml").exists()


# --------------------------------------------------------------------------------------------------- Dask
def test_study_on_a_dask_local_cluster(tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            open_executor(cluster.scheduler_address.replace("tcp://", "dask://"), 0) as (executor, slots):
        assert slots == 2
        study = run_study(spec(tmp_path, 2, mode="random", seed=11), tmp_path / "dask", executor, slots)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    local = run_study(spec(tmp_path, 2, mode="random", seed=11), tmp_path / "local", InlineExecutor(), 2)
    assert rows(study) == rows(local)  # same seed, same batch size: the same study wherever it ran


def test_score_is_normalised_pnl_per_day_with_constraints_and_robust_aggregate() -> None:
    from replay.optimize.objective import INFEASIBLE_SCORE, Constraints, SymbolScore, TrialOutcome, score_outcome

    def sym(name: str, pnl_bps: float, trades: int, dd: float) -> SymbolScore:
        return SymbolScore(name, 2.0, {"total_trades": trades, "total_pnl_bps": pnl_bps, "max_drawdown_pct": dd},
                           [])

    c = Constraints(min_trades_per_30d=30, max_drawdown_pct=10.0)  # 2 days → at least 2 trades
    out = TrialOutcome(0, {"A": sym("A", 40.0, 5, 1.0), "B": sym("B", -10.0, 3, 2.0), "C": sym("C", 100.0, 2, 3.0)})
    assert score_outcome(out, c, "median")[0] == 20.0  # bps per day: 20, -5, 50 → median 20
    assert score_outcome(out, c, "worst")[0] == -5.0
    thin = TrialOutcome(1, {"A": sym("A", 40.0, 1, 1.0)})  # 1 trade < 2: infeasible by half the floor
    value, viol, attrs = score_outcome(thin, c)
    assert value == INFEASIBLE_SCORE - 0.5 and viol[0] == 0.5 and not attrs["feasible"] and attrs["raw_score"] == 20.0
    deep = TrialOutcome(2, {"A": sym("A", 40.0, 9, 15.0)})  # drawdown 15 % > 10 %
    assert score_outcome(deep, c)[0] == INFEASIBLE_SCORE - 0.5


def test_grid_mode_visits_every_point_once(tmp_path: Path) -> None:
    s = StudySpec(name="grid", symbols=("BTCUSDT",), start=START, end="2025-06-20T00:20",
                  params=sp.resolve(["risk.min_sl_pct", "trading.reverse_on_opposite"]), base=base_settings(tmp_path),
                  trials=10, mode="grid", seed=1, grid_points=2)
    study = run_study(s, tmp_path / "g", InlineExecutor(), 1)
    points = sorted((t.params["risk.min_sl_pct"], t.params["trading.reverse_on_opposite"]) for t in study.trials)
    assert points == [(0.001, False), (0.001, True), (0.003, False), (0.003, True)]  # capped at the grid's size


def test_out_of_sample_curves_are_chained() -> None:
    from replay.optimize.walkforward import concat_equity, efficiency

    a = {"X": [(0.0, 100.0), (300.0, 110.0)], "Y": [(0.0, 50.0), (300.0, 45.0)]}  # +10 and -5
    b = {"X": [(300.0, 100.0), (600.0, 103.0)], "Y": [(300.0, 50.0), (600.0, 50.0)]}  # +3
    assert concat_equity([a, b]) == [[0.0, 0.0], [300.0, 5.0], [600.0, 8.0]]
    assert efficiency([2.0, 4.0], [1.0, 2.0]) == 0.5
    assert efficiency([-1.0, 0.5], [1.0]) is None


def test_scratch_of_a_killed_worker_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from replay.optimize.objective import SCRATCH_PREFIX, sweep_orphan_scratch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    orphan = tmp_path / f"{SCRATCH_PREFIX}{int(dead.stdout)}-abc"
    mine = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    other = tmp_path / "unrelated-123-x"
    for d in (orphan, mine, other):
        (d / "BTCUSDT").mkdir(parents=True)
    assert sweep_orphan_scratch(tmp_path) == [orphan]
    assert not orphan.exists() and mine.exists() and other.exists()
