"""``python -m bot --mode demo`` as a real process against three local servers: the capture-replaying public WS
(:mod:`ws_capture_server`), and the trading branch's Bybit REST and private WS servers over one fake account. It
must start (clock check, filters, leverage, wallet, reconcile), build books, report status, stop on SIGTERM with
exit code 0, and never write the keys anywhere."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import bybit_account
import bybit_http_server as http_server
import bybit_private_ws_server as private_server
from ws_capture_server import CaptureServer

KEY, SECRET = "e2e-KEY-7f3a9c", "e2e-SECRET-1b8d44e0"


async def _until(cond: object, timeout: float, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            if proc.returncode is not None:
                raise AssertionError(f"bot exited early with {proc.returncode}")
            await asyncio.sleep(0.1)


async def test_demo_process_against_local_bybit_servers(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    acct = bybit_account.FakeBybitAccount(KEY, SECRET, symbols=["BTCUSDT"], balance="10000")
    async with CaptureServer(speed=1.0, loop_capture=True) as pub, private_server.PrivateWSServer(KEY, SECRET) as priv:
        btc = next(f for f in pub.frames if f.symbol == "BTCUSDT" and f.kind == "snapshot")
        acct.mark["BTCUSDT"] = Decimal(btc.msg["data"]["a"][0][0])
        acct.listeners.append(priv.push)
        with http_server.BybitHTTPServer() as http:
            bybit_account.install_account_routes(http, acct)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("NAPORRR_", "BYBIT_"))}
            env.update({"NAPORRR_WEBSOCKET__SUBSCRIPTION_DEPTH": "200", "BYBIT_API_KEY": KEY,
                        "BYBIT_API_SECRET": SECRET, "PYTHONUNBUFFERED": "1"})
            with (tmp_path / "stderr.txt").open("wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "--mode", "demo", "--symbols", "BTCUSDT", "--ws-url", pub.url,
                    "--rest-url", http.base_url, "--private-ws-url", priv.url, "--log-dir", str(log_dir),
                    "--status-every", "0.5", cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err)
            try:
                bot_log = log_dir / "bot.log"
                await _until(lambda: bot_log.exists() and "last signal BTCUSDT" in bot_log.read_text(), 40, proc)
                assert priv.auth_ok >= 1
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, stderr
    log = (log_dir / "bot.log").read_text(encoding="utf-8")
    assert "bot stopped (signal SIGTERM)" in log and "STATUS equity" in log
    for path in [*log_dir.iterdir(), tmp_path / "stderr.txt"]:
        text = path.read_text(encoding="utf-8")
        assert KEY not in text and SECRET not in text, path.name
