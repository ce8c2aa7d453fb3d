"""Portfolio replay (ARCHITECTURE.md §8): several symbols, one bot, one simulated account; and the isolated fan-out.

Real bundled candles, the real bot and the simulated exchange throughout.
"""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import EIGHT_SEC, Recorder, epoch, portfolio_job, settings_with, signal_rows

from bot.orchestrator import NO_SLOT, OPENED
from replay.backtest import BacktestEngine
from replay.engine import PortfolioResult, run_portfolio
from replay.metrics import EquityPoint
from replay.portfolio import correlation

WINDOW = ("2025-06-20T00:00", "2025-06-20T06:00")
PAIR = ("ETHUSDT", "BTCUSDT")  # given out of order on purpose: the bot's trade_pairs order decides


def _run(tmp: Path, **over: object) -> tuple[PortfolioResult, Recorder]:
    rec = Recorder()
    return run_portfolio(portfolio_job(tmp, PAIR, *WINDOW, **over), inspect=rec), rec


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> tuple[PortfolioResult, Recorder, Path]:
    tmp = tmp_path_factory.mktemp("cap1")
    r, rec = _run(tmp, **{"risk.max_open_positions": 1})
    return r, rec, tmp


def _intervals(r: PortfolioResult) -> list[tuple[float, float, str]]:
    return sorted((t.opened_ts, t.closed_ts, t.symbol) for s in r.symbols.values() for t in s.trades)


def _overlaps(r: PortfolioResult) -> int:
    iv = _intervals(r)
    return sum(1 for i, a in enumerate(iv) for b in iv[i + 1:] if b[2] != a[2] and b[0] < a[1])


def test_one_bot_trades_both_symbols_on_one_account(capped: tuple[PortfolioResult, Recorder, Path]) -> None:
    r, rec, tmp = capped
    assert list(r.symbols) == ["BTCUSDT", "ETHUSDT"]
    assert rec.bot is not None and rec.bot.symbols[:2] == ("BTCUSDT", "ETHUSDT") and len(rec.bot.symbols) == 10
    log = tmp / "bot_BTCUSDT-ETHUSDT"
    rows = signal_rows(log / "signals.csv")
    for sym in ("BTCUSDT", "ETHUSDT"):  # same batch: evaluated in the same ticks, each every 8 s
        ts = [epoch(x["ts"]) for x in rows if x["symbol"] == sym]
        assert {b - a for a, b in itertools.pairwise(ts)} == {EIGHT_SEC}, sym
    with (log / "trades.csv").open(newline="") as f:
        traded = {row["symbol"] for row in csv.DictReader(f)}
    assert traded == {"BTCUSDT", "ETHUSDT"}, "one trades.csv for the whole account"
    # the account's equity is the sum of the symbols' contributions, sample by sample
    initial = settings_with().backtest.initial_balance_usdt
    for i, p in enumerate(r.equity):
        total = sum(s.equity[i].equity - initial for s in r.symbols.values()) + initial
        assert p.ts == r.symbols["BTCUSDT"].equity[i].ts and abs(p.equity - total) < 1e-6
    assert r.metrics["total_trades"] == sum(s.metrics["total_trades"] for s in r.symbols.values())
    assert r.metrics["ledger_reconciles"] is True
    m = r.correlation["matrix"]
    assert set(m) == {"BTCUSDT", "ETHUSDT"} and m["BTCUSDT"]["ETHUSDT"] == m["ETHUSDT"]["BTCUSDT"]
    assert r.correlation["points"] == 6
    # strict mode holds for the portfolio too: every action at a candle close, on a signal of the candle just closed
    assert rec.decisions and all(d.ts % 60 == 0 and d.ts - 60 < d.signal_ts <= d.ts for d in rec.decisions)
    assert {d.symbol for d in rec.decisions} == {"BTCUSDT", "ETHUSDT"}


def test_max_open_positions_counts_across_symbols(capped: tuple[PortfolioResult, Recorder, Path],
                                                  tmp_path: Path) -> None:
    r1, rec, _ = capped
    assert _overlaps(r1) == 0, "cap 1: never two positions at once"
    refused = [d for d in rec.decisions if d.outcome == NO_SLOT]
    assert {d.symbol for d in refused} == {"BTCUSDT", "ETHUSDT"}, "each symbol was kept out by the other's position"
    assert sum(d.outcome == OPENED for d in rec.decisions) == r1.metrics["entry_attempts"]
    r5, _ = _run(tmp_path, **{"risk.max_open_positions": 5})
    assert _overlaps(r5) > 0, "with room for both, the same signals hold positions at once"


def test_portfolio_runs_are_deterministic(capped: tuple[PortfolioResult, Recorder, Path], tmp_path: Path) -> None:
    r1, _, tmp1 = capped
    r2, _ = _run(tmp_path, **{"risk.max_open_positions": 1})
    for name in ("signals.csv", "trades.csv"):
        assert (tmp1 / "bot_BTCUSDT-ETHUSDT" / name).read_bytes() == (tmp_path / "bot_BTCUSDT-ETHUSDT" / name
                                                                       ).read_bytes(), name
    assert json.dumps(r1.metrics, sort_keys=True) == json.dumps(r2.metrics, sort_keys=True)
    assert r1.equity == r2.equity


def test_one_symbol_aggregate_equals_the_symbol_and_equity_rows_are_unique(tmp_path: Path) -> None:
    """Issue 13, defect 1: the aggregate added the repeated last equity row twice."""
    settings = settings_with(**{"backtest.report_path": str(tmp_path / "bt")})
    out = BacktestEngine().configure_from_settings(settings).run_full_test(["BTCUSDT"], start=WINDOW[0],
                                                                           end="2025-06-20T03:00", seed=42)
    summary = json.loads((out.run_dir / "summary.json").read_text())
    sym = json.loads((out.run_dir / "metrics_BTCUSDT.json").read_text())
    agg = summary["aggregate"]
    assert sym["total_trades"] > 0 and sym["max_drawdown_pct"] > 0, "a window that trades, or this proves little"
    for k, v in sym.items():
        if k in agg:
            assert agg[k] == v, k
    assert {"final_equity", "max_drawdown_pct", "total_pnl_usdt", "sharpe", "fill_rate"} <= set(agg)
    with (out.run_dir / "equity_BTCUSDT.csv").open(newline="") as f:
        stamps = [row["ts"] for row in csv.DictReader(f)]
    assert len(stamps) == len(set(stamps)) and stamps[-1] == "2025-06-20T03:00:00.000Z"


def test_isolated_runs_keep_one_account_per_symbol(tmp_path: Path) -> None:
    settings = settings_with(**{"backtest.report_path": str(tmp_path / "bt")})
    out = BacktestEngine(isolated=True).configure_from_settings(settings).run_full_test(
        list(PAIR), start=WINDOW[0], end="2025-06-20T02:00", seed=42)
    summary = out.summary
    assert summary["account"].startswith("isolated")
    assert list(summary["symbols"]) == ["BTCUSDT", "ETHUSDT"]
    assert (out.run_dir / "bot_BTCUSDT").is_dir() and (out.run_dir / "bot_ETHUSDT").is_dir()
    finals = [r.metrics["final_equity"] for r in out.results.values()]
    assert summary["aggregate"]["final_equity"] == pytest.approx(sum(finals), abs=1e-5)  # two accounts summed
    assert summary["aggregate"]["total_trades"] == sum(r.metrics["total_trades"] for r in out.results.values())
    assert not (out.run_dir / "equity_portfolio.csv").exists()


@pytest.mark.parametrize(("symbols", "expected"), [("BTCUSDT,NOPEUSDT", "NOPEUSDT"),
                                                   ("BTCUSDT,btcusdt", "more than once")])
def test_bad_symbol_lists_fail_in_one_line(symbols: str, expected: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "replay", "--no-progress", "--symbols", symbols, "--days", "1",
                          "--report-path", str(tmp_path / "bt")], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120, check=False)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], out.stderr


def test_correlation_of_hourly_equity_changes_by_hand() -> None:
    h = 3600.0
    up = [EquityPoint(k * h, 100.0 + k * k) for k in range(6)]         # changes 1, 3, 5, 7, 9
    twice = [EquityPoint(k * h, 50.0 + 2 * k * k) for k in range(6)]  # the same changes doubled: r = 1
    down = [EquityPoint(k * h, 100.0 - k * k) for k in range(6)]       # mirrored: r = -1
    flat = [EquityPoint(k * h, 100.0) for k in range(6)]               # no variance: undefined
    c = correlation({"A": up, "B": twice, "C": down, "D": flat})
    m = c["matrix"]
    assert c["points"] == 5
    assert m["A"]["B"] == 1.0 and m["A"]["C"] == -1.0 and m["B"]["C"] == -1.0 and m["A"]["A"] == 1.0
    assert m["A"]["D"] is None and m["D"]["D"] is None
    short = correlation({"A": up[:3], "B": twice[:3]})  # two changes: too few points
    assert short["points"] == 2 and short["matrix"]["A"]["B"] is None


def test_a_portfolio_run_folder_reports_the_account(tmp_path: Path) -> None:
    settings = settings_with(**{"backtest.report_path": str(tmp_path / "bt")})
    out = BacktestEngine().configure_from_settings(settings).run_full_test(
        list(PAIR), start=WINDOW[0], end="2025-06-20T01:00", seed=42)
    names = {p.name for p in out.run_dir.iterdir()}
    assert {"equity_portfolio.csv", "equity_BTCUSDT.csv", "equity_ETHUSDT.csv", "bot_BTCUSDT-ETHUSDT"} <= names
    summary = json.loads((out.run_dir / "summary.json").read_text())
    assert summary["account"].startswith("portfolio") and summary["aggregate"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert set(summary["correlation"]["matrix"]) == {"BTCUSDT", "ETHUSDT"}
    with (out.run_dir / "equity_portfolio.csv").open(newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["equity"]) == pytest.approx(summary["aggregate"]["final_equity"], abs=1e-6)
    html = (out.run_dir / "report.html").read_text()
    assert "<th>portfolio</th>" in html and "Correlation of the symbols" in html
