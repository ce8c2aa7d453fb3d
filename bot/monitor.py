"""Status line and kill switch for a running bot (paper, demo, live).

The status line (every ``status_every_sec``, and at stop) says what an operator needs at a glance: equity, open
positions, feed health and lag, the last signal. The kill switch stops the bot the way SIGTERM does (no new entries,
resting entries cancelled, protected positions left with their TP/SL on the exchange) when the day's loss reaches
``max_daily_loss_pct`` of the day's first equity, or when ``max_errors`` ERROR log records land within
``error_window_sec`` (an error storm: something is wrong that the bot cannot see). The thresholds are FIXED settings
(``risk.kill_switch_*``, operator limits the optimizer never tunes; STRATEGY.md §2 has none), which the CLI's
``--max-daily-loss-pct`` / ``--max-errors`` override for one run. All times come from the Clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loguru import logger

from bot.clock import Clock
from bot.timefmt import iso_utc

__all__ = ["KillSwitchLimits", "Monitor"]

DAY_SEC = 86_400.0


@dataclass(frozen=True)
class KillSwitchLimits:
    max_daily_loss_pct: float = 5.0
    max_errors: int = 20
    error_window_sec: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any, *, max_daily_loss_pct: float | None = None,
                      max_errors: int | None = None) -> KillSwitchLimits:
        """``settings.risk.kill_switch_*``; a non-None argument (a CLI option) overrides its setting."""
        risk = settings.risk
        return cls(max_daily_loss_pct=risk.kill_switch_daily_loss_pct if max_daily_loss_pct is None
                   else max_daily_loss_pct,
                   max_errors=risk.kill_switch_max_errors if max_errors is None else max_errors,
                   error_window_sec=risk.kill_switch_error_window_sec)


class Monitor:
    """Watches ``bot`` (a :class:`bot.app.Bot`) and ``feed`` (anything with ``stats``/``connected``, optional).

    ``stop`` is awaited once with the reason when the kill switch trips (the runner passes ``bot.stop``).
    """

    def __init__(self, bot: Any, feed: Any, clock: Clock, *, stop: Callable[[str], Awaitable[None]],
                 limits: KillSwitchLimits = KillSwitchLimits(), status_every_sec: float = 60.0,
                 check_every_sec: float = 1.0) -> None:
        self.bot = bot
        self.feed = feed
        self.clock = clock
        self.limits = limits
        self.status_every_sec = status_every_sec
        self.check_every_sec = min(check_every_sec, status_every_sec)
        self._stop = stop
        self.tripped: str | None = None
        self.status_lines = 0
        self._errors: deque[float] = deque()
        self._day: int | None = None
        self._day_start_equity: Decimal | None = None
        self._sink: int | None = None

    # --- error storm ----------------------------------------------------------------------------------------------
    def attach(self) -> None:
        """Count ERROR (and worse) log records from now on."""
        if self._sink is None:
            self._sink = logger.add(lambda _m: self._errors.append(self.clock.now()), level="ERROR", format="{message}")

    def detach(self) -> None:
        if self._sink is not None:
            with contextlib.suppress(ValueError):
                logger.remove(self._sink)
            self._sink = None

    # --- checks ---------------------------------------------------------------------------------------------------
    def check(self) -> str | None:
        """The kill-switch reason if a limit is breached now, else None."""
        now = self.clock.now()
        errs, lim = self._errors, self.limits
        while errs and errs[0] < now - lim.error_window_sec:
            errs.popleft()
        if len(errs) >= lim.max_errors:
            return f"error storm: {len(errs)} errors within {lim.error_window_sec:.0f}s"
        equity = self.bot.executor.equity
        if equity <= 0:
            return None
        day = int(now // DAY_SEC)
        if day != self._day or self._day_start_equity is None:
            self._day, self._day_start_equity = day, equity
            return None
        start = self._day_start_equity
        loss_pct = float((start - equity) / start * 100)
        if loss_pct >= lim.max_daily_loss_pct:
            return f"daily loss limit: equity {equity:.2f} is {loss_pct:.2f}% below the day's start {start:.2f}"
        return None

    def status(self) -> str:
        """One line: equity, positions, feed state and lag, last signal."""
        bot, now = self.bot, self.clock.now()
        ex = bot.executor
        pos = [f"{r.symbol}:{'L' if r.side > 0 else 'S'}{r.qty}@{r.avg_entry}({r.state.name})"
               for r in ex.book.live_records()]
        feed = "feed n/a"
        if self.feed is not None:
            st = self.feed.stats
            age = "never" if st.last_frame_at is None else f"{now - st.last_frame_at:.1f}s ago"
            feed = (f"feed {'up' if self.feed.connected else 'DOWN'} (connects {st.connects}, last frame {age}, "
                    f"{st.latency.summary()}, resyncs {sum(st.resyncs.values())})")
        sigs = list(bot.orchestrator.last_signal.values())
        last = "none"
        if sigs:
            s = max(sigs, key=lambda x: x.ts)
            last = f"{s.symbol} {s.action}/{s.strength} at {iso_utc(s.ts)}"
        return (f"STATUS equity {ex.equity:.2f} USDT (available {ex.available:.2f}); positions {len(pos)}"
                f"{': ' + ', '.join(pos) if pos else ''}; closed {len(ex.closed)}; {feed}; last signal {last}")

    def log_status(self) -> None:
        self.status_lines += 1
        logger.info(self.status())

    async def run(self) -> None:
        """Check the kill switch every ``check_every_sec``; log the status every ``status_every_sec``."""
        next_status = self.clock.now() + self.status_every_sec
        while True:
            await asyncio.sleep(self.check_every_sec)
            reason = self.check()
            if reason is not None and self.tripped is None:
                self.tripped = reason
                logger.critical("KILL SWITCH: {}; no new entries, cancelling resting entries, protected positions "
                                "stay with their TP/SL", reason)
                self.log_status()
                await self._stop(f"kill switch: {reason}")
                return
            if self.clock.now() >= next_status:
                next_status += self.status_every_sec
                self.log_status()
            flush = getattr(self.bot, "flush_logs", None)
            if flush is not None:
                flush()  # an operator tails bot.log; a crash must not lose the last minute
