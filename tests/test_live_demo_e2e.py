"""``python -m bot --mode demo`` as a real process against three local servers (:mod:`live_servers`): the
capture-replaying public WS, and Bybit REST and private WS servers over one fake account. It must start (clock check,
filters, leverage, wallet, reconcile), build books, report status, stop on SIGTERM with exit code 0, and never write
the keys anywhere."""

from __future__ import annotations

import signal
from pathlib import Path

from live_servers import KEY, SECRET, live_servers, stop_process, until


async def test_demo_process_against_local_bybit_servers(tmp_path: Path) -> None:
    log_dir = tmp_path / "run"
    async with live_servers() as srv:
        proc = await srv.spawn("demo", log_dir, tmp_path, "--status-every", "0.5")
        try:
            bot_log = log_dir / "bot.log"
            await until(
                lambda: bot_log.exists() and "last signal BTCUSDT" in bot_log.read_text(),
                40,
                proc,
                "a status line with a signal",
            )
            assert srv.priv.auth_ok >= 1
        finally:
            await stop_process(proc, signal.SIGTERM)
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, stderr
    log = (log_dir / "bot.log").read_text(encoding="utf-8")
    assert "bot stopped (signal SIGTERM)" in log and "STATUS equity" in log
    for path in [*log_dir.iterdir(), tmp_path / "stderr.txt"]:
        text = path.read_text(encoding="utf-8")
        assert KEY not in text and SECRET not in text, path.name
