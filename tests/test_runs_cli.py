"""``python -m replay runs list|show|compare`` on real run folders, and the replay's own options left as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import settings_with

from replay.backtest import BacktestEngine, RunOutcome
from replay.report.formatting import fmt_usdt

WINDOW = ("2025-06-20T00:00", "2025-06-20T02:00")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")}
    return subprocess.run([sys.executable, "-m", "replay", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, check=False)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome, RunOutcome]:
    """Two real 2-hour runs in one report folder: B differs from A in its seed and one risk setting."""
    bt = tmp_path_factory.mktemp("runs") / "bt"
    a = BacktestEngine().configure_from_settings(settings_with(**{"backtest.report_path": str(bt)})).run_full_test(
        ["BTCUSDT"], start=WINDOW[0], end=WINDOW[1], seed=42)
    b = BacktestEngine().configure_from_settings(settings_with(**{"backtest.report_path": str(bt),
                                                                  "risk.min_sl_pct": 0.004})).run_full_test(
        ["BTCUSDT"], start=WINDOW[0], end=WINDOW[1], seed=7)
    return bt, a, b


def test_list_shows_every_run_with_its_headline(two_runs: tuple[Path, RunOutcome, RunOutcome],
                                               tmp_path: Path) -> None:
    bt, a, b = two_runs
    out = _cli("runs", "--report-path", str(bt), "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["run", "created", "(UTC)", "symbols", "days", "trades", "net", "PnL", "PF", "max",
                                "DD"]
    for run in (a, b):
        row = next(line for line in lines if line.startswith(run.run_dir.name))
        agg = run.summary["aggregate"]
        assert f" {agg['total_trades']} " in row and fmt_usdt(agg["total_pnl_usdt"], sign=True) in row
        assert " BTCUSDT " in row and " 0.0833333 " in row  # 2 hours, in days


def test_show_prints_the_facts_and_formatted_metrics(two_runs: tuple[Path, RunOutcome, RunOutcome],
                                                     tmp_path: Path) -> None:
    bt, a, b = two_runs
    out = _cli("runs", "--report-path", str(bt), "show", "latest", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert b.run_dir.name in out.stdout and "2025-06-20T00:00:00Z → 2025-06-20T02:00:00Z" in out.stdout
    net = next(line for line in out.stdout.splitlines() if line.startswith("Net PnL "))
    assert net.split()[-2:] == fmt_usdt(b.summary["aggregate"]["total_pnl_usdt"], sign=True).split()
    assert "Average hold" in out.stdout and "† n/a: Sharpe/Sortino/Calmar need at least 30" in out.stdout
    by_path = _cli("runs", "show", str(a.run_dir), cwd=tmp_path)  # a folder works without --report-path
    assert by_path.returncode == 0 and a.run_dir.name in by_path.stdout


def test_compare_diffs_metrics_and_settings(two_runs: tuple[Path, RunOutcome, RunOutcome], tmp_path: Path) -> None:
    bt, a, b = two_runs
    # A by a prefix: its name minus the seed's last digit ("…-s4") is unique even when both runs started in the same
    # second (then the names differ only in the seed: "…-s42", "…-s7"); B by its full name
    out = _cli("runs", "--report-path", str(bt), "compare", a.run_dir.name[:-1], b.run_dir.name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "metrics: BTCUSDT" in text and "B − A" in text
    trades = next(line for line in text.splitlines() if line.startswith("Trades "))
    na, nb = a.summary["aggregate"]["total_trades"], b.summary["aggregate"]["total_trades"]
    assert trades.split()[1:3] == [str(na), str(nb)]
    assert trades.split()[-1] == ("=" if na == nb else f"{nb - na:+d}")
    diffs = {line.split()[0]: line.split()[1:] for line in text.split("settings and run facts that differ:")[1]
             .splitlines()[3:] if line.strip()}
    assert diffs["seed"] == ["42", "7"] and diffs["risk.min_sl_pct"][1] == "0.004"
    assert "settings_hash" in diffs and "backtest.seed" not in diffs  # the seed came from the command line
    assert not any(k.startswith("data_hash") for k in diffs)  # same window, same data


def test_unknown_or_ambiguous_run_is_a_clear_error(two_runs: tuple[Path, RunOutcome, RunOutcome],
                                                  tmp_path: Path) -> None:
    bt, a, _ = two_runs
    out = _cli("runs", "--report-path", str(bt), "show", "nope", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: unknown run 'nope' in ") and "(2 runs there" in out.stderr
    near = _cli("runs", "--report-path", str(bt), "show", a.run_dir.name[:-1] + "X", cwd=tmp_path)
    assert near.returncode == 2 and f"did you mean {a.run_dir.name}" in near.stderr
    amb = _cli("runs", "--report-path", str(bt), "compare", "BTCUSDT", "nope", cwd=tmp_path)
    assert amb.returncode == 2 and "is ambiguous" in amb.stderr
    empty = _cli("runs", "--report-path", str(tmp_path / "none"), "list", cwd=tmp_path)
    assert empty.returncode == 0 and empty.stdout.startswith("no runs in")


def test_a_half_written_folder_is_not_a_run(two_runs: tuple[Path, RunOutcome, RunOutcome], tmp_path: Path) -> None:
    bt = tmp_path / "bt"
    (bt / "runs" / "20250101T000000Z-BTCUSDT-s1").mkdir(parents=True)  # no manifest: never finished
    done = bt / "runs" / "20250102T000000Z-BTCUSDT-s1"
    done.mkdir()
    (done / "manifest.json").write_text(json.dumps({"symbols": ["BTCUSDT"]}))  # finished, summary missing
    out = _cli("runs", "--report-path", str(bt), "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "20250101T000000Z" not in out.stdout and "20250102T000000Z-BTCUSDT-s1" in out.stdout


def test_the_replay_options_still_mean_what_they_meant(tmp_path: Path) -> None:
    out = _cli("--help", cwd=tmp_path)
    assert out.returncode == 0 and "--symbol" in out.stdout and "runs list" in out.stdout
    bad = _cli("runs", "--report-path", str(tmp_path), "drop", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'drop'" in bad.stderr
    days = _cli("--symbol", "BTCUSDT", "--days", "inf", cwd=tmp_path)  # the replay parser still owns its options
    assert days.returncode == 2 and "--days" in days.stderr
