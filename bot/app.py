"""Composition root: the one place that wires the bot, identically for live, paper and replay (ARCHITECTURE.md §1).

Only the three ports differ between those modes and they arrive as arguments: the ``Clock`` (wall or virtual), the
``Exchange`` (Bybit adapter or the simulated exchange) and, at :meth:`Bot.run`, the ``MarketFeed`` (WS collector,
recorded or synthetic). Every behavioural difference (e.g. replay's strict no-repaint mode:
``trading.act_on_closed_candles``, which defers a signal's action to its candle's close) is a settings value, never a
branch here or anywhere in ``bot/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer
from bot.clock import Clock
from bot.execution.executor import Executor
from bot.execution.positions import PositionRecord
from bot.execution.trade_log import TradeLog
from bot.feed_consumer import BatchSink, FeedConsumer, FeedQueue
from bot.instruments import InstrumentRegistry
from bot.orchestrator import SETTLE_SEC, Orchestrator
from bot.ports import Exchange, MarketFeed
from bot.risk import RiskManager
from bot.signal_log import SignalLog
from bot.storage import DataStorage
from bot.timefmt import iso_utc
from settings import Settings

SIGNALS_CSV = "signals.csv"
TRADES_CSV = "trades.csv"
BOT_LOG = "bot.log"


@dataclass(eq=False)
class Bot:
    """The assembled bot. ``run`` drives it on the running loop until the feed ends, ``until`` or ``stop()``."""

    settings: Settings
    clock: Clock
    exchange: Exchange
    instruments: InstrumentRegistry
    symbols: tuple[str, ...]
    storage: DataStorage
    volume: VolumeAnalyzer
    imbalance: ImbalanceAnalyzer
    signals: SignalGenerator
    risk: RiskManager
    executor: Executor
    orchestrator: Orchestrator
    signal_log: SignalLog
    trade_log: TradeLog
    queue: FeedQueue
    consumer: FeedConsumer
    log_dir: Path | None = None
    stop_reason: str | None = None
    _stop: asyncio.Event | None = field(default=None, repr=False)
    _log_sink: int | None = field(default=None, repr=False)
    _log_fh: Any = field(default=None, repr=False)

    async def run(self, feed: MarketFeed, *, until: float | None = None) -> None:
        """Start consumer, feed, executor and orchestrator; stop cleanly once the clock has passed ``until`` (every
        tick scheduled at or before ``until`` has run, even if the feed ended earlier), when the feed is exhausted
        (after its last batch is applied; only without ``until``), :meth:`stop` is called, or a task fails (re-raised
        after the clean stop)."""
        if self._stop is not None:
            raise RuntimeError("Bot.run is already running")
        self._stop = asyncio.Event()
        self.stop_reason = None
        self.orchestrator.serve(getattr(feed, "symbols", None))  # a feed may say which symbols it can ever deliver
        self._open_bot_log()
        consumer = asyncio.create_task(self.consumer.run(), name="feed-consumer")
        feed_task = asyncio.create_task(feed.run(self.queue), name="market-feed")
        orch: asyncio.Task[None] | None = None
        error: BaseException | None = None
        try:
            await self._race(self.executor.start(), consumer, "executor start")
            orch = asyncio.create_task(self.orchestrator.run(until), name="orchestrator")
            error = await self._supervise(consumer, feed_task, orch, until)
        except BaseException as e:  # includes cancellation of run() itself: still stop cleanly
            error = e
        finally:
            error = await self._shutdown(consumer, feed_task, orch, error)
        if error is not None:
            raise error

    async def stop(self, reason: str = "stop requested") -> None:
        """Ask a running :meth:`run` to stop cleanly (returns at once; ``run`` does the shutdown)."""
        if self._stop is not None and not self._stop.is_set():
            self.stop_reason = self.stop_reason or reason
            self._stop.set()

    def flush_logs(self) -> None:
        """Push bot.log and signals.csv to disk (a live runner calls it periodically; trades.csv is written per row)."""
        if self._log_fh is not None and self._log_sink is not None:
            self._log_fh.flush()
        self.signal_log.flush()

    # ----------------------------------------------------------------------------------------------- internals
    async def _race(self, coro: Any, consumer: asyncio.Task[Any], what: str) -> None:
        """Await ``coro`` unless the consumer dies first (its exception wins); a finished feed is no reason to stop."""
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({task, consumer}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise RuntimeError(f"feed consumer stopped during {what}") from consumer.exception()
        task.result()

    async def _supervise(self, consumer: asyncio.Task[Any], feed_task: asyncio.Task[Any],
                         orch: asyncio.Task[Any], until: float | None) -> BaseException | None:
        assert self._stop is not None
        stop_wait = asyncio.create_task(self._stop.wait(), name="bot-stop")
        timer: asyncio.Task[None] | None = None
        if until is not None:
            # just after the tick due at ``until`` (it wakes SETTLE_SEC late): the last decision is part of the run
            delay = max(0.0, until - self.clock.now()) + 2 * SETTLE_SEC
            timer = asyncio.create_task(asyncio.sleep(delay), name="bot-until")
        try:
            watch = {consumer, feed_task, orch, stop_wait, *((timer,) if timer else ())}
            while True:
                done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                for t in (consumer, orch, feed_task):
                    if t in done and not t.cancelled() and t.exception() is not None:
                        self.stop_reason = f"{t.get_name()} failed"
                        return t.exception()
                if consumer in done:
                    self.stop_reason = "feed consumer ended"
                    return None
                if stop_wait in done:
                    return None
                if timer is not None and timer in done:
                    self.stop_reason = "until reached"
                    return None
                if feed_task in done:
                    # drain what the feed enqueued, then stop (unless the consumer dies meanwhile)
                    drained = asyncio.create_task(self.queue.join(), name="feed-drain")
                    d2, _ = await asyncio.wait({drained, consumer}, return_when=asyncio.FIRST_COMPLETED)
                    if drained not in d2:
                        drained.cancel()
                        continue  # the consumer finished or failed: reported on the next pass
                    if timer is None:
                        self.stop_reason = "feed exhausted"
                        return None
                    watch.discard(feed_task)  # run on to ``until``: its last ticks still decide
                watch.discard(orch)  # the orchestrator returns after its last tick <= until; keep waiting
        finally:
            for t in (stop_wait, timer):
                if t is not None:
                    t.cancel()

    async def _shutdown(self, consumer: asyncio.Task[Any], feed_task: asyncio.Task[Any],
                        orch: asyncio.Task[Any] | None, error: BaseException | None) -> BaseException | None:
        """Orchestrator first (no new decisions), then executor.stop(), then feed and consumer; logs flushed last."""
        self.orchestrator.stop()
        for t in (orch, feed_task):
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in (orch, feed_task) if t is not None), return_exceptions=True)
        try:
            await self.executor.stop()
        except Exception as e:
            logger.opt(exception=e).error("executor.stop failed")
            error = error or e
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        self.signal_log.close()
        o = self.orchestrator
        logger.info("bot stopped ({}): ticks {} ({} without work), overruns {}, missed ticks {}, signals {}, closed "
                    "positions {}", self.stop_reason or "cancelled", o.ticks, o.idle_ticks, o.overruns, o.missed_ticks,
                    self.signal_log.rows, len(self.executor.closed))
        self._close_bot_log()
        self._stop = None
        return error

    def _open_bot_log(self) -> None:
        """bot.log with injected-clock UTC timestamps (virtual time in replay), removed again when run ends."""
        if self.log_dir is None:
            return
        path = self.log_dir / BOT_LOG
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a", encoding="utf-8")
        clock = self.clock

        def sink(message: Any) -> None:
            r = message.record
            fh.write(f"{iso_utc(clock.now())} {r['level'].name:<7} {r['name']}: {r['message']}\n")
            exc = r["exception"]
            if exc is not None:
                fh.write("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))

        self._log_sink = logger.add(sink, level="INFO", format="{message}")
        self._log_fh = fh

    def _close_bot_log(self) -> None:
        if self._log_sink is not None:
            logger.remove(self._log_sink)
            self._log_sink = None
            self._log_fh.close()


def build_bot(settings: Settings, clock: Clock, exchange: Exchange, *, instruments: InstrumentRegistry | None = None,
              log_dir: Path | None = None, symbols: Sequence[str] | None = None,
              sinks: Sequence[BatchSink] = ()) -> Bot:
    """Assemble storage, analyzers, signal generator, risk manager, executor, orchestrator and logs.

    ``instruments`` defaults to the bundled real instruments-info; ``symbols`` defaults to ``trading.trade_pairs``
    (the order is the batching order); ``log_dir`` None writes no files (signals and trades are still kept in
    memory by their writers); ``sinks`` receive every applied market batch after storage (paper trading tees the
    feed into the simulated exchange's ``on_market`` this way).
    """
    registry = instruments if instruments is not None else InstrumentRegistry.bundled()
    syms = tuple(symbols) if symbols is not None else tuple(settings.trading.trade_pairs)
    unknown = [s for s in syms if s not in registry]
    if unknown:
        raise ValueError(f"symbols without instrument filters: {unknown}")
    storage = DataStorage(settings, clock, syms)
    volume = VolumeAnalyzer(settings, storage)
    imbalance = ImbalanceAnalyzer(settings, storage, registry)
    signals = SignalGenerator(settings)
    risk = RiskManager(settings, registry)
    signal_log = SignalLog(None if log_dir is None else Path(log_dir) / SIGNALS_CSV)
    trade_log = TradeLog(None if log_dir is None else Path(log_dir) / TRADES_CSV)
    queue = FeedQueue()
    consumer = FeedConsumer(queue, storage, sinks)
    closed_hook: list[Orchestrator] = []

    def on_closed(rec: PositionRecord) -> None:
        closed_hook[0].on_closed(rec)

    executor = Executor(settings, clock, exchange, storage, risk, registry, trade_log, on_closed=on_closed,
                        symbols=syms)
    orchestrator = Orchestrator(settings, clock, storage, volume, imbalance, signals, executor,
                                signal_log=signal_log, symbols=syms, sync=consumer.caught_up,
                                synced=consumer.is_caught_up)
    closed_hook.append(orchestrator)
    return Bot(settings=settings, clock=clock, exchange=exchange, instruments=registry, symbols=syms, storage=storage,
               volume=volume, imbalance=imbalance, signals=signals, risk=risk, executor=executor,
               orchestrator=orchestrator, signal_log=signal_log, trade_log=trade_log, queue=queue, consumer=consumer,
               log_dir=None if log_dir is None else Path(log_dir))
