"""Calibration ingest → stats → fit → replay (issue 12 parts 2–4) on the real bundled files, through the real CLIs.

The Bybit public trade archive CSV fixture is built from the bundled capture's real ``publicTrade`` frames
(``tests/make_trade_csv.py``): no real public.bybit.com/trading file is available offline.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from replay.synthetic import GeneratorParams

ROOT = Path(__file__).resolve().parent.parent
WS = ROOT / "data" / "ws"
ARCHIVE = WS / "bybit-archive-ob500-XRPUSDT-2024-12-01-sample.data.zip"
TRADE_CSV = WS / "bybit-trading-from-capture-2026-08-09.csv.gz"
CAPTURE = WS / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
BTC = ROOT / "data" / "l2" / "binance-usdm-btcusdt-2024-08-08-345s.gz"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calibration", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_ingest_reads_the_archive_the_trade_csv_and_the_capture(tmp_path: Path) -> None:
    out = _cli("ingest", "--root", str(tmp_path), str(ARCHIVE), str(TRADE_CSV), str(CAPTURE))
    assert out.returncode == 0, out.stderr
    docs = {p.name.rsplit(".", 2)[0]: json.loads(p.read_text()) for p in (tmp_path / "ingested").glob("*.json")}
    assert sorted(docs) == sorted(f.name for f in (ARCHIVE, TRADE_CSV, CAPTURE))
    (xrp,) = docs[ARCHIVE.name]["symbols"]
    assert xrp["symbol"] == "XRPUSDT" and "trades" not in xrp and xrp["book"]["samples"] > 0
    assert abs(sum(xrp["book"]["spread_ticks_pmf"].values()) - 1) < 1e-4
    assert xrp["span"]["start"].startswith("2024-12-01")
    # the CSV holds the capture's own trades: every trade figure must come out identical
    csv_syms = {s["symbol"]: s for s in docs[TRADE_CSV.name]["symbols"]}
    cap_syms = {s["symbol"]: s for s in docs[CAPTURE.name]["symbols"]}
    assert sorted(csv_syms) == sorted(cap_syms) == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    for sym, s in csv_syms.items():
        assert "book" not in s and "book" in cap_syms[sym]
        assert s["trades"] == cap_syms[sym]["trades"], sym
    assert sum(s["trades"]["count"] for s in csv_syms.values()) == 327


def _bad_csv(tmp: Path) -> tuple[Path, str]:
    lines = gzip.decompress(TRADE_CSV.read_bytes()).decode().splitlines()
    lines[3] = lines[3].replace(",Buy,", ",Hold,").replace(",Sell,", ",Hold,")
    p = tmp / "bad-trades.csv"
    p.write_text("\n".join(lines) + "\n")
    return p, "bad-trades.csv:4:"


def _bad_capture(tmp: Path) -> tuple[Path, str]:
    lines = gzip.decompress(CAPTURE.read_bytes()).splitlines()
    lines[2] = lines[2][:40]
    p = tmp / "bad-capture.ndjson.gz"
    p.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return p, "bad-capture.ndjson.gz:3:"


def _bad_zip(tmp: Path) -> tuple[Path, str]:
    p = tmp / "2024-12-01_XRPUSDT_ob500.data.zip"
    p.write_bytes(ARCHIVE.read_bytes()[:500])
    return p, "2024-12-01_XRPUSDT_ob500.data.zip: unreadable archive"


@pytest.mark.parametrize("make", [_bad_csv, _bad_capture, _bad_zip])
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(
    tmp_path: Path, make: Callable[[Path], tuple[Path, str]]
) -> None:
    bad, expected = make(tmp_path)
    root = tmp_path / "cal"
    out = _cli("ingest", "--root", str(root), str(ARCHIVE), str(bad))  # a good file first: not written either
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and expected in out.stderr, out.stderr
    assert not root.exists() or not any(root.rglob("*.json"))


def test_stats_is_deterministic_and_fit_writes_generator_coefficients_only(tmp_path: Path) -> None:
    assert _cli("ingest", "--root", str(tmp_path), str(BTC), str(CAPTURE), str(ARCHIVE)).returncode == 0
    out = _cli("stats", "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    first = (tmp_path / "calibration.json").read_bytes()
    from calibration.calibfile import write_calibration
    from calibration.ingest import aggregate_file

    write_calibration(tmp_path, tmp_path / "again.json")
    second = (tmp_path / "again.json").read_bytes()
    assert first == second
    assert aggregate_file(CAPTURE) == json.loads(
        next((tmp_path / "ingested").glob(f"{CAPTURE.name}.*.json")).read_text()
    )
    assert 20_000 < len(second) < 1_000_000
    text = second.decode()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    doc = json.loads(text)
    assert sorted(doc["symbols"]) == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    btc = doc["symbols"]["BTCUSDT"]
    assert [s["venue"] for s in btc["sources"]] == ["binance-usdm", "bybit-linear"]
    assert btc["span"]["seconds"] == pytest.approx(sum(s["span"]["seconds"] for s in btc["sources"]))
    t = btc["sources"][0]["trades"]
    for key in ("notional", "size", "inter_trade_ms", "intensity", "buy_share_by_move", "large_trade_share"):
        assert key in t
    assert "cum_notional_within_bps" in btc["sources"][0]["book"]
    assert doc["_generator_fitted_on"] == ["binance-usdm-btcusdt-2024-08-08-345s.gz:BTCUSDT"]
    # the block is the fit `compare --fit-on BTC` makes (whose held-out fidelity tests/test_calibration.py bands)
    from calibration.cli import _fit_params
    from replay.synthetic.builder import DEFAULT_POINTS_PER_CANDLE

    direct, _ = _fit_params([BTC], DEFAULT_POINTS_PER_CANDLE)
    for k, v in doc["generator"].items():
        assert v == pytest.approx(getattr(direct, k), rel=1e-5), k

    out = _cli("fit", "--root", str(tmp_path), "--write")
    assert out.returncode == 0, out.stderr
    gen = json.loads((tmp_path / "generator.json").read_text())
    names = {f.name for f in fields(GeneratorParams)}
    assert set(gen["generator"]) <= names  # generator coefficients only: nothing else can be set
    base = GeneratorParams.load_defaults()
    after = base.calibrate_from_ws_stats(gen)
    assert after.fill_notional_coef == gen["generator"]["fill_notional_coef"] != base.fill_notional_coef
    assert after.fill_notional_elasticity == base.fill_notional_elasticity  # not fitted per recording: kept


def test_replay_uses_a_calibration_file_and_keeps_it_with_the_run(tmp_path: Path) -> None:
    from replay.backtest import BacktestEngine
    from settings import Settings

    gen = {"format": 1, "generator": {"fill_notional_coef": 50.0, "touch_fill_multiple": 3.0}}
    cal = tmp_path / "gen.json"
    cal.write_text(json.dumps(gen))
    settings = Settings(backtest={"report_path": str(tmp_path / "runs"), "generate_html_report": False})
    plain = BacktestEngine().configure_from_settings(settings).run_full_test(["BTCUSDT"], days=0.01, seed=3)
    calib = (
        BacktestEngine(calibration=cal).configure_from_settings(settings).run_full_test(["BTCUSDT"], days=0.01, seed=3)
    )
    assert json.loads((calib.run_dir / "calibration.json").read_text()) == gen
    assert json.loads((calib.run_dir / "manifest.json").read_text())["calibration"]["file"] == str(cal)
    assert not (plain.run_dir / "calibration.json").exists()
    # smaller fills at the same candle volume: more trades reach the bot
    assert calib.results["BTCUSDT"].events > plain.results["BTCUSDT"].events
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"generator": {"max_leverage": 5}}))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "replay",
            "--symbol",
            "BTCUSDT",
            "--days",
            "0.02",
            "--calibration",
            str(bad),
            "--report-path",
            str(tmp_path / "r2"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown key 'max_leverage'" in out.stderr
    assert "bad.json" in out.stderr
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
