"""The replay harness end to end: the CLI on the bundled data, determinism, no-repaint, and bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.clock import Clock
from bot.events import BookDelta, BookSnapshot, EventBatch, MarketEvent, TradeBatch, latest_ts
from replay.artifacts import rotate_runs
from replay.engine import SymbolJob, run_symbol
from settings import Settings
from settings.search import with_overrides

ROOT = Path(__file__).resolve().parent.parent
BTC_FILE = ROOT / "data" / "klines" / "bybit-linear-1m" / "BTCUSDT_1m_2025-05-30_2025-06-29.csv.gz"
WINDOW = ("2025-06-20T00:00", "2025-06-20T12:00")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay", "--no-progress", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False)


def _job(tmp: Path, *, seed: int = 42, start: str = WINDOW[0], end: str = WINDOW[1], **over: object) -> SymbolJob:
    settings = with_overrides(Settings(), over) if over else Settings()
    return SymbolJob(symbol="BTCUSDT", settings_json=settings.model_dump_json(), out_dir=str(tmp), seed=seed,
                     start=start, end=end)


def test_cli_runs_on_bundled_data_and_writes_every_artifact(tmp_path: Path) -> None:
    out = _cli("--symbol", "BTCUSDT", "--days", "0.25", "--report-path", str(tmp_path / "bt"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "BTCUSDT" in out.stdout and "strict no-repaint" in out.stdout
    run_dir = Path(out.stdout.strip().splitlines()[-1].removeprefix("run folder: "))
    assert run_dir.parent == tmp_path / "bt" / "runs"
    for name in ("manifest.json", "trades_BTCUSDT.csv", "equity_BTCUSDT.csv", "metrics_BTCUSDT.json", "summary.json",
                 "report.html", "backtest.log"):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["seed"] == 42 and len(manifest["settings_hash"]) == 64
    assert len(manifest["data_hash"]["BTCUSDT"]) == 64 and manifest["git_commit"]
    assert "api_key" not in json.dumps(manifest["settings"]) or manifest["settings"].get("api_key") is None
    metrics = json.loads((run_dir / "metrics_BTCUSDT.json").read_text())
    assert metrics["ledger_reconciles"] is True
    trades = (run_dir / "trades_BTCUSDT.csv").read_text().splitlines()
    assert len(trades) - 1 == metrics["total_trades"]
    assert not (tmp_path / "bt" / "plotly.min.js").exists()  # inlined in report.html: the file travels alone
    assert "strict no-repaint" in (run_dir / "report.html").read_text()


def test_same_seed_gives_byte_identical_trades_and_metrics(tmp_path: Path) -> None:
    a = run_symbol(_job(tmp_path / "a", end="2025-06-20T06:00"))
    b = run_symbol(_job(tmp_path / "b", end="2025-06-20T06:00"))
    assert a.trades, "the window should trade, or this test proves nothing"
    assert a.trades == b.trades
    assert json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True)
    ta = (tmp_path / "a" / "bot_BTCUSDT" / "trades.csv").read_bytes()
    assert ta == (tmp_path / "b" / "bot_BTCUSDT" / "trades.csv").read_bytes()
    sa = (tmp_path / "a" / "bot_BTCUSDT" / "signals.csv").read_bytes()
    assert sa == (tmp_path / "b" / "bot_BTCUSDT" / "signals.csv").read_bytes()
    run_symbol(_job(tmp_path / "c", seed=43, end="2025-06-20T06:00"))
    assert (tmp_path / "c" / "bot_BTCUSDT" / "signals.csv").read_bytes() != sa, "the seed must matter"


def test_bot_never_observes_an_event_stamped_after_its_clock(tmp_path: Path) -> None:
    seen = {"books": 0, "trades": 0, "late": 0}

    def observer(clock: Clock, batch: EventBatch) -> None:
        now = clock.now()
        seen["books"] += sum(isinstance(ev, BookSnapshot | BookDelta) for ev in batch)
        seen["trades"] += sum(len(ev) for ev in batch if isinstance(ev, TradeBatch))
        seen["late"] += sum(1 for ev in batch if latest_ts(ev) > now)  # a TradeBatch: its newest row

    run_symbol(_job(tmp_path, start="2025-06-20T00:00", end="2025-06-20T02:00"), observers=[observer])
    assert seen["books"] == 120 * Settings().backtest.intrabar_points_per_candle  # every book update reached it
    assert seen["trades"] > 120 * 50
    assert seen["late"] == 0


def _write_csv(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def real_rows() -> list[str]:
    with gzip.open(BTC_FILE, "rt") as f:
        return [next(f).strip() for _ in range(2 * 1440 + 1)]


BAD_CASES = {
    "gap": (lambda r: r[:2000] + r[2004:], "4 missing minutes"),
    "nan": (lambda r: [*r[:50], r[50].rsplit(",", 2)[0] + ",nan," + r[50].rsplit(",", 1)[1], *r[51:]], "line 51"),
    "duplicate": (lambda r: [*r[:70], r[69], *r[70:]], "duplicated minute"),
    "high_below_low": (lambda r: [*r[:30], _swap_hl(r[30]), *r[31:]], "line 31"),
    "empty": (lambda r: [], "empty"),
}


def _swap_hl(row: str) -> str:
    t, o, h, lo, c, v = row.split(",")
    return ",".join([t, o, lo, h, c, v])


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_data_gives_one_clear_line_and_no_run_folder(case: str, tmp_path: Path, real_rows: list[str]) -> None:
    mutate, expected = BAD_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    _write_csv(data / "BTCUSDT_1m_test.csv.gz", mutate(real_rows) if case != "empty" else [])
    report = tmp_path / "bt"
    out = _cli("--symbol", "BTCUSDT", "--days", "1", "--data-dir", str(data), "--report-path", str(report),
               cwd=tmp_path)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), out.stderr
    assert expected in err[0], err[0]
    assert "Traceback" not in out.stderr
    assert not list((report / "runs").glob("*")) if (report / "runs").exists() else True


@pytest.mark.parametrize(("args", "expected"), [
    (("--symbol", "NOPEUSDT", "--days", "1"), "NOPEUSDT"),
    (("--symbol", "BTCUSDT", "--days", "31"), "BTCUSDT"),
    (("--symbol", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02"), "2024-01-01"),
])
def test_bad_requests_fail_in_one_line(args: tuple[str, ...], expected: str, tmp_path: Path) -> None:
    out = _cli(*args, "--report-path", str(tmp_path / "bt"), cwd=tmp_path)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and expected in err[0], out.stderr
    assert not (tmp_path / "bt" / "runs").exists() or not list((tmp_path / "bt" / "runs").iterdir())


def test_rotation_keeps_the_newest_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i in range(5):
        d = runs / f"2025010{i}T000000Z-x"
        d.mkdir(parents=True)
        (d / "manifest.json").write_text("{}")
    (runs / "not-a-run").mkdir()
    removed = rotate_runs(tmp_path, keep_last_n=2)
    assert sorted(p.name for p in removed) == ["20250100T000000Z-x", "20250101T000000Z-x", "20250102T000000Z-x"]
    assert sorted(p.name for p in runs.iterdir()) == ["20250103T000000Z-x", "20250104T000000Z-x", "not-a-run"]


def test_live_cadence_run_reports_generator_dependence(tmp_path: Path) -> None:
    from replay.backtest import BacktestEngine

    settings = with_overrides(Settings(), {"backtest.strict_repainting_check": False, "backtest.generator_seeds": 1,
                                           "backtest.report_path": str(tmp_path / "bt")})
    outcome = BacktestEngine().configure_from_settings(settings).run_full_test(
        ["BTCUSDT"], start="2025-06-20T00:00", end="2025-06-20T03:00", seed=5)
    rows = outcome.summary["robustness"]
    assert [r["variant"] for r in rows] == ["seed 6", "pessimistic path"]
    assert outcome.summary["mode"].startswith("live cadence")
    signals = (outcome.run_dir / "bot_BTCUSDT" / "signals.csv").read_text().splitlines()
    # BTC's live revisit period with the 10 default pairs: one evaluation every 8 s of the 3 h (none before the first
    # book arrives)
    assert 3 * 3600 // 8 - 2 <= len(signals) - 1 <= 3 * 3600 // 8, "live cadence evaluates BTC every 8 s"
    html = (outcome.run_dir / "report.html").read_text()
    assert "Generator dependence" in html and "pessimistic path" in html
    assert not (outcome.run_dir / "robustness").exists()


def test_gap_policy_split_replays_around_the_gap_without_interpolating(tmp_path: Path, real_rows: list[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = real_rows[:2700] + real_rows[2730:]  # a 30-minute hole inside the last six hours
    _write_csv(data / "BTCUSDT_1m_test.csv.gz", rows)
    settings = with_overrides(Settings(), {"backtest.gap_policy": "split"})
    job = SymbolJob(symbol="BTCUSDT", settings_json=settings.model_dump_json(), out_dir=str(tmp_path / "out"),
                    seed=42, days=0.25, data_dir=str(data))
    seen: list[float] = []
    books: list[object] = []

    def observer(clock: Clock, batch: EventBatch) -> None:
        seen.extend(t for ev in batch for t in stamps(ev))
        books.extend(ev for ev in batch if isinstance(ev, BookSnapshot | BookDelta))

    result = run_symbol(job, observers=[observer])
    gap = result.metrics["data_gaps"]
    assert len(gap) == 1
    gap_start, gap_end = (_iso_ts(x) for x in gap[0])
    assert gap_end - gap_start == 30 * 60
    assert seen and not [t for t in seen if gap_start < t <= gap_end], "no market event may be invented inside the gap"
    assert len(books) == (360 - 30) * Settings().backtest.intrabar_points_per_candle
    after = [b for b in books if b.ts > gap_end]  # type: ignore[attr-defined]
    assert isinstance(books[0], BookSnapshot) and isinstance(after[0], BookSnapshot)  # fresh book after the outage


def stamps(ev: MarketEvent) -> list[float]:
    """Every exchange time an event carries: a ``TradeBatch`` has one per row."""
    return ev.ts.tolist() if isinstance(ev, TradeBatch) else [ev.ts]


def _iso_ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
