"""The three local Bybit servers a ``python -m bot --mode demo|live`` process runs against, started together.

- public WS: :class:`ws_capture_server.CaptureServer` replaying the bundled real capture (looped, with faults);
- REST: :class:`bybit_http_server.BybitHTTPServer` with :func:`bybit_account.install_account_routes` over one
  :class:`bybit_account.FakeBybitAccount` (the ledger the bot must reconcile to);
- private WS: :class:`bybit_private_ws_server.PrivateWSServer`, fed by the same account.

The account's ``mark`` follows the replayed market (the server's own reference book: best bid), so a Market order
from the bot fills at a real price on the tick grid. Shared by the demo and live process tests so the wiring is
written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import bybit_account
import bybit_http_server as http_server
import bybit_private_ws_server as private_server
from ws_capture_server import CaptureServer, Faults

KEY, SECRET = "e2e-KEY-7f3a9c", "e2e-SECRET-1b8d44e0"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LiveServers:
    pub: CaptureServer
    priv: private_server.PrivateWSServer
    http: http_server.BybitHTTPServer
    acct: bybit_account.FakeBybitAccount
    symbol: str

    def env(self, **extra: str) -> dict[str, str]:
        """The child's environment: no inherited ``NAPORRR_``/``BYBIT_`` variables, the test keys, depth 200, and
        this checkout on ``PYTHONPATH``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NAPORRR_", "BYBIT_"))}
        # the child runs in a temp dir: put this checkout first, or it imports whichever ``bot`` is installed
        path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env.update(
            {
                "NAPORRR_WEBSOCKET__SUBSCRIPTION_DEPTH": "200",
                "BYBIT_API_KEY": KEY,
                "BYBIT_API_SECRET": SECRET,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": path,
                **extra,
            }
        )
        return env

    async def spawn(
        self, mode: str, log_dir: Path, cwd: Path, *extra: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """``python -m bot --mode MODE`` aimed at the three servers; stderr to ``cwd/stderr.txt``."""
        with (cwd / "stderr.txt").open("wb") as err:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "--mode",
                mode,
                "--symbols",
                self.symbol,
                "--ws-url",
                self.pub.url,
                "--rest-url",
                self.http.base_url,
                "--private-ws-url",
                self.priv.url,
                "--log-dir",
                str(log_dir),
                *extra,
                cwd=cwd,
                env=env if env is not None else self.env(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )

    def follow_mark(self) -> None:
        """Set the account's mark to the replayed market's best bid (a tick-grid price)."""
        book = self.pub.books.get(self.symbol)
        if book is not None and book.bids:
            bid = max(book.bids)
            self.acct.mark[self.symbol] = Decimal(book.raw[bid][0])


async def until(
    cond: Callable[[], object], timeout: float, proc: asyncio.subprocess.Process | None = None, what: str = ""
) -> None:
    """Wait for ``cond()`` (polled every 0.05 s); a dead bot process or the timeout fails with ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                if proc is not None and proc.returncode is not None:
                    raise AssertionError(f"bot exited early with {proc.returncode} waiting for {what}")
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def stop_process(proc: asyncio.subprocess.Process, sig: int, timeout: float = 30.0) -> int:
    """Send ``sig`` and wait; kill if it does not exit in time. Returns the exit code."""
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


@contextlib.asynccontextmanager
async def live_servers(
    *, symbol: str = "BTCUSDT", balance: str = "10000", faults: Faults | None = None, speed: float = 1.0
) -> AsyncIterator[LiveServers]:
    """The three servers over one fake account, the mark following the market every 0.1 s."""
    acct = bybit_account.FakeBybitAccount(KEY, SECRET, symbols=[symbol], balance=balance)
    async with (
        CaptureServer(speed=speed, loop_capture=True, faults=faults) as pub,
        private_server.PrivateWSServer(KEY, SECRET) as priv,
    ):
        first = next(f for f in pub.frames if f.symbol == symbol and f.kind == "snapshot")
        acct.mark[symbol] = Decimal(first.msg["data"]["b"][0][0])
        acct.listeners.append(priv.push)
        with http_server.BybitHTTPServer() as http:
            bybit_account.install_account_routes(http, acct)
            servers = LiveServers(pub, priv, http, acct, symbol)

            async def mark_loop() -> None:
                while True:
                    servers.follow_mark()
                    await asyncio.sleep(0.1)

            marker = asyncio.create_task(mark_loop())
            try:
                yield servers
            finally:
                marker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await marker
