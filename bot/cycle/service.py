"""The cycle inside a running bot: two asyncio tasks beside the trading loop, plus one orchestrator hook.

- **schedule**: sleeps on the bot's clock to the next due time (:func:`bot.cycle.schedule.next_due`) and starts a run
  (:class:`bot.cycle.runner.CycleRunner`, child processes at low priority). A run still going when the next one is due
  is not doubled: that due time is skipped with a log line. After a run: log, notifications, cleanup.
- **overlay watch**: polls the overlay file (``overlay_poll_sec``); a new valid content is planned
  (:func:`bot.cycle.hotswap.plan`) right away and waits for a safe point.
- **safe point** (``orchestrator.before_tick``): at the start of a working tick, before any evaluation, and only when
  no entry is in flight, the planned attributes are copied onto the live components. Open positions keep the exits
  they were opened with.

The trading loop only ever awaits nothing of this: a run's work happens in other processes, the webhook in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from bot.cycle import hotswap
from bot.cycle.notify import Notifier
from bot.cycle.overlay import OverlayWatcher, changed_fields
from bot.cycle.rotation import prune_kline_cache, rotate, run_id_at
from bot.cycle.runner import CycleConfig, CycleResult, CycleRunner
from bot.cycle.schedule import next_due
from bot.timefmt import iso_utc
from settings import Settings


@dataclass
class SwapRecord:
    ts: float
    fields: dict[str, tuple[Any, Any]]
    attributes: int


@dataclass
class _Pending:
    settings: Settings
    based_on: Settings
    changes: dict[str, dict[str, Any]]
    waiting_logged: bool = False


@dataclass
class CycleService:
    """Owns the schedule, the current run, the overlay watcher and the parameter swap of one bot."""

    bot: Any
    base: Settings  # the settings the bot started from, before the overlay
    config: CycleConfig
    notifier: Notifier | None = None
    overlay_poll_sec: float = 1.0
    runs: list[CycleResult] = field(default_factory=list)
    skipped: list[float] = field(default_factory=list)  # due times skipped because a run was still going
    swaps: list[SwapRecord] = field(default_factory=list)
    current: asyncio.Task[CycleResult] | None = None
    _pending: _Pending | None = None

    def __post_init__(self) -> None:
        bt = self.base.backtest
        self.runner = CycleRunner(self.base, self.config)
        self.watcher = OverlayWatcher(self.config.overlay, self.base)
        self.watcher.prime()  # the content at start is already in bot.settings
        if self.notifier is None:
            self.notifier = Notifier(bt.webhook_url, bt.webhook_timeout_sec)
        self.bot.orchestrator.before_tick.append(self._at_safe_point)

    async def run(self) -> None:
        """Schedule and watch until cancelled; cancelling ends a running cycle's processes too."""
        try:
            await asyncio.gather(self._schedule(), self._watch())
        except Exception as e:  # a bug here must not reach the trading loop: log it, trade on without the cycle
            logger.opt(exception=e).error("backtest cycle service stopped; trading continues without it")
        finally:
            if self.current is not None and not self.current.done():
                self.current.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.current

    # --------------------------------------------------------------------------------------------- schedule
    async def _schedule(self) -> None:
        bt, clock = self.base.backtest, self.bot.clock
        due = next_due(clock.now(), bt.backtest_start_time, bt.backtest_cycle_hrs)
        logger.info(
            "backtest cycle enabled: every {:g} h from {} UTC, {:g} days of {}, next run at {}",
            bt.backtest_cycle_hrs,
            bt.backtest_start_time,
            bt.data_lookback_days,
            ",".join(self.config.symbols),
            iso_utc(due),
        )
        while True:
            await asyncio.sleep(max(0.0, due - clock.now()))
            self.trigger(due)
            due += bt.backtest_cycle_hrs * 3600.0
            due = max(due, next_due(clock.now(), bt.backtest_start_time, bt.backtest_cycle_hrs))

    def trigger(self, due: float) -> asyncio.Task[CycleResult] | None:
        """Start a run now, unless one is still going (then the due time is skipped, with a log line)."""
        if self.current is not None and not self.current.done():
            self.skipped.append(due)
            logger.warning("backtest cycle due at {} skipped: the previous run is still going", iso_utc(due))
            return None
        self.current = asyncio.create_task(self._cycle(run_id_at(self.bot.clock.now())), name="backtest-cycle")
        return self.current

    async def _cycle(self, run_id: str) -> CycleResult:
        clock = self.bot.clock
        t0 = clock.now()
        logger.info("backtest cycle {} started (child processes at nice {})", run_id, self.base.backtest.cycle_nice)
        res = await self.runner.run(run_id, clock.now)
        self.runs.append(res)
        took = clock.now() - t0
        if res.status == "completed":
            p = res.proposal
            logger.info(
                "backtest cycle {} completed in {:.1f}s: study {}{}{}",
                run_id,
                took,
                res.study,
                f", proposal {p['id']} {p['status']}" if p else "",
                f"; {res.calibration.text}" if res.calibration else "",
            )
        else:
            failed = res.steps[-1] if res.steps else None
            logger.error(
                "backtest cycle {} failed after {:.1f}s: {}; trading continues{}",
                run_id,
                took,
                res.error,
                f"; stderr tail:\n{failed.stderr_tail}" if failed and failed.stderr_tail else "",
            )
        try:
            await self._notify(res, took)
        except Exception as e:  # never let a notification bug end the schedule
            logger.warning("cycle notification failed: {}", e)
        bt = self.base.backtest
        if bt.auto_cleanup:
            await asyncio.to_thread(
                rotate,
                self.runner.root,
                keep_last_n=bt.keep_last_n_runs,
                max_age_days=bt.cleanup_interval_days,
                now=clock.now(),
                protect=run_id,
            )
            await asyncio.to_thread(
                prune_kline_cache, self.runner.root, keep_days=bt.data_lookback_days + 1, now=clock.now()
            )
        return res

    async def _notify(self, res: CycleResult, took: float) -> None:
        bt = self.base.backtest
        assert self.notifier is not None
        summary = res.to_json()
        cal = res.calibration
        if cal is not None and cal.status == "failed":  # always told: the backtest ran on the uncalibrated generator
            await self.notifier.notify(
                {"event": "calibration_failed", "run_id": res.run_id, "summary": f"run {res.run_id}: {cal.text}",
                 "calibration": cal.to_json(), "steps": summary["steps"]}
            )
        if bt.notify_on_completion:
            text = f"run {res.run_id} {res.status} in {took:.0f}s" + (f": {res.error}" if res.error else "")
            text += f"; {cal.text}" if cal is not None else ""
            await self.notifier.notify(
                {"event": f"cycle_{res.status}", "summary": text, "seconds": round(took, 1), **summary}
            )
        if not bt.notify_on_better_params or res.status != "completed":
            return
        for name, t in summary["targets"].items():
            imp = t.get("improvement")
            if imp is None or imp < bt.notify_threshold_improvement:
                continue
            p = res.proposal or {}
            hint = {
                "pending": f"approve with: python -m replay approve {p.get('id')}",
                "applied": "applied to the overlay; the bot swaps it in at its next safe point",
            }.get(p.get("status", ""), f"preset {t.get('preset')}")
            await self.notifier.notify(
                {
                    "event": "better_params",
                    "run_id": res.run_id,
                    "study": res.study,
                    "target": name,
                    "improvement": imp,
                    "best_oos": t["best_oos"],
                    "current_oos": t["current_oos"],
                    "params": t["params"],
                    "proposal": p or None,
                    "summary": f"{name}: out-of-sample improvement {imp:.1%} (threshold "
                    f"{bt.notify_threshold_improvement:.1%}); {hint}",
                }
            )

    # ------------------------------------------------------------------------------------ overlay and swap
    async def _watch(self) -> None:
        while True:
            try:
                new = self.watcher.poll()
                if new is not None:
                    self._plan(new)
            except Exception as e:  # an unreadable file, a plan bug: keep the current parameters, keep watching
                logger.opt(exception=e).error("parameter overlay {} not applied", self.config.overlay)
            await asyncio.sleep(self.overlay_poll_sec)

    def _plan(self, new: Settings) -> None:
        current = self.bot.settings
        try:
            changes = hotswap.plan(self.bot, new)
        except hotswap.NotSwappable as e:
            logger.warning("parameter overlay {} not swapped in: {}", self.config.overlay, e)
            return
        self._pending = _Pending(new, current, changes)
        logger.info(
            "parameter overlay {} changed: {} field(s) wait for a safe point",
            self.config.overlay,
            len(changed_fields(current, new)),
        )

    def _at_safe_point(self, now: float) -> None:
        """The orchestrator's ``before_tick`` hook: it must never raise into the trading loop."""
        try:
            self._swap_if_safe(now)
        except Exception as e:
            self._pending = None
            logger.opt(exception=e).error("parameter swap failed; the bot keeps its parameters")

    def _swap_if_safe(self, now: float) -> None:
        p = self._pending
        if p is None:
            return
        if self.bot.settings is not p.based_on:  # swapped meanwhile by another change: plan again from here
            self._pending = None
            self._plan(p.settings)
            return
        busy = hotswap.entry_in_flight(self.bot)
        if busy:
            if not p.waiting_logged:
                logger.info("parameter swap waits: entry in flight for {}", ", ".join(busy))
                p.waiting_logged = True
            return
        fields = changed_fields(self.bot.settings, p.settings)
        n = hotswap.apply_plan(self.bot, p.changes, p.settings)
        self._pending = None
        self.swaps.append(SwapRecord(now, fields, n))
        logger.info(
            "tuned parameters swapped in before the tick at {:.3f}: {}",
            now,
            "; ".join(f"{k} {a} -> {b}" for k, (a, b) in fields.items()),
        )
