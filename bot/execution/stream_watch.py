"""What the executor does about the private stream's health (STRATEGY.md §8.1, §8.4, §8.7).

Runs only against an exchange whose stream can fail (``StreamStatus.lossless`` false: the live adapter), every
``order_poll_interval_sec``:

- **§8.7 reconnect ⇒ reconcile.** A new connection (``connects`` changed) may follow missed events: new entries
  are refused (``blocked``) until a full REST reconciliation has run, then trading resumes.
- **§8.1 down ⇒ poll.** While the stream is down: the state of every working bot order each tick, and positions,
  executions and the wallet of every symbol with a live record each ``monitor_positions_interval_sec``. Entries
  are refused from the moment a stream that had been up drops until the reconciliation after it returns. A stream
  that never came up (``enable_private_ws`` off) means REST-only trading, not a block.
- **§8.4 silence ⇒ position check.** While up, with a position OPEN and no private event for
  ``pong_timeout_sec``, positions and executions of the open symbols are fetched (at most once per that period).

REST failures here are logged and retried on the next tick; they never stop the watch.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from loguru import logger

from bot.execution.positions import PositionState
from bot.ports import ExchangeError, StreamStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.execution.host import ExecutorHost


class StreamWatch:
    def __init__(self, ex: ExecutorHost, status: Callable[[], StreamStatus], seen_connects: int) -> None:
        """``seen_connects``: the connection count the executor's start-up reconciliation already covers."""
        self.ex = ex
        self.status = status
        self.seen = seen_connects
        self.blocked = False
        now = ex.clock.now()
        self.last_sweep = float("-inf")
        self.last_check = now
        self.reconciles = 0          # reconciliations after a reconnect
        self.silence_checks = 0      # §8.4 checks made
        self.polls = 0               # ticks spent polling REST while down
        self.rest_errors = 0
        self._last_error = ""

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.ex.xs.order_poll_interval_sec)
            try:
                await self.tick()
                self._last_error = ""
            except (ExchangeError, TimeoutError, ConnectionError) as e:
                self.rest_errors += 1
                msg = f"{type(e).__name__}: {e}"
                # an outage fails every tick: say it once, not twice a second
                (logger.debug if msg == self._last_error else logger.warning)(
                    "stream watch: REST request failed ({}); retrying next tick", msg)
                self._last_error = msg

    async def tick(self) -> None:
        ex, st = self.ex, self.status()
        now = ex.clock.now()
        if st.up and st.connects != self.seen:
            self.blocked = True
            logger.warning("private stream connected (#{}): reconciling from REST before trading again", st.connects)
            await ex.reconcile()
            self.seen, self.blocked, self.last_check = st.connects, False, now
            self.reconciles += 1
            logger.info("reconciled after private stream connection #{}", st.connects)
            return
        if not st.up:
            if st.connects > 0 and not self.blocked:
                logger.warning("private stream down: polling REST, no new entries until it is back and reconciled")
                self.blocked = True
            self.polls += 1
            await ex.refresh_orders()
            if now - self.last_sweep >= ex.settings.trading.monitor_positions_interval_sec:
                self.last_sweep = now
                await ex.refresh_account([r.symbol for r in ex.book.live_records()], wallet=True)
            return
        open_syms = [r.symbol for r in ex.book.live_records() if r.state == PositionState.OPEN]
        if open_syms and now - max(ex.last_event_at, self.last_check) >= ex.settings.websocket.pong_timeout_sec:
            self.last_check = now
            self.silence_checks += 1
            logger.info("no private event for {:.0f}s with {} open: REST position check",
                        now - max(ex.last_event_at, 0.0), ",".join(open_syms))
            await ex.refresh_account(open_syms)
