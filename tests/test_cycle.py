"""The in-bot cycle's parts (bot/cycle): schedule, parameter hot swap, overlay refusal, webhook, a crashed run,
rotation, and ``python -m replay fetch``. The whole cycle end to end is tests/test_cycle_e2e.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from bybit_http_server import BybitHTTPServer, Request, bundled_klines
from loguru import logger
from ws_capture_server import DEPTH, CaptureServer

from bot.adapters.simulated import SimExchange
from bot.app import build_bot
from bot.clock import FixedClock
from bot.cycle import hotswap
from bot.cycle.notify import Notifier
from bot.cycle.overlay import OverlayWatcher
from bot.cycle.rotation import prune_kline_cache, rotate, run_id_at
from bot.cycle.runner import CycleConfig
from bot.cycle.schedule import next_due
from bot.cycle.service import CycleService
from bot.cycle.snapshot import to_toml
from bot.execution.positions import PositionRecord, PositionState
from bot.instruments import InstrumentRegistry
from bot.runner import RunOptions, StartupError, assemble
from replay.data.bundled import read_kline_csv
from replay.optimize.space import DEFAULT_PARAMS
from settings import Settings, apply_optimizer_params, load_settings, search_space

DAY = 86_400.0
T0 = 1_796_601_600.0  # 2026-12-07T00:00Z


@pytest.fixture
def logs() -> list[str]:
    out: list[str] = []
    sink = logger.add(lambda m: out.append(str(m)), level="DEBUG", format="{level} {message}")
    yield out
    logger.remove(sink)


def make_bot(settings: Settings | None = None):
    s = settings or Settings()
    clock = FixedClock(T0)
    inst = InstrumentRegistry.bundled()
    return build_bot(s, clock, SimExchange(s, clock, inst, seed=0), instruments=inst, symbols=("BTCUSDT",))


# ------------------------------------------------------------------------------------------------------ schedule
@pytest.mark.parametrize(
    ("now", "start", "hrs", "due"),
    [
        (T0 + 3600, "02:00", 24, T0 + 2 * 3600),  # 01:00 → today's 02:00
        (T0 + 2 * 3600, "02:00", 24, T0 + 2 * 3600),  # exactly due
        (T0 + 3 * 3600, "02:00", 24, T0 + DAY + 2 * 3600),  # 03:00 → tomorrow's 02:00
        (T0 + 3 * 3600, "02:00", 6, T0 + 8 * 3600),  # 02:00, 08:00, 14:00, 20:00
        (T0 + 3600, "02:00", 6, T0 + 2 * 3600),
        (T0 + 23.5 * 3600, "02:00", 6, T0 + DAY + 2 * 3600),
        (T0 + 10.0, "00:00", 0.002, T0 + 14.4),  # the test's 7.2 s grid
    ],
)
def test_next_due_is_the_first_grid_time_at_or_after_now(now: float, start: str, hrs: float, due: float) -> None:
    assert next_due(now, start, hrs) == pytest.approx(due, abs=1e-6)


# ------------------------------------------------------------------------------------------------------ hot swap
def _other_value(spec, current):
    if spec.choices is not None:
        for c in spec.choices:
            if c != current and (not isinstance(c, tuple) or list(c) != current):
                return list(c) if isinstance(c, tuple) else c
        return None
    return spec.high if current != spec.high else spec.low


def test_every_optimizable_field_swaps_or_is_refused_by_name() -> None:
    """133 of 138 fields swap in place; the 5 that shape the storage's per-symbol state are refused (restart)."""
    s = Settings()
    bot = make_bot(s)
    flat = {}
    for sec, fields in s.snapshot_dict().items():
        if isinstance(fields, dict):
            flat |= {f"{sec}.{k}": v for k, v in fields.items()}
    swapped, refused = [], []
    for path, spec in search_space().items():
        v = _other_value(spec, flat.get(path))
        if v is None:
            continue
        new = apply_optimizer_params(s, {path: v})
        try:
            changes = hotswap.plan(bot, new)
        except hotswap.NotSwappable as e:
            assert "storage." in str(e) and "next start" in str(e)
            refused.append(path)
            continue
        assert changes, path
        swapped.append(path)
    assert set(DEFAULT_PARAMS) <= set(swapped)  # everything the cycle tunes by default swaps live
    assert len(swapped) > 120 and all(p.startswith(("imbalance.", "data_retention.")) for p in refused), refused


def test_a_swap_changes_parameters_and_keeps_state() -> None:
    s = Settings()
    bot = make_bot(s)
    o, ex = bot.orchestrator, bot.executor
    o.last_open_attempt["BTCUSDT"] = T0 - 5
    rec = PositionRecord(
        symbol="BTCUSDT",
        position_id="p1",
        side=1,
        state=PositionState.OPEN,
        target_qty=Decimal(1),
        created_at=T0,
        sl_pct=0.002,
        tp_pct=0.01,
        max_lifetime_sec=3600.0,
    )
    ex.book.add(rec)
    book = ex.book
    params = {
        "trading.entry_signal_min_strength": 5,
        "risk.min_sl_pct": 0.004,
        "signals.cooldown_seconds": 60.0,
        "risk.base_position_lifetime_minutes": 10,
    }
    new = apply_optimizer_params(s, params)
    n = hotswap.apply_plan(bot, hotswap.plan(bot, new), new)
    assert n > 0 and bot.settings is new
    assert o._entry_strength == 5 and bot.risk._r.min_sl_pct == 0.004 and ex.settings is new
    fresh = make_bot(new)
    for name in ("signals", "risk", "orchestrator"):  # the live parameters are what a fresh bot would have
        live, ref = hotswap._state(getattr(bot, name)), hotswap._state(getattr(fresh, name))
        for attr, val in ref.items():
            if hotswap.plain(val) and not isinstance(val, Settings):
                assert hotswap.same(live[attr], val), f"{name}.{attr}"
    # state survives; the open position keeps the exits it was opened with
    assert o.last_open_attempt == {"BTCUSDT": T0 - 5} and ex.book is book and ex.book.live("BTCUSDT") is rec
    assert (rec.sl_pct, rec.tp_pct, rec.max_lifetime_sec) == (0.002, 0.01, 3600.0)


def test_an_entry_in_flight_is_no_safe_point() -> None:
    bot = make_bot()
    assert hotswap.entry_in_flight(bot) == []
    bot.executor.book.add(
        PositionRecord(
            symbol="BTCUSDT",
            position_id="p2",
            side=1,
            state=PositionState.OPENING,
            target_qty=Decimal(1),
            created_at=T0,
            sl_pct=0.002,
            tp_pct=0.01,
            max_lifetime_sec=60.0,
        )
    )
    assert hotswap.entry_in_flight(bot) == ["BTCUSDT"]


# ------------------------------------------------------------------------------------------------------ overlay
def test_an_overlay_with_a_fixed_field_is_refused(tmp_path: Path, logs: list[str]) -> None:
    ov = tmp_path / "overlay.toml"
    ov.write_text("[risk]\nmin_sl_pct = 0.003\n")
    w = OverlayWatcher(ov, Settings())
    got = w.poll()
    assert got is not None and got.risk.min_sl_pct == 0.003
    assert w.poll() is None  # unchanged content: nothing new
    ov.write_text("[risk]\nmin_sl_pct = 0.003\n[trading]\nleverage = 50\n")
    assert w.poll() is None
    assert any("refused" in m and "trading.leverage" in m for m in logs)


async def test_the_overlay_applies_at_start_without_the_cycle(tmp_path: Path) -> None:
    ov = tmp_path / "overlay.toml"
    ov.write_text("[risk]\nmin_sl_pct = 0.003\n")
    run = await assemble(RunOptions(mode="paper", symbols=("BTCUSDT",), overlay=ov, log_dir=tmp_path), Settings())
    assert run.bot.settings.risk.min_sl_pct == 0.003 and run.bot.risk._r.min_sl_pct == 0.003
    assert run.cycle is None and run.bot.orchestrator.before_tick == []  # enable_backtest is off: no watcher


async def test_the_bot_refuses_to_start_on_a_fixed_overlay(tmp_path: Path) -> None:
    ov = tmp_path / "overlay.toml"
    ov.write_text("[risk]\nmax_open_positions = 9\n")
    with pytest.raises(StartupError, match="max_open_positions"):
        await assemble(RunOptions(mode="paper", symbols=("BTCUSDT",), overlay=ov, log_dir=tmp_path), Settings())


# ------------------------------------------------------------------------------------------------------ webhook
async def test_webhook_posts_json_and_a_dead_one_is_only_logged(logs: list[str]) -> None:
    got: list[dict] = []

    def hook(req: Request) -> dict:
        got.append(req.json())
        return {"ok": True}

    with BybitHTTPServer() as srv:
        srv.route("POST", "/hooks/S3CRET", hook)
        n = Notifier(f"{srv.base_url}/hooks/S3CRET")
        assert await n.notify({"event": "cycle_completed", "summary": "run x completed", "improvement": 0.2})
        dead_url = f"{srv.base_url}/nope/S3CRET"  # 404 from the server
    assert got == [{"source": "naporrr", "event": "cycle_completed", "summary": "run x completed", "improvement": 0.2}]
    dead = Notifier(dead_url, timeout_sec=2)
    assert not await dead.notify({"event": "cycle_failed"})  # the server is gone: refused, logged, not raised
    assert dead.failed == 1 and any("cycle webhook" in m and "failed" in m for m in logs)
    assert not any("S3CRET" in m for m in logs)


# ------------------------------------------------------------------------------------------------------ failures
async def test_a_crashed_run_is_logged_with_exit_code_and_stderr_tail(tmp_path: Path, logs: list[str]) -> None:
    """The kline server knows no BTCUSDT: ``replay fetch`` exits 2; the bot logs it, notifies, and carries on."""
    got: list[dict] = []
    with BybitHTTPServer() as srv:
        srv.serve_klines({})
        srv.route("POST", "/hook", lambda req: got.append(req.json()) or {"ok": True})
        s = Settings(
            backtest={
                "report_path": str(tmp_path / "bt"),
                "kline_rest_url": srv.base_url,
                "webhook_url": f"{srv.base_url}/hook",
                "notify_on_completion": True,
                "data_lookback_days": 0.05,
            }
        )
        bot = make_bot(s)
        svc = CycleService(bot, s, CycleConfig(symbols=("BTCUSDT",), overlay=tmp_path / "ov.toml"))
        res = await svc._cycle("20261207T000000Z")
        asked = srv.count("/v5/market/kline")
    assert asked >= 1  # the bot's kline_rest_url reached the child through the settings snapshot
    assert res.status == "failed" and res.error == "fetch exited with code 2"
    assert "error:" in res.steps[0].stderr_tail and "Not supported symbols" in res.steps[0].stderr_tail
    assert any(m.startswith("ERROR backtest cycle 20261207T000000Z failed") and "stderr tail" in m for m in logs)
    assert got and got[0]["event"] == "cycle_failed" and got[0]["steps"][0]["returncode"] == 2
    assert (tmp_path / "bt" / "cycle" / "20261207T000000Z" / "cycle.json").exists()


def test_the_settings_snapshot_round_trips(tmp_path: Path) -> None:
    s = Settings(
        trading={"trade_pairs": ["ETHUSDT", "BTCUSDT"], "decision_interval_sec": 0.5},
        risk={"min_sl_pct": 0.0031},
        backtest={"webhook_url": "http://127.0.0.1:1/h", "target_metrics": {"min_trades": 3}},
    )
    path = tmp_path / "s.toml"
    text = to_toml(s)
    assert "127.0.0.1:1" not in text  # the webhook URL (maybe a token) stays out of the children's files
    path.write_text(text, encoding="utf-8")
    expected = s.snapshot_dict()
    expected["backtest"]["webhook_url"] = None
    assert load_settings(path).snapshot_dict() == expected


# ------------------------------------------------------------------------------------------------------ rotation
def test_rotation_keeps_the_newest_runs_and_their_studies(tmp_path: Path) -> None:
    ids = [run_id_at(T0 - k * 3600) for k in range(5)]  # newest first
    for i in ids:
        (tmp_path / "cycle" / i).mkdir(parents=True)
        (tmp_path / "optimization" / f"cycle-{i}").mkdir(parents=True)
    (tmp_path / "optimization" / "my-study").mkdir()
    (tmp_path / "cycle" / "kline_cache").mkdir()
    removed = rotate(tmp_path, keep_last_n=3, max_age_days=30, now=T0)
    assert removed == ids[3:]
    assert sorted(p.name for p in (tmp_path / "cycle").iterdir()) == sorted([*ids[:3], "kline_cache"])
    assert (tmp_path / "optimization" / "my-study").exists()
    assert not (tmp_path / "optimization" / f"cycle-{ids[4]}").exists()
    removed = rotate(tmp_path, keep_last_n=3, max_age_days=0.5 / 24, now=T0, protect=ids[2])
    assert removed == [ids[1]]  # older than 30 min, except the protected (running) one


def test_kline_cache_keeps_the_days_a_cycle_can_still_read(tmp_path: Path) -> None:
    day = 86_400
    now = (T0 // day) * day + 6 * 3600  # 06:00 UTC
    sym = tmp_path / "cycle" / "kline_cache" / "linear-1m" / "BTCUSDT"
    sym.mkdir(parents=True)
    files = [sym / time.strftime("%Y-%m-%d.parquet", time.gmtime(now - k * day)) for k in range(6)]  # today first
    for f in files:
        f.write_bytes(b"x")
    other = [sym / "notes.parquet", sym / ".2020-01-01.abc.tmp"]
    for f in other:
        f.write_bytes(b"x")
    removed = prune_kline_cache(tmp_path, keep_days=3, now=now)
    # day k ended (k-1)·day + 18 h before now: the days k = 4, 5 ended more than 3 days ago; k = 3 is still needed
    assert removed == sorted(files[4:])
    assert all(f.exists() for f in files[:4] + other)
    assert prune_kline_cache(tmp_path, keep_days=3, now=now) == []
    assert prune_kline_cache(tmp_path / "nowhere", keep_days=3, now=now) == []


# ------------------------------------------------------------------------------------------------------ fetch
def test_replay_fetch_exports_recent_candles_and_caches_them(tmp_path: Path) -> None:
    d = dict(bundled_klines(["ETHUSDT"])["ETHUSDT"])
    now_min = int(time.time() * 1000) // 60_000 * 60_000
    d["open_time_ms"] = d["open_time_ms"] + (now_min + 3_600_000 - int(d["open_time_ms"][-1]))
    cmd = [
        sys.executable,
        "-m",
        "replay",
        "fetch",
        "--symbol",
        "ETHUSDT",
        "--days",
        "0.05",
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    with BybitHTTPServer() as srv:
        srv.serve_klines({"ETHUSDT": d})
        r = subprocess.run([*cmd, "--rest-url", srv.base_url], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        first = srv.count()
        (path,) = [Path(p) for p in r.stdout.split()]
        cols = read_kline_csv(path)
        assert len(cols["open_time_ms"]) == 72 and np.all(np.diff(cols["open_time_ms"]) == 60_000)
        i = int(np.searchsorted(d["open_time_ms"], cols["open_time_ms"][0]))
        for c in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(cols[c], d[c][i : i + 72])
        assert first >= 1
    assert list((tmp_path / "cache").rglob("ETHUSDT*"))  # the download went through the kline cache
    bad = subprocess.run([*cmd[:4], "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "give --symbol or --symbols" in bad.stderr


# ------------------------------------------------------------------------------------------------------ safe point
def test_the_swap_waits_for_an_entry_in_flight_then_happens_before_a_tick(tmp_path: Path, logs: list[str]) -> None:
    s = Settings(backtest={"report_path": str(tmp_path / "bt")})
    bot = make_bot(s)
    ov = tmp_path / "overlay.toml"
    svc = CycleService(bot, s, CycleConfig(symbols=("BTCUSDT",), overlay=ov))
    assert bot.orchestrator.before_tick == [svc._at_safe_point]
    ov.write_text("[trading]\nentry_signal_min_strength = 5\n[risk]\nmin_sl_pct = 0.004\n")
    new = svc.watcher.poll()
    assert new is not None
    svc._plan(new)
    opening = PositionRecord(
        symbol="BTCUSDT",
        position_id="p3",
        side=1,
        state=PositionState.OPENING,
        target_qty=Decimal(1),
        created_at=T0,
        sl_pct=0.002,
        tp_pct=0.01,
        max_lifetime_sec=60.0,
    )
    bot.executor.book.add(opening)
    svc._at_safe_point(T0)
    assert not svc.swaps and bot.settings is s and any("entry in flight for BTCUSDT" in m for m in logs)
    opening.state = PositionState.OPEN  # the entry filled: its position keeps its exits, the swap may go
    svc._at_safe_point(T0 + 2)
    assert len(svc.swaps) == 1 and svc.swaps[0].ts == T0 + 2
    assert bot.settings.trading.entry_signal_min_strength == 5 and bot.orchestrator._entry_strength == 5
    assert opening.sl_pct == 0.002
    # a broken overlay is refused and the swapped parameters stay
    ov.write_text("[trading]\nleverage = 3\n")
    assert svc.watcher.poll() is None and bot.settings.risk.min_sl_pct == 0.004


# ------------------------------------------------------------------------------------------------------ calibration
L2_BTC = Path(__file__).resolve().parent.parent / "data" / "l2" / "binance-usdm-btcusdt-2024-08-08-345s.gz"


def _recent_klines() -> dict:
    """Bundled BTCUSDT candles re-stamped (whole minutes) to end two hours past now: "the last N days" exists."""
    d = dict(bundled_klines(["BTCUSDT"])["BTCUSDT"])
    now_min = int(time.time() * 1000) // 60_000 * 60_000
    d["open_time_ms"] = d["open_time_ms"] + (now_min + 7_200_000 - int(d["open_time_ms"][-1]))
    return {"BTCUSDT": d}


def _calibrating_settings(tmp: Path, kline_url: str, hook_url: str, root: Path, **cal: object) -> Settings:
    return Settings(
        websocket={"subscription_depth": DEPTH, "reconnect_delay_seconds": 0.05, "reconnect_max_delay_sec": 0.2},
        backtest={
            "report_path": str(tmp / "bt"),
            "kline_rest_url": kline_url,
            "webhook_url": hook_url,
            "data_lookback_days": 0.05,
            "optimization_iterations": 2,
            "cycle_jobs": 1,
            "auto_apply_params": False,
            "target_metrics": {"min_trades": 0},
        },
        calibration={
            "calibration_ws_enabled": True,
            "calibration_ws_duration_min": 0.05,  # 3 s: gt=0 is the only bound
            "calibration_ws_symbols": ["BTCUSDT"],
            "calibration_path": str(root),
            **cal,
        },
    )


async def _calibrated_cycle(tmp: Path, root: Path, **cal: object) -> tuple[object, list[dict], Path]:
    """One cycle run with a calibration session recording from the local capture server (the whole 44 s capture,
    sent at once), candles from the local kline server, the webhook on a local HTTP server."""
    hooks: list[dict] = []
    with BybitHTTPServer() as srv:
        srv.serve_klines(_recent_klines())
        srv.route("POST", "/hook", lambda req: hooks.append(req.json()) or {"ok": True})
        s = _calibrating_settings(tmp, srv.base_url, f"{srv.base_url}/hook", root, **cal)
        async with CaptureServer() as ws:
            cfg = CycleConfig(symbols=("BTCUSDT",), overlay=tmp / "ov.toml", ws_url=ws.url)
            svc = CycleService(make_bot(s), s, cfg)
            res = await svc._cycle("20261207T000000Z")
    return res, hooks, tmp / "bt" / "cycle" / "20261207T000000Z"


async def test_a_calibration_session_feeds_the_cycles_optimizer(tmp_path: Path, logs: list[str]) -> None:
    """record → stats → fit → fetch → optimize: the session joins the pooled calibration, fit writes the generator
    coefficients (auto_correct_param), and every optimize replay uses them; the study records the file."""
    root = tmp_path / "calib"
    # an earlier real recording already in the pool (the 3 s session alone has no complete minute to fit on)
    ing = subprocess.run([sys.executable, "-m", "calibration", "ingest", "--root", str(root), str(L2_BTC)],
                         capture_output=True, text=True, timeout=120)
    assert ing.returncode == 0, ing.stderr
    res, hooks, d = await _calibrated_cycle(tmp_path, root, auto_correct_param=True)
    assert res.status == "completed", (res.error, [(s.name, s.returncode, s.stderr_tail) for s in res.steps])
    assert [s.name for s in res.steps] == ["record", "stats", "fit", "fetch", "optimize"]
    record = res.steps[0].argv
    assert record[record.index("--minutes") + 1] == "0.05" and "--url" in record
    assert record[record.index("--root") + 1] == str(root)
    gen = d / "generator.json"
    assert res.calibration is not None and res.calibration.status == "applied" and res.calibration.file == str(gen)
    opt = res.steps[4].argv
    assert opt[opt.index("--calibration") + 1] == str(gen)
    # the session was recorded and pooled with the ingested recording
    (session,) = (root / "sessions").iterdir()
    assert (session / "frames.ndjson.gz").stat().st_size > 10_000 and (session / "aggregate.json").exists()
    pooled = json.loads((d / "calibration.json").read_text())
    sources = {s["source"] for s in pooled["symbols"]["BTCUSDT"]["sources"]}
    assert any(src.startswith(session.name) for src in sources) and L2_BTC.name in sources
    coeffs = json.loads(gen.read_text())
    assert coeffs["generator"] == pooled["generator"] and coeffs["_calibration_sha256"]
    # the study knows which generator it searched on, and kept a copy
    study = tmp_path / "bt" / "optimization" / res.study
    result = json.loads((study / "result.json").read_text())
    assert result["calibration"]["file"] == str(gen)
    assert (study / "calibration.json").read_bytes() == gen.read_bytes()
    target = next(iter(result["targets"].values()))
    assert f"generator calibration: {gen}" in Path(target["preset"]).read_text()  # min_trades 0: a best exists
    assert json.loads((d / "cycle.json").read_text())["calibration"]["status"] == "applied"
    assert any("the backtest uses the calibrated generator" in m for m in logs)
    assert not [h for h in hooks if h["event"] == "calibration_failed"]


async def test_a_failed_calibration_is_notified_and_the_backtest_runs_uncalibrated(tmp_path: Path,
                                                                                   logs: list[str]) -> None:
    """An empty pool plus a session with no complete minute: stats finds nothing to fit, fit exits 2. The run logs
    and notifies it, then fetches and optimizes on the uncalibrated generator."""
    res, hooks, d = await _calibrated_cycle(tmp_path, tmp_path / "calib", auto_correct_param=True)
    assert res.status == "completed", (res.error, [(s.name, s.returncode, s.stderr_tail) for s in res.steps])
    assert [(s.name, s.returncode) for s in res.steps] == [("record", 0), ("stats", 0), ("fit", 2), ("fetch", 0),
                                                           ("optimize", 0)]
    assert res.calibration is not None and res.calibration.status == "failed" and res.calibration.step == "fit"
    assert "error:" in res.steps[2].stderr_tail
    assert "--calibration" not in res.steps[4].argv and not (d / "generator.json").exists()
    result = json.loads((tmp_path / "bt" / "optimization" / res.study / "result.json").read_text())
    assert result["calibration"] is None
    assert any(m.startswith("ERROR cycle 20261207T000000Z: calibration failed (calibration fit exited with code 2)")
               and "runs on the uncalibrated generator" in m for m in logs)
    (failed,) = [h for h in hooks if h["event"] == "calibration_failed"]
    assert failed["calibration"]["step"] == "fit" and "uncalibrated generator" in failed["summary"]


def test_calibration_steps_follow_the_settings(tmp_path: Path) -> None:
    """Off by default; without auto_correct_param fit writes nothing and optimize gets no --calibration."""
    from bot.cycle import calibrate
    from bot.cycle.runner import CycleRunner

    off = CycleRunner(Settings(backtest={"report_path": str(tmp_path)}), CycleConfig(("BTCUSDT",), tmp_path / "o"))
    assert [n for n, *_ in off.commands("r")] == ["fetch", "optimize"]
    assert "--calibration" not in off.commands("r")[1][1]
    assert off.commands("r", "/x/generator.json")[1][1][-4:-2] == ["--calibration", "/x/generator.json"]
    s = Settings(calibration={"calibration_ws_enabled": True, "calibration_ws_symbols": ["ETHUSDT", "BTCUSDT"]})
    steps = calibrate.commands(s, tmp_path, "py", tmp_path / "s.toml")
    assert [n for n, *_ in steps] == list(calibrate.STEPS)
    assert steps[0][1][:6] == ["py", "-m", "calibration", "record", "--symbols", "ETHUSDT,BTCUSDT"]
    assert "--url" not in steps[0][1] and "--write" not in steps[2][1]
    assert calibrate.outcome(s, tmp_path).status == "not_applied"
    on = Settings(calibration={"auto_correct_param": True})
    assert calibrate.commands(on, tmp_path, "py", tmp_path / "s.toml")[2][1][-2:] == ["--write",
                                                                                      str(tmp_path / "generator.json")]
    assert calibrate.outcome(on, tmp_path).status == "failed"  # fit exited 0 but the file is missing
