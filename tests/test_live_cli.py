"""``python -m bot`` as a real process: paper mode against the local capture-replaying WS server, stopped by SIGTERM
or by ``--minutes``; refusals (live without confirmation, demo/live without keys or adapter, unknown symbols) are one
line and exit code 2. No test touches the internet."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ws_capture_server import CaptureServer

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAPORRR_")}
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)  # this checkout, not an install
    env.update({"NAPORRR_WEBSOCKET__SUBSCRIPTION_DEPTH": "200", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **extra})
    return env


async def _spawn(url: str, log_dir: Path, cwd: Path, *extra: str) -> asyncio.subprocess.Process:
    """The bot as a child process; stdout/stderr go to files in ``cwd`` (a pipe nobody reads could block it)."""
    with (cwd / "stdout.txt").open("wb") as out, (cwd / "stderr.txt").open("wb") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--mode", "paper", "--ws-url", url, "--symbols", "BTCUSDT",
            "--log-dir", str(log_dir), "--status-every", "0.5", *extra, cwd=cwd, env=_env(), stdout=out, stderr=err)


async def _until_log(path: Path, text: str, proc: asyncio.subprocess.Process, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not (path.exists() and text in path.read_text(encoding="utf-8")):
            if proc.returncode is not None:
                raise AssertionError(f"bot exited early with {proc.returncode}")
            await asyncio.sleep(0.1)


async def test_paper_process_streams_reports_status_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    async with CaptureServer(speed=1.0, loop_capture=True) as srv:
        proc = await _spawn(srv.url, log_dir, tmp_path)
        try:
            await _until_log(log_dir / "bot.log", "STATUS", proc, 30.0)
            await _until_log(log_dir / "bot.log", "last signal BTCUSDT", proc, 15.0)
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30.0):
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    log = (log_dir / "bot.log").read_text(encoding="utf-8")
    assert "public WS connected" in stderr
    assert "SIGTERM: stopping" in log
    assert log.rstrip().splitlines()[-1].endswith("closed positions 0") and "bot stopped (signal SIGTERM)" in log
    status = [ln for ln in log.splitlines() if "STATUS equity" in ln]
    assert status and "feed up" in status[-1] and "positions 0" in status[-1]
    rows = (log_dir / "signals.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) > 1 and all(",BTCUSDT," in r for r in rows[1:2])
    assert srv.connections == 1 and srv.count("subscribe") == 1


async def test_paper_process_stops_by_itself_after_minutes(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    async with CaptureServer(speed=4.0, loop_capture=True) as srv:
        proc = await _spawn(srv.url, log_dir, tmp_path, "--minutes", "0.05")
        async with asyncio.timeout(40.0):
            await proc.wait()
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert "bot stopped (until reached)" in (log_dir / "bot.log").read_text(encoding="utf-8")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(**env), timeout=60, check=False)


@pytest.mark.parametrize(("args", "env", "needle"), [
    (("--mode", "live"), {}, "--i-understand-live"),
    (("--mode", "live", "--i-understand-live"), {}, "--mode live needs"),
    (("--mode", "live"), {"NAPORRR_CONFIRM_LIVE": "1"}, "--mode live needs"),
    (("--mode", "demo"), {}, "--mode demo needs"),
    (("--symbols", "NOPEUSDT", "--ws-url", "ws://127.0.0.1:9"), {}, "unknown symbols"),
])
def test_refusals_are_one_line_and_exit_2(args: tuple[str, ...], env: dict[str, str], needle: str) -> None:
    out = _run(*args, **env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
