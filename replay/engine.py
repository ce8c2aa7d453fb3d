"""The run engine: one simulated account per process, holding one symbol or a whole portfolio.

:func:`run_account` is the whole contract of a replay: load validated candles for every symbol, build each symbol's
synthetic market, start a virtual-time loop at the first candle's open, assemble **one** bot with
:func:`bot.app.build_bot` (the live composition root, unmodified) against **one** simulated exchange, release the
merged market feed on the virtual clock, then turn the bot's own trades.csv and the exchange's ledger into trades,
equity and metrics: per symbol (its contribution to the account, :mod:`replay.portfolio`) and for the account.

Cadence is the live one (ARCHITECTURE.md §5, STRATEGY.md §10): the bot's ``trade_pairs`` are the configured ones (plus
any replayed symbol they lack), so batch rotation gives every symbol its live revisit period ⌈pairs/batch⌉·interval
(8 s with the default 10 pairs) even when only one of them is replayed; symbols without data are skipped by the bot
as live skips a symbol without a book.

No-repaint modes are settings, never branches in ``bot/``:

- strict (``backtest.strict_repainting_check``, default): ``trading.act_on_closed_candles`` on with 60 s candles.
  Every evaluation runs at its live tick (analyzer state evolves exactly as live; signals.csv has a row per live
  evaluation), but a signal's action (entry, signal-driven exit, REVERSE) waits for the close of the candle it was
  computed in and is taken there, so no decision uses the candle in progress (see :mod:`bot.orchestrator`).
- live cadence: the bot also acts inside candles, exactly as live; the report adds the generator-dependence runs.

A portfolio (``PortfolioJob``) is one bot trading all its symbols on one account (shared balance, max_open_positions
across symbols, as live); ``--isolated`` fans ``SymbolJob``s (one account each) out over a process pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from bot.adapters.simulated import SimExchange
from bot.app import Bot, build_bot
from bot.clock import LoopClock
from bot.events import EventBatch, TradeBatch
from bot.instruments import InstrumentRegistry, to_decimal
from bot.timefmt import iso_utc
from replay.artifacts import array_hash
from replay.data import load_segments
from replay.feed import ScheduledFeed
from replay.metrics import ClosedTrade, EquityPoint, compute_metrics
from replay.portfolio import Contributions, aggregate, correlation
from replay.results import (
    TRADE_COLUMNS,
    read_closed_trades,
    trade_row,
    with_entry_slippage,
    write_symbol_artifacts,
)
from replay.synthetic import GeneratorParams, SymbolProfile, SyntheticMarketBuilder, profile_from_candles
from replay.synthetic.candles import Candles
from replay.virtual_loop import VirtualTimeLoop
from settings import Settings
from settings.search import with_overrides

__all__ = ["CANDLE_SEC", "EQUITY_SAMPLE_SEC", "TRADE_COLUMNS", "PortfolioJob", "PortfolioResult", "SymbolJob",
           "SymbolResult", "aggregate", "bot_pairs", "join_segments", "read_closed_trades", "replay_settings",
           "run_account", "run_jobs", "run_portfolio", "run_symbol", "with_entry_slippage", "write_symbol_artifacts"]

CANDLE_SEC = 60.0
EQUITY_SAMPLE_SEC = 300.0
_trade_row = trade_row  # the name tests and older callers import


@dataclass(frozen=True, slots=True)
class SymbolJob:
    """One symbol on its own account; picklable (settings travel as JSON)."""

    symbol: str
    settings_json: str
    out_dir: str
    seed: int
    days: float | None = None
    start: str | None = None
    end: str | None = None
    pessimistic: bool = False
    progress: bool = False
    data_dir: str | None = None  # a folder of {SYMBOL}_1m_*.csv.gz instead of the bundled data
    progress_position: int | None = None  # this job's line among several bars (run_jobs sets it); None: the only one
    calibration_json: str | None = None  # generator coefficients of ``--calibration FILE`` (its JSON text)

    @property
    def symbols(self) -> tuple[str, ...]:
        return (self.symbol,)


@dataclass(frozen=True, slots=True)
class PortfolioJob:
    """Several symbols traded by one bot on one account; picklable."""

    symbols: tuple[str, ...]
    settings_json: str
    out_dir: str
    seed: int
    days: float | None = None
    start: str | None = None
    end: str | None = None
    pessimistic: bool = False
    progress: bool = False
    data_dir: str | None = None
    progress_position: int | None = None  # as SymbolJob's
    calibration_json: str | None = None  # generator coefficients of ``--calibration FILE`` (its JSON text)


Job = SymbolJob | PortfolioJob


@dataclass(slots=True)
class SymbolResult:
    """One symbol's replay. In a portfolio, ``equity`` is its contribution to the shared account."""

    symbol: str
    metrics: dict[str, Any]
    trades: list[ClosedTrade]
    equity: list[EquityPoint]
    data_hash: str
    start_ts: float
    end_ts: float
    events: int
    batches: int
    open_positions_at_end: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PortfolioResult:
    """One account's replay: the account's metrics and equity, and a row per symbol."""

    symbols: dict[str, SymbolResult]
    metrics: dict[str, Any]
    equity: list[EquityPoint]
    correlation: dict[str, Any]
    start_ts: float
    end_ts: float
    events: int
    batches: int


@dataclass(slots=True)
class _Market:
    symbol: str
    candles: Candles
    segments: list[Candles]
    builder: SyntheticMarketBuilder
    profile: SymbolProfile
    events: int = 0
    batches: int = 0
    trades: int = 0  # market trades (rows of the TradeBatches)

    @property
    def start_ts(self) -> float:
        return float(self.candles.open_time_ms[0]) / 1000.0

    @property
    def end_ts(self) -> float:
        return float(self.candles.open_time_ms[-1]) / 1000.0 + CANDLE_SEC

    def batches_iter(self) -> Iterator[tuple[float, EventBatch]]:
        for ts, batch in self.builder.iter_batches(self.candles):
            self.batches += 1
            n = len(batch)
            self.events += n
            if n == 1:  # the usual item: one event, no generator needed
                e = batch[0]
                if e.__class__ is TradeBatch:
                    self.trades += len(e.ts)  # len(e) without the Python-level __len__ call
            else:
                self.trades += sum(len(e.ts) for e in batch if e.__class__ is TradeBatch)
            yield ts, batch


def bot_pairs(settings: Settings, symbols: Sequence[str]) -> list[str]:
    """The replayed bot's ``trade_pairs``: the configured ones in order, then any replayed symbol they lack. Batch
    rotation over this list is what gives each symbol its live revisit period."""
    pairs = list(settings.trading.trade_pairs)
    return pairs + [s for s in symbols if s not in pairs]


def replay_settings(settings: Settings, symbols: Sequence[str], log_dir: Path) -> Settings:
    """The settings the bot runs with in replay: live ``trade_pairs`` (plus the replayed symbols), its log folder and,
    in strict mode, actions at candle closes (``trading.act_on_closed_candles``)."""
    updates: dict[str, Any] = {"trading.trade_pairs": bot_pairs(settings, symbols),
                               "data_retention.log_dir": str(log_dir)}
    if settings.backtest.strict_repainting_check:
        updates["trading.act_on_closed_candles"] = True
        updates["trading.candle_sec"] = CANDLE_SEC
    return with_overrides(settings, updates)


def ordered_symbols(settings: Settings, symbols: Sequence[str]) -> list[str]:
    """The replayed symbols in the bot's evaluation order (so ``--symbols B,A`` and ``A,B`` are the same run)."""
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols given twice: {next(s for s in symbols if list(symbols).count(s) > 1)}")
    pairs = bot_pairs(settings, symbols)
    return sorted(symbols, key=pairs.index)


def log_dir_name(symbols: Sequence[str]) -> str:
    return "bot_" + "-".join(symbols)


def merged(markets: Sequence[_Market]) -> Iterator[tuple[float, EventBatch]]:
    """All markets' batches in release order; equal release times keep the markets' order (deterministic)."""
    if len(markets) == 1:
        return markets[0].batches_iter()
    return heapq.merge(*(m.batches_iter() for m in markets), key=itemgetter(0))


async def _replay(settings: Settings, markets: Sequence[_Market], instruments: InstrumentRegistry, log_dir: Path,
                  seed: int, end_ts: float, progress: Callable[[float], None] | None,
                  observers: Sequence[Callable[..., None]], inspect: Callable[[Bot], None] | None,
                  batches: Iterable[tuple[float, EventBatch]] | None = None
                  ) -> tuple[list[EquityPoint], dict[str, list[EquityPoint]], ScheduledFeed, SimExchange, Bot,
                             set[str]]:
    loop = asyncio.get_running_loop()
    clock = LoopClock(loop.time(), loop)
    exchange = SimExchange(settings, clock, instruments, seed=seed)
    sinks = [functools.partial(obs, clock) for obs in observers]
    bot = build_bot(settings, clock, exchange, instruments=instruments, log_dir=log_dir, sinks=sinks)
    if inspect is not None:
        inspect(bot)
    source = merged(markets) if batches is None else batches  # ``batches``: a recorded stream (replay.recorded)
    feed = ScheduledFeed(clock, source, sinks=[exchange.on_market], progress=progress,
                         symbols=[m.symbol for m in markets])
    syms = [m.symbol for m in markets]
    contrib = Contributions(exchange, syms)
    start = to_decimal(settings.backtest.initial_balance_usdt)
    samples: list[tuple[float, Decimal, dict[str, Decimal]]] = []

    def sample(ts: float) -> None:
        samples.append((ts, exchange.equity(), contrib.pnl() if len(syms) > 1 else {}))

    async def sample_equity() -> None:
        t = clock.now()
        while t <= end_ts:
            sample(t)
            await asyncio.sleep(EQUITY_SAMPLE_SEC)
            t = clock.now()

    sampler = asyncio.create_task(sample_equity())
    try:
        await bot.run(feed, until=end_ts)
    finally:
        sampler.cancel()
    while samples and samples[-1][0] >= end_ts:  # one row per time: the final state replaces a sample at the end
        samples.pop()
    sample(end_ts)
    open_syms = {p.symbol for p in await exchange.get_positions() if p.size > 0}
    account = [EquityPoint(ts, float(eq)) for ts, eq, _ in samples]
    if len(syms) == 1:
        curves = {syms[0]: account}  # a lone symbol's contribution is the account itself
    else:
        curves = {s: [EquityPoint(ts, float(start + pnl[s])) for ts, _, pnl in samples] for s in syms}
    return account, curves, feed, exchange, bot, open_syms


def _load_market(symbol: str, job: Job, settings: Settings, instruments: InstrumentRegistry) -> _Market:
    extra = {"data_dir": Path(job.data_dir)} if job.data_dir else {}
    segments = load_segments(symbol, days=job.days, start=job.start, end=job.end, settings=settings, **extra)
    candles = join_segments(segments)
    instrument = instruments[symbol]
    profile = profile_from_candles(candles, instrument)
    builder = SyntheticMarketBuilder(instrument, profile, GeneratorParams.load_defaults(), seed=job.seed,
                                     points_per_candle=settings.backtest.intrabar_points_per_candle,
                                     pessimistic=job.pessimistic)
    if job.calibration_json is not None:
        builder = builder.calibrate_from_ws_stats(json.loads(job.calibration_json))
    return _Market(symbol, candles, list(segments), builder, profile)


def run_account(job: Job, observers: Sequence[Callable[..., None]] = (),
                inspect: Callable[[Bot], None] | None = None) -> PortfolioResult:
    """One account's replay, start to finish, in this process (the unit a process pool runs).

    ``observers`` are called as ``observer(clock, batch)`` with every batch the bot's storage applied (tests use this
    to prove the bot never sees an event stamped after its clock); ``inspect`` gets the assembled bot before it runs
    (tests use it to record the orchestrator's decisions).
    """
    settings = Settings.model_validate_json(job.settings_json)
    instruments = InstrumentRegistry.bundled()
    symbols = ordered_symbols(settings, job.symbols)
    markets = [_load_market(s, job, settings, instruments) for s in symbols]
    out_dir = Path(job.out_dir)
    log_dir = out_dir / log_dir_name(symbols)
    log_dir.mkdir(parents=True, exist_ok=True)
    rsettings = replay_settings(settings, symbols, log_dir)
    start_ts = min(m.start_ts for m in markets)
    end_ts = max(m.end_ts for m in markets)
    bar = _progress_bar("+".join(symbols), start_ts, end_ts, job.progress_position) if job.progress else None

    def on_progress(ts: float) -> None:
        if bar is not None:
            bar.update(round((ts - start_ts) / 86_400.0, 4) - bar.n)

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start_ts)) as runner:
        account, curves, feed, exchange, bot, open_syms = runner.run(
            _replay(rsettings, markets, instruments, log_dir, job.seed, end_ts, on_progress, observers, inspect))
    if bar is not None:
        _close_bar(bar, job.progress_position)
    facts = {}
    for m in markets:
        gaps = [[iso_utc(float(a.open_time_ms[-1]) / 1000.0 + CANDLE_SEC), iso_utc(float(b.open_time_ms[0]) / 1000.0)]
                for a, b in itertools.pairwise(m.segments)]
        c = m.candles
        facts[m.symbol] = SymbolFacts(m.start_ts, m.end_ts, array_hash(c.open_time_ms, c.open, c.high, c.low, c.close,
                                                                       c.volume), m.events, m.batches, gaps,
                                      {"profile": m.profile.as_dict(), "gaps": gaps, "market_trades": m.trades,
                                       "candles": m.candles})  # for the report's chart
    return settle(settings, bot, exchange, log_dir, account, curves, open_syms, facts, start_ts, end_ts, feed)


@dataclass(frozen=True, slots=True)
class SymbolFacts:
    """What the feed knows about one symbol's data, for its result row (synthetic or recorded)."""

    start_ts: float
    end_ts: float
    data_hash: str
    events: int
    batches: int
    gaps: list[list[str]]
    extra: dict[str, Any]


def settle(settings: Settings, bot: Bot, exchange: Any, log_dir: Path, account: list[EquityPoint],
           curves: dict[str, list[EquityPoint]], open_syms: set[str], facts: dict[str, SymbolFacts], start_ts: float,
           end_ts: float, feed: Any) -> PortfolioResult:
    """After the loop: the closed trades, per-symbol and account metrics, the ledger check — one account's result."""
    executor = bot.executor
    trades = with_entry_slippage(read_closed_trades(log_dir / "trades.csv"), executor.closed)
    reconciles = bool(exchange.ledger.reconcile())
    initial = settings.backtest.initial_balance_usdt
    results: dict[str, SymbolResult] = {}
    total_attempts = total_filled = 0
    for sym, f in facts.items():
        closed = sum(1 for r in executor.closed if r.symbol == sym)
        dropped = sum(1 for r in executor.dropped if r.symbol == sym)
        attempts = closed + dropped + (executor.record(sym) is not None)
        total_attempts += attempts
        total_filled += attempts - dropped
        sym_trades = [t for t in trades if t.symbol == sym]
        metrics = compute_metrics(sym_trades, curves[sym], start_ts=f.start_ts, end_ts=f.end_ts,
                                  initial_equity=initial, entry_attempts=attempts, entries_filled=attempts - dropped)
        metrics["entries_filled"] = attempts - dropped
        metrics["open_positions_at_end"] = int(sym in open_syms)
        metrics["ledger_reconciles"] = reconciles
        metrics["data_gaps"] = f.gaps
        results[sym] = SymbolResult(sym, metrics, sym_trades, curves[sym], f.data_hash, f.start_ts, f.end_ts, f.events,
                                    f.batches, int(sym in open_syms), f.extra)
    pm = compute_metrics(trades, account, start_ts=start_ts, end_ts=end_ts, initial_equity=initial,
                         entry_attempts=total_attempts, entries_filled=total_filled)
    pm["entries_filled"] = total_filled
    pm["symbols"] = list(facts)
    pm["open_positions_at_end"] = len(open_syms)
    pm["ledger_reconciles"] = reconciles
    return PortfolioResult(results, pm, account, correlation(curves), start_ts, end_ts, feed.released_events,
                           feed.released_batches)


def run_symbol(job: SymbolJob, observers: Sequence[Callable[..., None]] = (),
               inspect: Callable[[Bot], None] | None = None) -> SymbolResult:
    """One symbol on its own account (its equity is the account's)."""
    return run_account(job, observers, inspect).symbols[job.symbol]


def run_portfolio(job: PortfolioJob, observers: Sequence[Callable[..., None]] = (),
                  inspect: Callable[[Bot], None] | None = None) -> PortfolioResult:
    """Several symbols, one bot, one account."""
    return run_account(job, observers, inspect)


def run_job(job: Job) -> SymbolResult | PortfolioResult:
    """A pool worker's entry point: a ``SymbolJob`` gives its ``SymbolResult``, a ``PortfolioJob`` its
    ``PortfolioResult``."""
    return run_symbol(job) if isinstance(job, SymbolJob) else run_portfolio(job)


def join_segments(segments: Sequence[Candles]) -> Candles:
    """One candle series from contiguous segments (``gap_policy='split'``).

    Nothing is interpolated: during a gap the feed releases no market event at all, as in an exchange outage. The
    bot's book goes stale (it skips the symbol), the exchange fills nothing from the tape, and the generator re-sends a
    full book snapshot when data resumes. A market order sent during a gap (a time exit) still fills on the last book.
    """
    if len(segments) == 1:
        return segments[0]
    first = segments[0]
    return Candles(first.symbol, *(np.concatenate([getattr(c, f) for c in segments])
                                   for f in ("open_time_ms", "open", "high", "low", "close", "volume")))


def _progress_bar(label: str, start_ts: float, end_ts: float, position: int | None = None) -> Any:
    """A tqdm bar in simulated days. ``position``: its own terminal line among several bars (one per process).

    Several bars share the cursor across processes, so each is drawn on its line and cleared when done (a bar left
    behind would write a newline and shift the others' lines); the only bar stays, as before.
    """
    from tqdm import tqdm

    return tqdm(total=round((end_ts - start_ts) / 86_400.0, 4), unit="day", desc=f"replay {label}",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} simulated days "
                           "[{elapsed}<{remaining}]", position=position, leave=position is None)


def _close_bar(bar: Any, position: int | None) -> None:
    """Close a bar. One of several is cleared on its line; tqdm then leaves the shared cursor mid-line, so return it."""
    bar.close()
    if position:
        with bar.get_lock():
            bar.fp.write("\r")
            bar.fp.flush()


def run_jobs(jobs: Sequence[Job], executor: Executor | None = None) -> list[Any]:
    """Run jobs in order; more than one fans out over a process pool (one account = one process)."""
    if len(jobs) <= 1 and executor is None:
        return [run_job(j) for j in jobs]
    bars = [j for j in jobs if j.progress]
    if len(bars) > 1:  # one terminal line per bar, in job order
        line = itertools.count()
        jobs = [dataclasses.replace(j, progress_position=next(line)) if j.progress else j for j in jobs]
    owns = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=min(len(jobs), _cpu_count()), **_shared_bar_lock(bars))
    try:
        return list(pool.map(run_job, jobs))
    finally:
        if owns:
            pool.shutdown()


def _shared_bar_lock(bars: Sequence[SymbolJob]) -> dict[str, Any]:
    """Pool arguments giving every worker one tqdm write lock, so bars in different processes never interleave."""
    if not bars:
        return {}
    from multiprocessing import RLock

    from tqdm import tqdm

    tqdm.set_lock(RLock())
    return {"initializer": tqdm.set_lock, "initargs": (tqdm.get_lock(),)}


def _cpu_count() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))

