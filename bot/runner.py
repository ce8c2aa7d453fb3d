"""``python -m bot`` wiring for paper, demo and live: ports in, :func:`bot.app.build_bot` (the one composition root),
the public WS collector as the MarketFeed, signals, status line and kill switch around :meth:`Bot.run`.

- **paper** (default, no keys): the live public feed against the simulated exchange on the wall clock. The feed
  consumer tees every applied batch into the simulated exchange (``build_bot(..., sinks=[exchange.on_market])``),
  the same hand-off replay uses, so paper fills come from the real tape.
- **demo** / **live**: Bybit's REST + private stream adapter (``bot.adapters.bybit.exchange``), imported only here
  so paper needs neither keys nor that module.

The parameter overlay (``--overlay``, tuned parameters from ``python -m replay apply|approve``) is applied at start
when it exists; with ``backtest.enable_backtest`` the backtest cycle (:mod:`bot.cycle`) runs beside the bot and swaps
newly approved parameters in while it trades.

A stop (SIGINT/SIGTERM, ``--minutes`` elapsed, kill switch) goes through ``Bot.stop``: no new decisions, resting
entries cancelled, OPEN positions left protected on the exchange, logs flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from bot.adapters.bybit.public_ws import BybitPublicFeed
from bot.app import build_bot
from bot.clock import Clock, WallClock
from bot.cycle import overlay
from bot.cycle.runner import CycleConfig
from bot.cycle.service import CycleService
from bot.instruments import InstrumentRegistry
from bot.monitor import KillSwitchLimits, Monitor
from bot.timefmt import iso_utc
from settings import Settings

__all__ = ["MODES", "LiveRun", "RunOptions", "StartupError", "assemble", "drive", "run", "run_async"]

MODES = ("paper", "demo", "live")
DEFAULT_OVERLAY = Path("config/overlay.toml")
CONFIRM_ENV = "NAPORRR_CONFIRM_LIVE"
EXIT_OK = 0
EXIT_STARTUP = 2
EXIT_KILLED = 3


class StartupError(Exception):
    """The run cannot start; the message is the one line the user sees."""


@dataclass(frozen=True)
class RunOptions:
    mode: str = "paper"
    symbols: tuple[str, ...] = ()
    minutes: float | None = None
    ws_url: str | None = None
    rest_url: str | None = None          # demo/live: override the REST endpoint (local test servers)
    private_ws_url: str | None = None    # demo/live: override the private stream endpoint (local test servers)
    log_dir: Path | None = None
    confirm_live: bool = False
    status_every_sec: float = 60.0
    seed: int = 0
    limits: KillSwitchLimits | None = None  # None: the settings' risk.kill_switch_* (the CLI passes its overrides)
    overlay: Path = DEFAULT_OVERLAY     # tuned parameters (python -m replay apply|approve); applied when present


def confirm_live(opts: RunOptions) -> None:
    """Live trading needs an explicit yes: ``--i-understand-live`` or ``NAPORRR_CONFIRM_LIVE=1`` (both arrive as
    ``opts.confirm_live``; ``python -m bot`` reads and removes the variable before settings reject it as unknown)."""
    if opts.mode == "live" and not opts.confirm_live:
        raise StartupError(f"live mode trades real money: pass --i-understand-live or set {CONFIRM_ENV}=1")


def _credentials(loaded: Any) -> tuple[str | None, str | None]:
    """(key, secret) from whatever ``load_credentials`` returns: a pair, an object with ``api_key``/``api_secret``
    (plain or SecretStr), or None."""
    if loaded is None:
        return None, None
    if isinstance(loaded, tuple | list) and len(loaded) == 2:
        key, secret = loaded
    else:
        key, secret = getattr(loaded, "api_key", None), getattr(loaded, "api_secret", None)
    unwrap = [v.get_secret_value() if hasattr(v, "get_secret_value") else v for v in (key, secret)]
    return unwrap[0] or None, unwrap[1] or None


async def _bybit_exchange(opts: RunOptions, settings: Settings, clock: Clock) -> Any:
    try:
        from bot.adapters.bybit import exchange as bybit  # the REST/private-WS adapter: only demo/live need it
    except ImportError as e:
        raise StartupError(f"--mode {opts.mode} needs the Bybit trading adapter (bot.adapters.bybit.exchange), which "
                           f"this build does not have ({e}); use --mode paper") from None
    try:
        key, secret = _credentials(bybit.load_credentials())
    except Exception as e:  # missing keys, malformed .env: the adapter's message names variables, never values
        raise StartupError(f"--mode {opts.mode} needs API keys: {' '.join(str(e).split())}") from None
    if not key or not secret:
        raise StartupError(f"--mode {opts.mode} needs API keys in the environment or .env (see README)")
    overrides = {k: v for k, v in (("rest_url", opts.rest_url), ("ws_url", opts.private_ws_url)) if v}
    ex = bybit.build_bybit_exchange(settings, demo=opts.mode == "demo", api_key=key, api_secret=secret, clock=clock,
                                    **overrides)
    if inspect.isawaitable(ex):
        ex = await ex
    start = getattr(ex, "start", None)  # the adapter's clock check, filters and private stream
    if start is not None:
        try:
            await start()
        except Exception as e:  # unreachable API, clock skew, refused keys: one line (the adapter never echoes keys)
            raise StartupError(f"--mode {opts.mode}: the Bybit adapter could not start: {type(e).__name__}: "
                               f"{' '.join(str(e).split())}") from None
    return ex


async def _exchange(opts: RunOptions, settings: Settings, clock: Clock) -> tuple[Any, InstrumentRegistry, list[Any]]:
    """(exchange, instruments, extra feed sinks) for the mode."""
    if opts.mode == "paper":
        from bot.adapters.simulated import SimExchange

        instruments = InstrumentRegistry.bundled()
        sim = SimExchange(settings, clock, instruments, seed=opts.seed)
        return sim, instruments, [sim.on_market]
    ex = await _bybit_exchange(opts, settings, clock)
    return ex, await ex.get_instruments(), []


def default_log_dir(settings: Settings, mode: str, now: float) -> Path:
    """``{data_retention.log_dir}/live/{mode}-{YYYYmmddTHHMMSS}`` (UTC): one directory per run."""
    stamp = iso_utc(now)[:19].replace(":", "").replace("-", "")
    return Path(settings.data_retention.log_dir) / "live" / f"{mode}-{stamp}"


@dataclass
class LiveRun:
    """One assembled run: the bot (from :func:`bot.app.build_bot`), its exchange, the public feed, the monitor."""

    opts: RunOptions
    bot: Any
    exchange: Any
    feed: BybitPublicFeed
    monitor: Monitor
    log_dir: Path
    cycle: CycleService | None = None


async def assemble(opts: RunOptions, settings: Settings, *, clock: Clock | None = None) -> LiveRun:
    """Check the mode, build the exchange for it, then the bot through the one composition root."""
    if opts.mode not in MODES:
        raise StartupError(f"unknown mode {opts.mode!r}; choose one of {', '.join(MODES)}")
    confirm_live(opts)
    clock = clock or WallClock()
    base = settings
    try:
        settings = overlay.settings_with(base, opts.overlay)
    except ValueError as e:
        raise StartupError(f"parameter overlay {opts.overlay}: {' '.join(str(e).split())}") from None
    if settings is not base:
        logger.info("parameter overlay {} applied: {}", opts.overlay,
                    "; ".join(f"{k} = {b}" for k, (_, b) in overlay.changed_fields(base, settings).items()))
    symbols = opts.symbols or tuple(settings.trading.trade_pairs)
    exchange, instruments, sinks = await _exchange(opts, settings, clock)
    unknown = [s for s in symbols if s not in instruments]
    if unknown:
        raise StartupError(f"unknown symbols (no instrument filters): {', '.join(unknown)}")
    log_dir = opts.log_dir or default_log_dir(settings, opts.mode, clock.now())
    bot = build_bot(settings, clock, exchange, instruments=instruments, log_dir=log_dir, symbols=symbols, sinks=sinks)
    feed = BybitPublicFeed(settings, clock, symbols, url=opts.ws_url, resync_source=bot.storage.resync_requested,
                           on_books_lost=bot.storage.invalidate)
    limits = opts.limits or KillSwitchLimits.from_settings(settings)
    monitor = Monitor(bot, feed, clock, stop=bot.stop, limits=limits, status_every_sec=opts.status_every_sec)
    cycle = None
    if settings.backtest.enable_backtest:
        cycle = CycleService(bot, base, CycleConfig(symbols=symbols, overlay=opts.overlay.resolve(),
                                                         ws_url=opts.ws_url))
    return LiveRun(opts, bot, exchange, feed, monitor, log_dir, cycle)


async def drive(run: LiveRun) -> int:
    """Run until stopped (signal, ``--minutes``, kill switch); returns the exit code (0, or 3 after the kill switch)."""
    opts, bot, feed, monitor = run.opts, run.bot, run.feed, run.monitor
    clock = bot.clock
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals_seen: list[str] = []
    stopping: list[asyncio.Task[None]] = []

    def on_signal(name: str) -> None:
        signals_seen.append(name)
        if len(signals_seen) > 1 and main is not None:  # a second signal: stop waiting for entries to finish
            logger.warning("{} again: cancelling the run", name)
            main.cancel()
            return
        logger.warning("{}: stopping (no new entries, resting entries cancelled, protected positions stay)", name)
        monitor.log_status()
        stopping.append(loop.create_task(bot.stop(f"signal {name}")))

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on the main thread / not supported
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append(sig)
    until = clock.now() + opts.minutes * 60.0 if opts.minutes else None

    async def watch() -> None:
        logger.info("naporrr {} mode: symbols {}, public feed {}, logs {}{}", opts.mode, ", ".join(bot.symbols),
                    feed.url, run.log_dir, f", stopping after {opts.minutes:g} min" if opts.minutes else "")
        await monitor.run()

    monitor.attach()
    watcher = asyncio.create_task(watch(), name="monitor")
    cycle = asyncio.create_task(run.cycle.run(), name="backtest-cycle-service") if run.cycle else None
    try:
        await bot.run(feed, until=until)
    except asyncio.CancelledError:
        if not signals_seen:
            raise
    finally:
        for t in (watcher, cycle):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        monitor.detach()
        for sig in installed:
            loop.remove_signal_handler(sig)
        stop_exchange = getattr(run.exchange, "stop", None)  # the Bybit adapter's private stream; not the simulator
        if stop_exchange is not None:
            with contextlib.suppress(Exception):
                await stop_exchange()
    logger.info("naporrr {} mode stopped ({}); {}", opts.mode, bot.stop_reason or "cancelled", monitor.status())
    return EXIT_KILLED if monitor.tripped else EXIT_OK


async def run_async(opts: RunOptions, settings: Settings, *, clock: Clock | None = None) -> int:
    return await drive(await assemble(opts, settings, clock=clock))


def run(opts: RunOptions, settings: Settings) -> int:
    """Blocking entry point for ``python -m bot``; a :class:`StartupError` becomes one line and exit code 2."""
    try:
        return asyncio.run(run_async(opts, settings))
    except StartupError as e:
        print(f"python -m bot: {e}", file=sys.stderr)
        return EXIT_STARTUP
