"""The recorded feed (``python -m replay --recorded``) against the live collector, on the real 44 s Bybit capture.

Parity (issue 12, part 5): the live collector (:class:`BybitPublicFeed`) reads the capture from a real local
WebSocket server (:mod:`ws_capture_server`, exchange times unshifted); what it puts on its queue is collected. The
recorded feed reads the same capture file. Both streams of ``(release time, batch)`` must be identical to the bit,
and the bot driven in virtual time from each (same settings, same seed, same simulated exchange) must write
byte-identical signals.csv, trades.csv and bot.log and produce bit-identical Signal objects. The release time of a
collected batch is its frame's recorded receive time, taken from the capture with no bot code (``load_frames``).

Cadence for the comparison: the default ``trade_pairs`` (10 symbols, batches of 3) revisit a symbol every 8 s, so in
44 s each symbol is evaluated ~5 times and the volume analyzer's warm-up (``default_min_trades`` trades in the short
window) leaves most rows ``insufficient_data``. The parity runs trade only the capture's 4 symbols in one batch
(every symbol every 2 s): 80 evaluations, most of them past the warm-up with non-zero composite, EMA and strength.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from ws_capture_server import CaptureServer, RefBook, load_frames

from bot.adapters.bybit.public_ws import BybitPublicFeed
from bot.adapters.simulated import SimExchange
from bot.app import Bot
from bot.clock import LoopClock, WallClock
from bot.events import EventBatch, TradeBatch
from bot.instruments import InstrumentRegistry
from bot.ports import Execution, OrderRequest
from replay.cli import main
from replay.engine import PortfolioJob
from replay.feed import ScheduledFeed
from replay.recorded import recorded_settings, replay_batches, run_recorded
from replay.recorded_source import RecordingError, recorded_batches, release_time, scan_recording
from replay.virtual_loop import run_virtual, sleep_until
from settings import Settings
from settings.search import with_overrides

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "ws" / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
SEED = 7


def _canonical(stream: list[tuple[float, EventBatch]]) -> list[tuple[Any, ...]]:
    """Every release time and event, bit-exact (floats as their bytes, numpy columns as raw bytes)."""
    out: list[tuple[Any, ...]] = []
    for ts, batch in stream:
        for ev in batch:
            if isinstance(ev, TradeBatch):
                key: tuple[Any, ...] = (
                    "b",
                    ev.symbol,
                    ev.ts.tobytes(),
                    ev.price.tobytes(),
                    ev.size.tobytes(),
                    ev.is_buy.tobytes(),
                    tuple(ev.trade_id.tolist()),
                )
            else:
                key = (type(ev).__name__, msgspec.json.encode(ev))
            out.append((np.float64(ts).tobytes(), *key))
        out.append(("end of batch",))
    return out


async def _collect_live(settings: Settings) -> list[EventBatch]:
    """Everything the live collector puts on its queue while the local server streams the whole capture."""
    frames = load_frames()
    queue: asyncio.Queue[EventBatch] = asyncio.Queue()
    got: list[EventBatch] = []
    async with CaptureServer(frames=frames, restamp=False) as srv:
        feed = BybitPublicFeed(settings, WallClock(), SYMBOLS, url=srv.url, rng=random.Random(1))
        task = asyncio.create_task(feed.run(queue))
        try:
            async with asyncio.timeout(60):
                while len(got) < len(frames):
                    got.append(await queue.get())
                await srv.done.wait()
            await asyncio.sleep(0.2)  # nothing more may arrive
            assert queue.empty()
            assert feed.stats.connects == 1 and feed.stats.counters["malformed"] == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return got


@pytest.fixture(scope="module")
def settings() -> Settings:
    base = with_overrides(Settings(), {"trading.trade_pairs": list(SYMBOLS), "trading.symbol_batch_size": 4})
    return recorded_settings(base, scan_recording(CAPTURE))


@pytest.fixture(scope="module")
def live_stream(settings: Settings) -> list[tuple[float, EventBatch]]:
    batches = asyncio.run(_collect_live(settings))
    frames = load_frames()
    assert len(batches) == len(frames) == 1700  # one batch per market frame: nothing dropped on a clean stream
    out, prev = [], -math.inf
    for f, batch in zip(frames, batches, strict=True):
        assert batch[0].symbol == f.symbol
        prev = release_time(f.recv_ts, batch, prev)
        out.append((prev, batch))
    return out


class _Tee:
    """The bot's signal sink, also keeping every Signal at full precision."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.encoded = inner, []

    def append(self, sig: Any) -> None:
        self.encoded.append(msgspec.json.encode(sig))
        self.inner.append(sig)


def _outputs(out_dir: Path, tee: _Tee) -> dict[str, Any]:
    (log_dir,) = out_dir.glob("bot_*")
    return {
        "signals.csv": (log_dir / "signals.csv").read_bytes(),
        "trades.csv": (log_dir / "trades.csv").read_bytes(),
        "bot.log": (log_dir / "bot.log").read_bytes(),
        "signals": tee.encoded,
    }


def _inspector(tees: list[_Tee]) -> Any:
    def inspect(bot: Bot) -> None:
        tee = _Tee(bot.orchestrator.signal_log)
        bot.orchestrator.signal_log = tee
        tees.append(tee)

    return inspect


def test_recorded_feed_equals_the_live_collectors_queue(
    settings: Settings, live_stream: list[tuple[float, EventBatch]]
) -> None:
    recorded = list(recorded_batches(CAPTURE, SYMBOLS, settings.websocket.subscription_depth))
    assert len(recorded) == 1700
    assert [t for t, _ in recorded] == [f.recv_ts for f in load_frames()]  # released at receive time, no guard moved
    assert _canonical(recorded) == _canonical(live_stream)
    assert sum(len(e) for _, b in recorded for e in b if isinstance(e, TradeBatch)) == 327


def test_parity_same_frames_same_signal_log_bit_for_bit(
    settings: Settings, tmp_path: Path, live_stream: list[tuple[float, EventBatch]]
) -> None:
    """The Done-when line: live collector → bot and recorded feed → bot write identical signal logs."""
    live_tees: list[_Tee] = []
    live = replay_batches(
        settings,
        SYMBOLS,
        live_stream,
        start_ts=live_stream[0][0],
        end_ts=live_stream[-1][0],
        out_dir=tmp_path / "live",
        seed=SEED,
        data_hash="live",
        inspect=_inspector(live_tees),
    )
    rec_tees: list[_Tee] = []
    job = PortfolioJob(
        symbols=SYMBOLS, settings_json=settings.model_dump_json(), out_dir=str(tmp_path / "rec"), seed=SEED
    )
    rec = run_recorded(job, CAPTURE, inspect=_inspector(rec_tees))
    assert (rec.start_ts, rec.end_ts) == (live.start_ts, live.end_ts)
    a, b = _outputs(tmp_path / "live", live_tees[0]), _outputs(tmp_path / "rec", rec_tees[0])
    for name in ("signals.csv", "trades.csv", "bot.log"):
        assert a[name] == b[name], name
    assert a["signals"] == b["signals"]
    assert rec.events == live.events == sum(len(batch) for _, batch in live_stream)
    for sym in SYMBOLS:  # the report's price chart: 1m OHLCV of the recorded prints, rebuilt here from the raw frames
        prints = [
            (int(r["T"]), float(r["p"]), float(r["v"]))
            for f in load_frames()
            if f.kind == "trade" and f.symbol == sym
            for r in f.msg["data"]
        ]
        want = {}
        for t, p, v in prints:
            o, h, lo, _, vol = want.get(t // 60_000 * 60_000, (p, p, p, p, 0.0))
            want[t // 60_000 * 60_000] = (o, max(h, p), min(lo, p), p, vol + v)
        c = rec.symbols[sym].extra["candles"]
        got = {
            int(k): tuple(map(float, row))
            for k, *row in zip(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume, strict=True)
        }
        assert got.keys() == want.keys() and len(got) >= 1
        for k in got:
            assert got[k][:4] == want[k][:4] and got[k][4] == pytest.approx(want[k][4], rel=1e-12)
    # the comparison is not vacuous: the bot evaluated every symbol every 2 s and most rows are past warm-up
    rows = b["signals.csv"].decode().splitlines()[1:]
    assert len(rows) == len(b["signals"]) >= 80
    assert {r.split(",")[1] for r in rows} == set(SYMBOLS)
    evaluated = [r for r in rows if not r.endswith("insufficient_data,NO")]
    assert len(evaluated) >= 40
    assert any(int(r.split(",")[4]) >= 2 for r in evaluated)  # strength from real factors
    assert len({r.split(",")[7] for r in evaluated}) >= 20  # the composite EMA moves


def test_parity_check_detects_one_missing_frame(
    settings: Settings, tmp_path: Path, live_stream: list[tuple[float, EventBatch]]
) -> None:
    """The signal log is sensitive to the stream: one trade frame less changes it (the parity check can fail)."""
    k = next(i for i, (_, b) in enumerate(live_stream) if isinstance(b[0], TradeBatch) and b[0].symbol == "ETHUSDT")
    cut = live_stream[:k] + live_stream[k + 1 :]
    tees: list[_Tee] = []
    replay_batches(
        settings,
        SYMBOLS,
        cut,
        start_ts=live_stream[0][0],
        end_ts=live_stream[-1][0],
        out_dir=tmp_path / "cut",
        seed=SEED,
        data_hash="cut",
        inspect=_inspector(tees),
    )
    full: list[_Tee] = []
    replay_batches(
        settings,
        SYMBOLS,
        live_stream,
        start_ts=live_stream[0][0],
        end_ts=live_stream[-1][0],
        out_dir=tmp_path / "full",
        seed=SEED,
        data_hash="full",
        inspect=_inspector(full),
    )
    assert tees[0].encoded != full[0].encoded


# --- the CLI writes a normal run ------------------------------------------------------------------------------------


def test_cli_recorded_writes_a_normal_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--recorded", str(CAPTURE), "--report-path", str(tmp_path), "--no-progress", "--seed", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (run,) = (tmp_path / "runs").iterdir()
    assert f"run folder: {run}" in out and "DOGEUSDT" in out
    names = {p.name for p in run.iterdir()}
    for s in SYMBOLS:
        assert {f"trades_{s}.csv", f"equity_{s}.csv", f"metrics_{s}.json"} <= names
    assert {"summary.json", "manifest.json", "report.html", "equity_portfolio.csv", "backtest.log"} <= names
    manifest = json.loads((run / "manifest.json").read_text())
    sha = hashlib.sha256(CAPTURE.read_bytes()).hexdigest()
    assert manifest["data_source"] == "recorded"
    assert manifest["recording"]["sha256"] == sha and manifest["recording"]["name"] == CAPTURE.name
    assert manifest["recording"]["market_frames"] == 1700 and manifest["recording"]["truncated_tail"] is None
    assert manifest["data_hash"] == dict.fromkeys(SYMBOLS, sha)
    assert manifest["symbols"] == list(SYMBOLS) and manifest["seed"] == 3
    assert manifest["settings"]["websocket"]["subscription_depth"] == 200
    assert manifest["window"]["BTCUSDT"] == ["2026-08-09T21:26:59Z", "2026-08-09T21:27:41Z"]
    summary = json.loads((run / "summary.json").read_text())
    assert sum(summary["symbols"][s]["events"] for s in SYMBOLS) == 1700  # one event per book frame or trade frame
    (log_dir,) = run.glob("bot_*")
    signals = (log_dir / "signals.csv").read_text().splitlines()
    assert len(signals) > 10 and signals[0].startswith("ts,symbol,action")
    assert "recording" in (run / "report.html").read_text()


def test_cli_symbols_subset_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = main(["--recorded", str(CAPTURE), "--symbols", "ETHUSDT", "--report-path", str(tmp_path), "--no-progress"])
    assert rc == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "manifest.json").read_text())["symbols"] == ["ETHUSDT"]
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["symbols"]) == ["ETHUSDT"] and summary["symbols"]["ETHUSDT"]["events"] > 300
    capsys.readouterr()
    assert main(["--recorded", str(CAPTURE), "--symbols", "XRPUSDT", "--report-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "XRPUSDT not in recording" in err and "BTCUSDT, ETHUSDT, SOLUSDT, DOGEUSDT" in err
    with pytest.raises(SystemExit) as exc:
        main(["--recorded", str(CAPTURE), "--days", "2"])
    assert exc.value.code == 2
    assert "cannot be combined with --days 2" in capsys.readouterr().err
    assert main(["--recorded", str(tmp_path / "missing.ndjson.gz")]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv("NAPORRR_BACKTEST__DATA_SOURCE", "recorded")
    assert main(["--symbol", "BTCUSDT", "--days", "1", "--report-path", str(tmp_path / "x")]) == 2
    assert "give it with --recorded FILE" in capsys.readouterr().err


# --- bad input --------------------------------------------------------------------------------------------------------


def _lines() -> list[bytes]:
    with gzip.open(CAPTURE, "rb") as fh:
        return fh.read().splitlines(keepends=True)


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    lines = _lines()
    bad = tmp_path / "bad.ndjson.gz"
    with gzip.open(bad, "wb") as fh:
        fh.writelines([*lines[:99], b'{"recv_ts": 1786310830.0, "msg": {"topic": "orderbook.200.BT\n', *lines[100:]])
    with pytest.raises(RecordingError, match=r"bad\.ndjson\.gz:100: not a recording line"):
        scan_recording(bad)
    refused = tmp_path / "refused.ndjson"  # well-formed JSON the live decoder refuses (a non-numeric price)
    k = next(i for i, ln in enumerate(lines) if b'"topic":"orderbook.200.BTCUSDT","type":"delta"' in ln)
    rec = json.loads(lines[k])
    rec["msg"]["data"]["b"] = [["x1", "1"]]
    refused.write_bytes(b"".join(lines[:k]) + json.dumps(rec).encode() + b"\n" + b"".join(lines[k + 1 :]))
    with pytest.raises(RecordingError, match=rf"refused\.ndjson:{k + 1}: .*float"):
        list(recorded_batches(refused, SYMBOLS, 200))


def test_truncated_tail_is_dropped_and_the_rest_plays(tmp_path: Path) -> None:
    """A recorder killed mid-write leaves a partial last line (plain) or a gzip stream without its end marker."""
    lines = _lines()
    full = list(recorded_batches(CAPTURE, SYMBOLS, 200))
    plain = tmp_path / "cut.ndjson"
    last = lines[-1]
    plain.write_bytes(b"".join(lines[:-1]) + last[: len(last) // 2])
    info = scan_recording(plain)
    assert info.truncated_tail is not None and f"cut.ndjson:{len(lines)}" in info.truncated_tail
    assert info.lines == len(lines) - 1
    got = list(recorded_batches(plain, SYMBOLS, 200))
    last_is_market = json.loads(last)["msg"].get("topic", "").split(".")[0] in ("orderbook", "publicTrade")
    assert _canonical(got) == _canonical(full[: len(full) - last_is_market])
    packed = gzip.compress(b"".join(lines))
    gz = tmp_path / "cut.ndjson.gz"
    gz.write_bytes(packed[: len(packed) - 40])  # the end marker and the last bytes of data are lost
    info = scan_recording(gz)
    assert info.truncated_tail is not None and "cut.ndjson.gz" in info.truncated_tail
    got = list(recorded_batches(gz, SYMBOLS, 200))
    assert 1600 < len(got) <= len(full) and _canonical(got) == _canonical(full[: len(got)])


# --- the simulated exchange fills against the recorded book ---------------------------------------------------------


def test_exchange_fills_against_the_recorded_book() -> None:
    """No synthetic market in this mode: a market order sized past the best ask walks the *recorded* book as it stood
    when the order reached the exchange (the book rebuilt from the captured frames with no bot code), and a resting
    limit far from any recorded print never fills."""
    info = scan_recording(CAPTURE)
    start, end = info.span(SYMBOLS)
    frames = [f for f in load_frames() if f.kind != "trade"]
    settings = Settings(backtest={"initial_balance_usdt": 10_000_000})

    def ref_book(ts: float) -> RefBook:
        book = RefBook()
        for f in frames:
            if f.recv_ts <= ts and f.symbol == "BTCUSDT":
                book.apply(f.msg)
        return book

    async def scenario() -> tuple[Decimal, list[Execution]]:
        loop = asyncio.get_running_loop()
        clock = LoopClock(loop.time(), loop)
        ex = SimExchange(settings, clock, InstrumentRegistry.bundled(), seed=SEED)
        feed = ScheduledFeed(clock, recorded_batches(CAPTURE, SYMBOLS, 200), sinks=[ex.on_market])
        task = asyncio.create_task(feed.run(asyncio.Queue()))
        await sleep_until(start + 20)
        best_ask_size = min(ref_book(clock.now()).asks.items())[1]
        qty = Decimal(str(best_ask_size)) + Decimal("0.005")
        await ex.place_order(OrderRequest("BTCUSDT", "Buy", "Market", qty, "walk"))
        await ex.place_order(OrderRequest("ETHUSDT", "Buy", "Limit", Decimal("0.10"), "far", price=Decimal("1000")))
        await sleep_until(end)
        execs = await ex.get_executions()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return qty, execs

    qty, execs = run_virtual(scenario(), start=start)
    assert {e.order_link_id for e in execs} == {"walk"}  # the far limit never filled
    assert len(execs) >= 2 and len({e.ts for e in execs}) == 1
    want, left = [], float(qty)
    for price, size in sorted(ref_book(execs[0].ts).asks.items()):
        take = min(left, size)
        want.append((price, round(take, 6)))
        left = round(left - take, 6)
        if left <= 0:
            break
    assert [(float(e.exec_price), float(e.exec_qty)) for e in execs] == want
    assert sum(e.exec_qty for e in execs) == qty
