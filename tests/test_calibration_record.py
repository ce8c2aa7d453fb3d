"""Calibration recording (issue 12 part 1): the live collector's frames written in the capture format against the
local capture-replaying server, crash safety (a truncated file and a real SIGKILL), and the disk-budget rotation."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from ws_capture_server import DEPTH, CaptureServer, capture_path, load_frames

from bot.adapters.bybit.public_decoder import iter_capture
from calibration.calibfile import reduce_unfinished_sessions
from calibration.capture_writer import CaptureWriter
from calibration.record import AGGREGATE, FRAMES, folder_bytes, record_session, rotate
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _settings(**cal: object) -> Settings:
    return Settings(
        websocket={
            "subscription_depth": DEPTH,
            "ping_interval_sec": 0.5,
            "pong_timeout_sec": 5.0,
            "reconnect_delay_seconds": 0.05,
            "reconnect_max_delay_sec": 0.2,
        },
        calibration=cal,
    )


def _market_msgs(path: Path) -> list[dict]:
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            msg = json.loads(line)["msg"]
            if msg.get("topic", "").startswith(("orderbook.", "publicTrade.")):
                out.append(msg)
    return out


def test_a_file_cut_anywhere_reads_every_frame_but_the_one_being_written(tmp_path: Path) -> None:
    """The writer flushes each frame: cut the bytes at every offset and the decoder still reads every frame whose
    bytes were complete, identical to the original, and never raises."""
    with gzip.open(capture_path(), "rb") as fh:
        lines = [json.loads(ln) for _, ln in zip(range(60), fh, strict=False)]
    path = tmp_path / "s.ndjson.gz"
    ends = []
    with CaptureWriter(path) as w:
        for rec in lines:
            w.write(rec["recv_ts"], json.dumps(rec["msg"], separators=(",", ":")))
            ends.append(path.stat().st_size)
        assert not w.write(9.0, "{not json") and w.skipped == 1  # never written: the file stays NDJSON
    data = path.read_bytes()
    full = [(ts, ev) for ts, ev in iter_capture(path)]
    assert len(full) == len(lines)
    assert [ts for ts, _ in full] == [rec["recv_ts"] for rec in lines]
    cut_path = tmp_path / "cut.ndjson.gz"
    for cut in range(0, len(data), 97):
        cut_path.write_bytes(data[:cut])
        got = [ts for ts, _ in iter_capture(cut_path)]
        flushed = sum(1 for e in ends if e <= cut)
        assert flushed <= len(got) <= flushed + 1, cut
        assert got == [rec["recv_ts"] for rec in lines[: len(got)]]
    with pytest.raises(EOFError):  # the stock reader refuses a cut file: the tolerance is this reader's
        gzip.decompress(data[: len(data) // 2])


async def test_record_against_the_local_capture_server(tmp_path: Path) -> None:
    """A session records exactly the market frames the server sent for the symbols, in the capture's format, and
    is reduced to an aggregate with trades and a book per symbol."""
    frames = load_frames()
    async with CaptureServer(frames=list(frames)) as srv:
        task = asyncio.create_task(record_session(_settings(), SYMBOLS, 10.0, url=srv.url, root=tmp_path))
        async with asyncio.timeout(30):
            await srv.done.wait()
            await asyncio.sleep(0.3)  # the last frames reach the client
        os.kill(os.getpid(), signal.SIGINT)  # the recorder's own handler ends the session as Ctrl-C would
        res = await asyncio.wait_for(task, 60)
    assert res.stopped_by == "SIGINT"
    rec = res.folder / FRAMES
    assert res.folder.parent == tmp_path / "sessions" and res.folder.name.endswith("-BTCUSDT_ETHUSDT")
    got = _market_msgs(rec)
    sent = [f for f in frames if f.symbol in SYMBOLS]
    assert len(got) == len(sent) > 100
    assert [m["topic"].rpartition(".")[2] for m in got] == [f.symbol for f in sent]
    assert all(m["topic"].startswith(f"orderbook.{DEPTH}.") or m["topic"].startswith("publicTrade.") for m in got)
    assert sum(1 for _ in iter_capture(rec)) == res.frames  # acks and pongs are recorded too, as received
    agg = json.loads((res.folder / AGGREGATE).read_text())
    assert [s["symbol"] for s in agg["symbols"]] == list(SYMBOLS)
    assert agg["file"] == f"{res.folder.name}/{FRAMES}" == agg["symbols"][0]["source"]
    for s in agg["symbols"]:
        assert s["trades"]["count"] == sum(
            len(f.msg["data"]) for f in sent if f.symbol == s["symbol"] and f.kind == "trade"
        )
        assert s["book"]["samples"] > 10


def test_rotation_deletes_the_oldest_raw_frames_and_keeps_aggregates(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    for k in range(4):
        d = sessions / f"2026010{k + 1}T000000Z-BTCUSDT"
        d.mkdir(parents=True)
        (d / FRAMES).write_bytes(os.urandom(100_000))
        (d / AGGREGATE).write_text("{}")
    deleted = rotate(tmp_path, 250_000, protect=sessions / "20260104T000000Z-BTCUSDT")
    assert [p.parent.name for p in deleted] == ["20260101T000000Z-BTCUSDT", "20260102T000000Z-BTCUSDT"]
    assert folder_bytes(tmp_path) <= 250_000
    assert len(list(sessions.glob(f"*/{AGGREGATE}"))) == 4
    deleted = rotate(tmp_path, 50_000, protect=sessions / "20260104T000000Z-BTCUSDT")
    assert [p.parent.name for p in deleted] == ["20260103T000000Z-BTCUSDT"]  # the protected session stays


@pytest.mark.parametrize("keep_raw", [False, True])
async def test_a_session_never_takes_the_folder_over_its_budget(tmp_path: Path, keep_raw: bool) -> None:
    """Old sessions fill most of a small budget: recording rotates their raw frames out (or, with keep_raw_frames,
    stops early), and the folder never ends above the budget."""
    budget = 600_000
    sessions = tmp_path / "sessions"
    for k in range(3):
        d = sessions / f"2026010{k + 1}T000000Z-BTCUSDT"
        d.mkdir(parents=True)
        (d / FRAMES).write_bytes(os.urandom(100_000))
        (d / AGGREGATE).write_text("{}")
    sizes: list[int] = []
    async with CaptureServer(frames=load_frames(), loop_capture=True) as srv:
        settings = _settings(disk_budget_gb=budget / 1e9, keep_raw_frames=keep_raw)
        task = asyncio.create_task(
            record_session(
                settings, (*SYMBOLS, "SOLUSDT", "DOGEUSDT"), 0.25, url=srv.url, root=tmp_path, aggregate=False
            )
        )
        while not task.done():
            sizes.append(folder_bytes(tmp_path))
            await asyncio.sleep(0.05)
        res = task.result()
    assert max([*sizes, folder_bytes(tmp_path)]) <= budget
    assert len(list(sessions.glob(f"*/{AGGREGATE}"))) == 3
    if keep_raw:
        assert res.stopped_by == "disk budget full" and not res.rotated
        assert len(list(sessions.glob(f"*/{FRAMES}"))) == 4
    else:
        assert res.rotated and res.rotated[0].parent.name == "20260101T000000Z-BTCUSDT"
        assert res.bytes > 100_000  # the new session outgrew one old session's raw frames


async def test_sigkill_mid_recording_leaves_a_readable_file(tmp_path: Path) -> None:
    """A real recorder process killed with SIGKILL: its file has no gzip trailer, yet every complete frame reads."""
    async with CaptureServer(frames=load_frames(), speed=4.0, loop_capture=True) as srv:
        env = dict(os.environ, NAPORRR_WEBSOCKET__SUBSCRIPTION_DEPTH=str(DEPTH))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "calibration",
                "record",
                "--symbols",
                ",".join(SYMBOLS),
                "--minutes",
                "5",
                "--url",
                srv.url,
                "--root",
                str(tmp_path),
                "--no-progress",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(60):
                while (
                    not list(tmp_path.glob(f"sessions/*/{FRAMES}"))
                    or next(tmp_path.glob(f"sessions/*/{FRAMES}")).stat().st_size < 20_000
                ):
                    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                    await asyncio.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    path = next(tmp_path.glob(f"sessions/*/{FRAMES}"))
    data = path.read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(data)  # really cut: no trailer
    text = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(data)
    decoded = list(iter_capture(path))
    assert len(decoded) == text.count(b"\n") > 20  # every complete line; at most a partial last one is lost
    assert len(text.rsplit(b"\n", 1)[-1]) < max(len(ln) for ln in text.split(b"\n"))
    assert sum(1 for _, ev in decoded if ev) > 10
    assert not list(tmp_path.glob(f"sessions/*/{AGGREGATE}"))  # killed before its reduction...
    (agg,) = reduce_unfinished_sessions(tmp_path)  # ...which `stats` does for it
    assert agg.parent == path.parent and json.loads(agg.read_text())["symbols"]
