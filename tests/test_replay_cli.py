"""``python -m replay`` options: bad input is one line naming the option and value (issue 13, defect 4), and a short
run says why it shows no Sharpe instead of annualising a couple of days."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")}
    return subprocess.run([sys.executable, "-m", "replay", "--no-progress", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300, check=False)


BAD_OPTIONS = [
    (("--days", "inf"), ("--days", "'inf'")),
    (("--days", "nan"), ("--days", "'nan'")),
    (("--days", "-1"), ("--days", "'-1'")),
    (("--days", "0.0001"), ("--days", "'0.0001'", "one minute")),
    (("--days", "three"), ("--days", "'three'")),
    (("--seed", "-5"), ("--seed", "'-5'", "non-negative")),
    (("--seed", "1.5"), ("--seed", "'1.5'")),
    (("--start", "yesterday"), ("--start", "'yesterday'")),
    (("--quick", "--days", "5"), ("--quick", "--days 5")),
    (("--quick", "--start", "2025-06-20"), ("--quick", "--start 2025-06-20")),
    (("--quick", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT"), ("--quick", "BTCUSDT,ETHUSDT,SOLUSDT", "at most 2")),
    (("--quick", "--symbol", "BTCUSDT,ETHUSDT,SOLUSDT"), ("--quick", "--symbol BTCUSDT,ETHUSDT,SOLUSDT")),
    (("--days", "1", "--start", "2025-06-20", "--end", "2025-06-21"), ("--days 1", "--start 2025-06-20",
                                                                       "--end 2025-06-21")),
    (("--symbols", ","), ("--symbols", "','")),
    (("--symbol", "BTCUSDT", "--symbols", "ETHUSDT"), ("--symbol BTCUSDT", "--symbols ETHUSDT")),
    (("--dayz", "3"), ("--dayz",)),
]


@pytest.mark.parametrize(("args", "expected"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_option_is_one_line_naming_it_and_nothing_is_lost(args: tuple[str, ...], expected: tuple[str, ...],
                                                             tmp_path: Path) -> None:
    runs = tmp_path / "bt" / "runs"
    earlier = runs / "20250101T000000Z-BTCUSDT-s42"  # a finished run that must survive a refused command
    earlier.mkdir(parents=True)
    (earlier / "manifest.json").write_text("{}")
    out = _cli(*args, "--report-path", str(tmp_path / "bt"), cwd=tmp_path)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), out.stderr
    assert all(e in err[0] for e in expected), err[0]
    assert out.stdout == ""
    assert [p.name for p in runs.iterdir()] == [earlier.name] and (earlier / "manifest.json").is_file()


def test_two_day_run_says_why_it_has_no_sharpe(tmp_path: Path) -> None:
    # four hours across midnight: two UTC days of equity (two daily returns) at a ninth of a two-day replay's cost
    out = _cli("--symbol", "BTCUSDT", "--start", "2025-06-20T22:00", "--end", "2025-06-21T02:00", "--report-path",
               str(tmp_path / "bt"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.split()[:1] == ["BTCUSDT"])
    assert row.split()[7] == "n/a", row
    note = ("Sharpe n/a for BTCUSDT: Sharpe/Sortino/Calmar need at least 30 daily returns to be annualised, this run "
            "has 2 (replay 30 days or more)")
    assert note in out.stdout.splitlines()
    run_dir = Path(out.stdout.strip().splitlines()[-1].removeprefix("run folder: "))
    headline = json.loads((run_dir / "summary.json").read_text())["symbols"]["BTCUSDT"]
    assert headline["sharpe"] is None and "this run has 2" in headline["ratios_note"]
    metrics = json.loads((run_dir / "metrics_BTCUSDT.json").read_text())
    assert metrics["sortino"] is None and metrics["calmar"] is None and metrics["daily_returns"] == 2
    assert "this run has 2" in (run_dir / "report.html").read_text()
