"""report.html: numbers formatted for people, coarse candles for long windows, and a real headless Chromium that
opens the report of a real replay and finds every chart drawn, without console errors, offline and byte-stable."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium import CHARTS_DREW, chromium_path, load
from replay_helpers import settings_with

from replay.backtest import BacktestEngine, RunOutcome
from replay.metrics import EquityPoint
from replay.report import write_report
from replay.report.data import (
    candle_interval,
    equity_series,
    read_execution,
    read_trials,
    resample,
    summed_equity,
)
from replay.report.formatting import (
    fmt_bps,
    fmt_duration,
    fmt_num,
    fmt_pct,
    fmt_pf,
    fmt_ratio,
    fmt_usdt,
)

WINDOW = ("2025-06-20T00:00", "2025-06-20T06:00")
PAIR = ["BTCUSDT", "ETHUSDT"]


# ------------------------------------------------------------------------------------------------ formatting
@pytest.mark.parametrize(("sec", "text"), [(0, "0s"), (42.4, "42s"), (60, "1m"), (725, "12m 5s"), (3600, "1h"),
                                           (4380, "1h 13m"), (86_400, "1d"), (189_000, "2d 4h"), (None, "n/a"),
                                           (-90, "−1m 30s"), ("inf", "n/a")])
def test_durations_read_like_1h_13m(sec: Any, text: str) -> None:
    assert fmt_duration(sec) == text


def test_money_percent_bps_and_the_odd_values() -> None:
    assert fmt_usdt(1234.567) == "1,234.57 USDT"
    assert fmt_usdt(-728.731206) == "-728.73 USDT"
    assert fmt_usdt(12.5, sign=True) == "+12.50 USDT" and fmt_usdt(-0.001, sign=True) == "0.00 USDT"
    assert fmt_pct(0.301887, ratio=True, digits=1) == "30.2 %" and fmt_pct(8.125565) == "8.13 %"
    assert fmt_pct(-0.0001) == "0.00 %" and fmt_pct(2.5, sign=True) == "+2.50 %"
    assert fmt_bps(-758.588895) == "-758.6 bps"
    assert fmt_pf(math.inf) == "∞ *" and fmt_pf("inf") == "∞ *" and fmt_pf(0.22505) == "0.23"
    assert fmt_ratio(None) == "n/a †" and fmt_ratio(1.234) == "1.23"
    assert fmt_num("nan") == "n/a" and fmt_num(None) == "n/a" and fmt_num(True) == "n/a"


# ------------------------------------------------------------------------------------------------ data
def test_thirty_days_of_minutes_draw_as_hourly_candles_with_true_extremes() -> None:
    assert candle_interval(30 * 86_400) == 3600 and candle_interval(3 * 86_400) == 300
    assert candle_interval(6 * 3600) == 60
    n = 30 * 1440
    t = 1_750_000_020_000 + 60_000 * np.arange(n)  # not hour-aligned on purpose
    rng = np.random.default_rng(1)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    o = np.r_[100.0, close[:-1]]
    h, lo = np.maximum(o, close) + 0.05, np.minimum(o, close) - 0.05
    ohlc = resample(t, o, h, lo, close)
    assert ohlc.interval_sec == 3600 and ohlc.time_ms.size <= 721
    assert np.all(ohlc.time_ms % 3_600_000 == 0)
    first = t < (t[0] // 3_600_000 + 1) * 3_600_000  # the minutes of the first (partial) hour
    assert ohlc.open[0] == o[0] and ohlc.close[0] == close[first][-1]
    assert ohlc.high[0] == h[first].max() and ohlc.low[0] == lo[first].min()
    assert ohlc.high.max() == h.max() and ohlc.low.min() == lo.min() and ohlc.close[-1] == close[-1]


def test_thinned_equity_keeps_the_deepest_drawdown() -> None:
    eq = [EquityPoint(i * 300.0, 10_000.0) for i in range(10_000)]
    eq[4321] = EquityPoint(4321 * 300.0, 9_000.0)  # one deep sample between thinned points
    t, _, dd = equity_series(eq, max_points=500)
    assert t.size <= 500 and dd.min() == pytest.approx(-10.0)


def test_isolated_accounts_are_drawn_as_their_sum() -> None:
    a = [EquityPoint(0.0, 100.0), EquityPoint(300.0, 110.0), EquityPoint(600.0, 90.0)]
    b = [EquityPoint(0.0, 100.0), EquityPoint(600.0, 120.0)]  # no sample at 300: carried forward
    assert [(p.ts, p.equity) for p in summed_equity([a, b])] == [(0.0, 200.0), (300.0, 210.0), (600.0, 210.0)]


# ------------------------------------------------------------------------------------------------ a real run
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    """A 6-hour two-symbol portfolio replay (a few seconds) with trades on both symbols."""
    bt = tmp_path_factory.mktemp("report") / "bt"
    engine = BacktestEngine().configure_from_settings(settings_with(**{"backtest.report_path": str(bt)}))
    out = engine.run_full_test(PAIR, start=WINDOW[0], end=WINDOW[1], seed=42)
    assert all(r.trades for r in out.results.values()), "the window must trade on both symbols"
    return out


def _rewrite(out: RunOutcome, path: Path) -> None:
    """The report of ``out`` written again (as BacktestEngine writes it) to ``path`` inside the run folder."""
    res = out.results
    write_report(path, title=f"Replay {out.run_dir.name}", facts={"mode": out.summary["mode"]},
                 per_symbol={s: r.metrics for s, r in res.items()}, equity={s: r.equity for s, r in res.items()},
                 trades={s: r.trades for s, r in res.items()}, portfolio=out.summary["aggregate"],
                 portfolio_equity=[], correlation=out.summary["correlation"],
                 candles={s: r.extra["candles"] for s, r in res.items()})


def _require_chromium() -> None:
    if chromium_path() is None:  # CI installs it (.ci/run): a missing browser is a failure, not a skip
        pytest.fail("Chromium not found: apt-get install -y chromium (the report test needs a real browser)")


def _assert_drew(html: Path, expected: set[str]) -> list[dict[str, Any]]:
    page = load(html, CHARTS_DREW, settle_sec=1.5)
    assert page.errors == [], page.errors
    charts = page.result
    ids = {c["id"] for c in charts}
    assert expected <= ids, expected - ids
    blank = [c for c in charts if c["width"] < 100 or c["height"] < 100 or c["marks"] == 0 or c["data"] == 0]
    assert blank == [], blank
    return charts


def test_report_is_self_contained_and_small(run: RunOutcome) -> None:
    html = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("<script type=\"text/javascript\">/**") == 1  # plotly.js inlined once (its banner)
    start = html.index("<script type=\"text/javascript\">/**")
    ours = html[:start] + html[html.index("</script>", start):]  # the page without plotly.js's own source
    assert not re.search(r"<script[^>]+src=", ours) and "../" not in ours and "plotly.min.js" not in ours
    assert not re.search(r"(src|href)=\"https?:", ours)
    divs = re.findall(r'<div id="(fig-[^"]+)" class="plotly-graph-div"', html)
    assert len(divs) == len(set(divs)) >= 8 and not re.search(r'id="[0-9a-f]{8}-[0-9a-f]{4}-', html)
    assert "<th>portfolio</th>" in html and "Correlation of the symbols" in html
    assert "this run has 1 (replay 30 days or more)" in html  # why Sharpe is n/a, as a footnote
    assert len(html.encode()) < 5.2e6


def test_chromium_draws_every_chart_of_a_real_run(run: RunOutcome) -> None:
    _require_chromium()
    expected = {"fig-equity", "fig-correlation", "fig-price-BTCUSDT", "fig-price-ETHUSDT", "fig-pnl-distribution",
                "fig-close-reasons", "fig-pnl-by-time", "fig-execution"}
    charts = _assert_drew(run.run_dir / "report.html", expected)
    price = next(c for c in charts if c["id"] == "fig-price-BTCUSDT")
    assert price["marks"] >= 360  # one box per 1m candle of the 6 hours, plus markers and TP/SL segments


def test_same_run_same_bytes(run: RunOutcome) -> None:
    first = run.run_dir / "again-1.html"
    second = run.run_dir / "again-2.html"
    _rewrite(run, first)
    _rewrite(run, second)
    assert first.read_bytes() == second.read_bytes()
    first.unlink()
    second.unlink()


def test_execution_quality_comes_from_the_bots_own_trade_log(run: RunOutcome) -> None:
    ex = read_execution(run.run_dir)
    assert set(ex) == set(PAIR)
    for sym, r in run.results.items():
        assert sum(ex[sym].entry_types.values()) >= len(r.trades)
        assert len(ex[sym].amends) == len(r.trades)  # one chase count per closed position
    html = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "market fallbacks" in html and "chase amends, mean" in html and "slippage p90" in html


# ------------------------------------------------------------------------------------------------ study hooks
def _write_study(run_dir: Path) -> None:
    """A small hand-written optimization and walk-forward in the shapes the report's docstring promises."""
    opt = run_dir / "optimization"
    opt.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    with (opt / "trials.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["number", "value", "datetime_start", "params_risk.min_sl_pct", "params_signals.threshold",
                    "params_execution.mode", "state"])
        for i in range(12):
            sl, th = 0.002 + 0.0005 * (i % 5), round(float(rng.uniform(0.3, 0.6)), 3)
            value = "" if i == 7 else f"{-200 + 900 * sl * 100 + rng.normal(0, 10):.3f}"
            w.writerow([i, value, "2025-07-01 00:00:00", sl, th, "passive", "FAIL" if i == 7 else "COMPLETE"])
    (opt / "study.json").write_text(json.dumps({"direction": "maximize", "objective": "total_pnl_bps"}))
    folds = [{"fold": k + 1, "train_start": f"2025-06-{1 + 7 * k:02d}T00:00:00Z",
              "train_end": f"2025-06-{6 + 7 * k:02d}T00:00:00Z", "test_start": f"2025-06-{6 + 7 * k:02d}T00:00:00Z",
              "test_end": f"2025-06-{8 + 7 * k:02d}T00:00:00Z",
              "in_sample": {"total_pnl_bps": 120.0 - 10 * k, "total_trades": 40, "total_pnl_usdt": 110.5,
                            "max_drawdown_pct": 2.5},
              "out_of_sample": {"total_pnl_bps": -15.0 + 20 * k, "total_trades": 12, "total_pnl_usdt": -14.2,
                                "max_drawdown_pct": 1.1},
              "params": {"risk.min_sl_pct": 0.003, "signals.threshold": 0.4 + 0.01 * k}} for k in range(3)]
    (run_dir / "walk_forward.json").write_text(json.dumps({"objective": "total_pnl_bps", "folds": folds}))


def test_optimization_and_walk_forward_hooks_render_in_chromium(run: RunOutcome) -> None:
    _require_chromium()
    _write_study(run.run_dir)
    try:
        trials = read_trials(run.run_dir)
        assert trials is not None and len(trials.complete()) == 11 and trials.state[7] == "FAIL"
        path = run.run_dir / "report-study.html"
        _rewrite(run, path)
        html = path.read_text(encoding="utf-8")
        assert "Optimization" in html and "Walk-forward" in html and "Best trial" in html
        assert "positive in 2 of 3 folds" in html
        _assert_drew(path, {"fig-opt-history", "fig-opt-importance", "fig-opt-parallel", "fig-walk-forward",
                            "fig-equity"})
        path.unlink()
    finally:
        (run.run_dir / "walk_forward.json").unlink()
        for p in (run.run_dir / "optimization").iterdir():
            p.unlink()
        (run.run_dir / "optimization").rmdir()


def test_a_malformed_study_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / "optimization").mkdir()
    (tmp_path / "optimization" / "trials.csv").write_text("trial,score\n1,2\n")
    with pytest.raises(ValueError, match=r"trials\.csv: needs the columns number and value"):
        read_trials(tmp_path)


def test_a_folder_with_only_a_study_still_gets_a_report(tmp_path: Path) -> None:
    """The optimizer may write a folder with no replay of its own: the report then holds the study sections only."""
    _write_study(tmp_path)
    write_report(tmp_path / "report.html", title="study", facts={}, per_symbol={}, equity={}, trades={})
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="fig-opt-history"' in html and 'id="fig-walk-forward"' in html and "Headline metrics" not in html
