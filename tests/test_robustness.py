"""``python -m replay robustness``: the pure statistics on hand-computable cases, and the CLI on a real 2-hour run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chromium import CHARTS_DREW, chromium_path, load
from replay_helpers import settings_with

from replay.backtest import BacktestEngine, RunOutcome
from replay.robustness import stats

WINDOW = ("2025-06-20T00:00", "2025-06-20T02:00")


def test_max_drawdown_of_a_hand_path() -> None:
    # 1000 → 1100 (peak) → 800 → 850: (1100 - 800) / 1100
    assert stats.max_drawdown_pct(np.array([100.0, -300.0, 50.0]), 1000.0)[0] == pytest.approx(300 / 1100 * 100)
    assert stats.max_drawdown_pct(np.array([10.0, 20.0]), 1000.0)[0] == 0.0


def test_bootstrap_is_reproducible_and_hand_checkable() -> None:
    pnl = [5.0, -20.0, 12.0, -3.0, 8.0]
    a = stats.monte_carlo(pnl, 1000.0, 300, seed=7)
    assert a == stats.monte_carlo(pnl, 1000.0, 300, seed=7)
    assert a["bootstrap"]["max_dd_pct"] != stats.monte_carlo(pnl, 1000.0, 300, seed=8)["bootstrap"]["max_dd_pct"]
    # every draw of identical trades is the same path: −10 three times from 1000 is a 3 % drawdown at every quantile
    same = stats.monte_carlo([-10.0] * 3, 1000.0, 50, seed=1)["bootstrap"]
    assert same["max_dd_pct"] == {"p5": pytest.approx(3.0), "p50": pytest.approx(3.0), "p95": pytest.approx(3.0)}
    assert same["net_pnl_usdt"]["p50"] == pytest.approx(-30.0)
    paths = stats.resample_paths(pnl, 1000, 3, "bootstrap")
    assert set(np.unique(paths)) <= set(pnl) and len(set(map(tuple, paths))) > 1


def test_shuffle_preserves_total_pnl() -> None:
    pnl = [5.0, -20.0, 12.0, -3.0, 8.0, 1.5]
    paths = stats.resample_paths(pnl, 200, 11, "shuffle")
    assert np.allclose(paths.sum(axis=1), sum(pnl))
    assert all(sorted(p) == sorted(pnl) for p in paths.tolist())
    mc = stats.monte_carlo(pnl, 1000.0, 200, seed=11)["shuffle"]["net_pnl_usdt"]
    assert mc["p5"] == pytest.approx(sum(pnl)) and mc["p95"] == pytest.approx(sum(pnl))


def test_ruin_is_a_drawdown_of_half_the_peak() -> None:
    # either order loses over half the peak: −600 from 1000 (60 %), or −600 from 1100 (54.5 %)
    assert stats.monte_carlo([-600.0, 100.0], 1000.0, 100, seed=0)["shuffle"]["risk_of_ruin"] == 1.0
    assert stats.monte_carlo([-100.0, 50.0], 1000.0, 100, seed=0)["bootstrap"]["risk_of_ruin"] == 0.0
    # bootstrap of {−400, +10}: ruin needs −400 twice in a row from ~1000 (−800: 80 %); one −400 is 40 %
    boot = stats.monte_carlo([-400.0, 10.0], 1000.0, 4000, seed=3)["bootstrap"]["risk_of_ruin"]
    assert 0.15 < boot < 0.35  # P(both draws −400) = 1/4


def test_fragile_flag_and_one_seed_flag() -> None:
    assert not stats.fragile(100.0, [60.0, 140.0, 51.0])
    assert stats.fragile(100.0, [60.0, 49.0])
    assert not stats.fragile(-10.0, [-500.0])  # nothing to lose
    assert stats.one_seed_flag(10.0, [10.0, -1.0, -2.0]) is not None
    assert stats.one_seed_flag(10.0, [10.0, 5.0, -1.0]) is None
    assert stats.one_seed_flag(-5.0, [-1.0, -2.0]) is None
    assert "38% of the seeds" in (stats.one_seed_flag(10.0, [10.0, 3.0, -1.0, -2.0, -3.0, 4.0, -1.0, -9.0]) or "")


def test_distribution_and_sensitivity_helpers() -> None:
    d = stats.distribution([3.0, -1.0, 2.0, float("inf"), None])
    assert d["min"] == -1.0 and d["median"] == 2.5 and d["share_positive"] == 0.75 and d["n"] == 4
    assert stats.perturbed(0.002, 10.0, 0.001, 0.01, False) == [0.0018, 0.0022]
    assert stats.perturbed(0.0095, 10.0, 0.001, 0.01, False) == [0.00855, 0.01]  # clipped to the range
    assert stats.perturbed(3, 10.0, 1, 10, True) == [2, 4]  # an int moves at least one step
    assert stats.perturbed(0.0, 10.0, None, None, False) == []
    rows = [{"param": "a", "total_pnl_usdt": 9.0}, {"param": "b", "total_pnl_usdt": -30.0},
            {"param": "c", "total_pnl_usdt": 15.0}]
    assert stats.most_sensitive(rows, 10.0) == ["b", "c"]
    assert stats.pnl_change(10.0, 5.0) == -0.5 and stats.pnl_change(0.0, 5.0) is None


def test_stress_windows_from_candles() -> None:
    day = 86_400_000
    t = np.array([0, 60_000, day, day + 60_000, 2 * day])
    o = np.array([100.0, 100.0, 100.0, 110.0, 100.0])
    h = np.array([101.0, 101.0, 100.0, 120.0, 103.0])
    lo = np.array([99.0, 99.0, 95.0, 105.0, 100.0])
    c = np.array([100.0, 100.0, 100.0, 112.0, 101.0])
    ranges = stats.daily_ranges(t, h, lo, o)
    assert ranges == {0: pytest.approx(0.02), 86_400: pytest.approx(0.25), 172_800: pytest.approx(0.03)}
    assert stats.most_volatile_days(ranges, 2) == [86_400, 172_800]
    # close-to-close moves: 0, 0, +12 % (at day+60s), −9.8 % (at 2·day): the largest first; zero moves are no gaps
    gaps = stats.largest_gaps(t, c, 5, min_apart_ms=1)
    assert [g[0] for g in gaps] == [day + 60_000, 2 * day] and gaps[0][1] == pytest.approx(0.12)
    assert gaps[1][1] == pytest.approx(-11 / 112)
    assert stats.largest_gaps(t, c, 5, min_apart_ms=2 * day) == [gaps[0]]  # too close to the first: left out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")}
    return subprocess.run([sys.executable, "-m", "replay", "robustness", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120, check=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome]:
    bt = tmp_path_factory.mktemp("robust") / "bt"
    out = BacktestEngine().configure_from_settings(settings_with(**{"backtest.report_path": str(bt)})).run_full_test(
        ["BTCUSDT"], start=WINDOW[0], end=WINDOW[1], seed=42)
    return bt, out


@pytest.fixture(scope="module")
def studied(run: tuple[Path, RunOutcome], tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[RunOutcome, subprocess.CompletedProcess[str]]:
    bt, outcome = run
    res = _cli(outcome.run_dir.name, "--report-path", str(bt), "--seeds", "2", "--mc", "100", "--stress", "1",
               "--sensitivity", "10", "--params", "risk.min_sl_pct,risk.min_tp_pct", "--no-progress",
               cwd=tmp_path_factory.mktemp("cwd"))
    return outcome, res


def test_cli_writes_robustness_json_and_the_report_section(
        studied: tuple[RunOutcome, subprocess.CompletedProcess[str]]) -> None:
    outcome, res = studied
    assert res.returncode == 0, res.stderr
    data = json.loads((outcome.run_dir / "robustness.json").read_text())
    base = outcome.summary["aggregate"]
    # the base seed is replayed again and gives the run's own result
    assert data["base"]["metrics"]["total_pnl_usdt"] == pytest.approx(base["total_pnl_usdt"])
    labels = [r["label"] for r in data["seeds"]["rows"]]
    assert labels == ["seed 42 (base)", "seed 43", "seed 42, pessimistic path"]
    assert data["seeds"]["summary"]["total_pnl_usdt"]["n"] == 2
    assert data["monte_carlo"]["trades"] == base["total_trades"]
    assert set(data["monte_carlo"]["bootstrap"]["max_dd_pct"]) == {"p5", "p50", "p95"}
    assert [r["what"] for r in data["stress"]["rows"]] == ["volatile day", "largest 1m move"]
    assert {r["param"] for r in data["sensitivity"]["rows"]} == {"risk.min_sl_pct", "risk.min_tp_pct"}
    grid = data["sensitivity"]["grid"]
    assert len(grid["z"]) == 3 and all(len(row) == 3 for row in grid["z"])
    assert grid["z"][1][1] == pytest.approx(base["total_pnl_usdt"])  # the centre is the chosen point
    assert isinstance(data["sensitivity"]["fragile"], bool)
    html = (outcome.run_dir / "report.html").read_text()
    assert 'id="s-robustness-study"' in html and "fig-robust-seeds" in html and "fig-robust-grid" in html
    assert "Monte Carlo on the trade list" in html and "Stress windows" in html and "Parameter sensitivity" in html
    assert 'id="s-equity"' in html  # the rest of the report is still there
    assert not (outcome.run_dir / "robustness_runs").exists()
    assert "seeds: net PnL" in res.stdout


def test_the_robustness_charts_draw_in_chromium(studied: tuple[RunOutcome, subprocess.CompletedProcess[str]]) -> None:
    outcome, res = studied
    assert res.returncode == 0, res.stderr
    if chromium_path() is None:
        pytest.fail("Chromium not found: apt-get install -y chromium (the report test needs a real browser)")
    page = load(outcome.run_dir / "report.html", CHARTS_DREW, settle_sec=1.5)
    assert page.errors == [], page.errors
    expected = {"fig-robust-seeds", "fig-robust-grid"} | ({"fig-robust-mc"} if outcome.summary["aggregate"][
        "total_trades"] else set())
    drawn = {c["id"]: c for c in page.result}
    assert expected <= set(drawn), expected - set(drawn)
    assert all(drawn[i]["width"] >= 100 and drawn[i]["height"] >= 100 and drawn[i]["data"] > 0 for i in expected)


def test_bad_run_is_one_line_exit_2(run: tuple[Path, RunOutcome], tmp_path: Path) -> None:
    bt, _ = run
    res = _cli("no-such-run", "--report-path", str(bt), cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: unknown run 'no-such-run'")
    assert len(res.stderr.strip().splitlines()) == 1
    res = _cli("latest", "--report-path", str(bt), "--params", "risk.leverage_typo", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == "error: risk.leverage_typo: unknown settings field"
    res = _cli("missing.toml", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == "error: settings file missing.toml does not exist"


def test_a_settings_file_is_replayed_first_then_studied(tmp_path: Path) -> None:
    toml = tmp_path / "mine.toml"
    toml.write_text("[risk]\nmin_sl_pct = 0.003\n", encoding="utf-8")
    bt = tmp_path / "bt"
    res = _cli(str(toml), "--symbols", "BTCUSDT", "--days", "0.05", "--report-path", str(bt), "--seeds", "1",
               "--mc", "10", "--stress", "0", "--sensitivity", "0", "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (run_dir,) = (bt / "runs").iterdir()
    assert run_dir.name.startswith("robust-") or "-robust-" in run_dir.name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["settings"]["risk"]["min_sl_pct"] == 0.003
    data = json.loads((run_dir / "robustness.json").read_text())
    assert [r["label"] for r in data["seeds"]["rows"]] == [f"seed {manifest['seed']} (base)",
                                                          f"seed {manifest['seed']}, pessimistic path"]
    assert data["stress"]["rows"] == [] and data["sensitivity"]["rows"] == [] and data["sensitivity"]["grid"] is None
    assert 'id="s-robustness-study"' in (run_dir / "report.html").read_text()
    # a run brings its own symbols and window
    res = _cli(run_dir.name, "--report-path", str(bt), "--days", "2", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error: --symbols/--days apply to a settings file")


def test_the_study_is_deterministic(tmp_path: Path) -> None:
    from replay.optimize.executors import InlineExecutor
    from replay.robustness.run import RESULT_FILE, base_from_run, run_study
    from replay.runs import load_run

    out = BacktestEngine().configure_from_settings(settings_with(**{"backtest.report_path": str(tmp_path)})
                                                   ).run_full_test(["BTCUSDT"], start="2025-06-20T00:00",
                                                                   end="2025-06-20T01:00", seed=5)
    base = base_from_run(load_run(out.run_dir))
    texts = []
    for _ in range(2):
        run_study(base, InlineExecutor(), seeds=1, mc=50, stress=0, pct=10.0, params=["risk.min_tp_pct"])
        texts.append((out.run_dir / RESULT_FILE).read_bytes())
    assert texts[0] == texts[1]
    assert json.loads(texts[0])["sensitivity"]["grid"] is None  # one parameter: no 3×3 grid
