"""The run engine: one symbol's replay in one process, many symbols fanned out over a process pool.

``_test_on_symbol`` is the whole contract of a replay: load validated candles, build the synthetic market for them,
start a virtual-time loop at the first candle's open, assemble the bot with :func:`bot.app.build_bot` (the live
composition root, unmodified) against the simulated exchange, release the market on the virtual clock, then turn the
bot's own trades.csv and the exchange's ledger into trades, equity and metrics.

No-repaint modes are settings, never branches in ``bot/`` (ARCHITECTURE.md §5): strict mode sets the decision interval
to the candle length with one batch holding every symbol, so the orchestrator's ticks land on candle opens and each
decision sees only earlier candles' events.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.app import build_bot
from bot.clock import LoopClock
from bot.instruments import InstrumentRegistry
from replay.artifacts import array_hash, write_csv, write_json
from replay.data import load_segments
from replay.exchange import SimExchange
from replay.feed import ScheduledFeed
from replay.metrics import ClosedTrade, EquityPoint, compute_metrics
from replay.synthetic import GeneratorParams, SymbolProfile, SyntheticMarketBuilder, profile_from_candles
from replay.synthetic.candles import Candles
from replay.virtual_loop import VirtualTimeLoop
from settings import Settings
from settings.search import with_overrides

CANDLE_SEC = 60.0
EQUITY_SAMPLE_SEC = 300.0
TRADE_COLUMNS = ("position_id", "symbol", "side", "qty", "entry_price", "exit_price", "opened_at", "closed_at",
                 "hold_sec", "reason", "sl", "tp", "maker_qty", "taker_qty", "fees", "gross_pnl", "net_pnl",
                 "pnl_bps", "norm_pnl_usdt")


@dataclass(frozen=True, slots=True)
class SymbolJob:
    """Everything one worker process needs; picklable (settings travel as JSON)."""

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


@dataclass(slots=True)
class SymbolResult:
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


def replay_settings(settings: Settings, symbols: Sequence[str], log_dir: Path) -> Settings:
    """The settings the bot runs with in replay: its symbols, its log folder and, in strict mode, candle cadence."""
    updates: dict[str, Any] = {"trading.trade_pairs": list(symbols), "data_retention.log_dir": str(log_dir)}
    if settings.backtest.strict_repainting_check:
        updates["trading.decision_interval_sec"] = CANDLE_SEC
        updates["trading.symbol_batch_size"] = len(symbols)
    return with_overrides(settings, updates)


def _f(x: str) -> float:
    return float(x) if x not in ("", None) else 0.0


def read_closed_trades(path: Path) -> list[ClosedTrade]:
    """Round trips from the bot's own trades.csv (OPEN row + CLOSE row per position_id)."""
    if not path.exists():
        return []
    opens: dict[str, dict[str, str]] = {}
    out: list[ClosedTrade] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["event"] == "OPEN":
                opens[row["position_id"]] = row
                continue
            if row["event"] != "CLOSE":
                continue
            o = opens.get(row["position_id"], row)
            entry = _f(row["entry_price"])
            closed = _ts(row["ts"])
            hold = _f(row["hold_sec"])
            out.append(ClosedTrade(
                position_id=row["position_id"], symbol=row["symbol"], side=row["side"], qty=_f(row["qty"]),
                entry_price=entry, exit_price=_f(row["price"]), opened_ts=closed - hold, closed_ts=closed,
                reason=row["reason"], fees=_f(row["fees"]), gross_pnl=_f(row["gross_pnl"]), net_pnl=_f(row["net_pnl"]),
                maker_qty=_f(row["maker_qty"]), taker_qty=_f(row["taker_qty"]), sl=_f(o.get("sl", "") or row["sl"]),
                tp=_f(o.get("tp", "") or row["tp"])))
    return out


def with_entry_slippage(trades: list[ClosedTrade], records: Sequence[Any]) -> list[ClosedTrade]:
    """Attach each trade's entry slippage: average entry vs the book mid when the entry was decided, in bps, signed
    so that positive is worse for the trade."""
    mids = {r.position_id: r.decision_mid for r in records if getattr(r, "decision_mid", None)}
    out = []
    for t in trades:
        mid = mids.get(t.position_id)
        if mid:
            sign = 1.0 if t.side in ("LONG", "Buy") else -1.0
            t = dataclasses.replace(t, entry_slippage_bps=sign * (t.entry_price - mid) / mid * 1e4)
        out.append(t)
    return out


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _replay(settings: Settings, symbol: str, candles: Candles, builder: SyntheticMarketBuilder,
                  instruments: InstrumentRegistry, log_dir: Path, seed: int,
                  progress: Callable[[float], None] | None, observers: Sequence[Callable[..., None]] = ()
                  ) -> tuple[list[EquityPoint], ScheduledFeed, int, Any, Any]:
    loop = asyncio.get_running_loop()
    clock = LoopClock(loop.time(), loop)
    exchange = SimExchange(settings, clock, instruments, seed=seed)
    sinks = [functools.partial(obs, clock) for obs in observers]
    bot = build_bot(settings, clock, exchange, instruments=instruments, log_dir=log_dir, symbols=[symbol],
                    sinks=sinks)
    feed = ScheduledFeed(clock, builder.iter_batches(candles), sinks=[exchange.on_market], progress=progress)
    equity: list[EquityPoint] = []
    end_ts = float(candles.open_time_ms[-1]) / 1000.0 + CANDLE_SEC

    async def sample_equity() -> None:
        t = clock.now()
        while t <= end_ts:
            equity.append(EquityPoint(t, float(exchange.equity())))
            await asyncio.sleep(EQUITY_SAMPLE_SEC)
            t = clock.now()

    sampler = asyncio.create_task(sample_equity())
    try:
        await bot.run(feed, until=end_ts)
    finally:
        sampler.cancel()
    equity.append(EquityPoint(clock.now(), float(exchange.equity())))
    open_at_end = sum(1 for p in await exchange.get_positions() if p.size > 0)
    return equity, feed, open_at_end, exchange, bot.executor


def run_symbol(job: SymbolJob, observers: Sequence[Callable[..., None]] = ()) -> SymbolResult:
    """One symbol's replay, start to finish, in this process (the unit a process pool runs).

    ``observers`` are called as ``observer(clock, batch)`` with every batch the bot's storage applied (tests use this
    to prove the bot never sees an event stamped after its clock).
    """
    settings = Settings.model_validate_json(job.settings_json)
    instruments = InstrumentRegistry.bundled()
    instrument = instruments[job.symbol]
    extra = {"data_dir": Path(job.data_dir)} if job.data_dir else {}
    segments = load_segments(job.symbol, days=job.days, start=job.start, end=job.end, settings=settings, **extra)
    candles = join_segments(segments)
    out_dir = Path(job.out_dir)
    log_dir = out_dir / f"bot_{job.symbol}"
    log_dir.mkdir(parents=True, exist_ok=True)
    rsettings = replay_settings(settings, [job.symbol], log_dir)
    profile: SymbolProfile = profile_from_candles(candles, instrument)
    params = GeneratorParams.load_defaults()
    builder = SyntheticMarketBuilder(instrument, profile, params, seed=job.seed,
                                     points_per_candle=settings.backtest.intrabar_points_per_candle,
                                     pessimistic=job.pessimistic)
    start_ts = float(candles.open_time_ms[0]) / 1000.0
    end_ts = float(candles.open_time_ms[-1]) / 1000.0 + CANDLE_SEC
    bar = _progress_bar(job.symbol, start_ts, end_ts, job.progress_position) if job.progress else None

    def on_progress(ts: float) -> None:
        if bar is not None:
            bar.update(round((ts - start_ts) / 86_400.0, 4) - bar.n)

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start_ts)) as runner:
        equity, feed, open_at_end, exchange, executor = runner.run(
            _replay(rsettings, job.symbol, candles, builder, instruments, log_dir, job.seed, on_progress, observers))
    if bar is not None:
        _close_bar(bar, job.progress_position)
    trades = with_entry_slippage(read_closed_trades(log_dir / "trades.csv"), executor.closed)
    attempts = len(executor.closed) + len(executor.dropped) + executor.live_count()
    metrics = compute_metrics(trades, equity, start_ts=start_ts, end_ts=end_ts,
                              initial_equity=settings.backtest.initial_balance_usdt,
                              entry_attempts=attempts, entries_filled=attempts - len(executor.dropped))
    metrics["open_positions_at_end"] = open_at_end
    metrics["ledger_reconciles"] = bool(exchange.ledger.reconcile())
    data_hash = array_hash(candles.open_time_ms, candles.open, candles.high, candles.low, candles.close,
                           candles.volume)
    gaps = [[_iso(float(a.open_time_ms[-1]) / 1000.0 + CANDLE_SEC), _iso(float(b.open_time_ms[0]) / 1000.0)]
            for a, b in itertools.pairwise(segments)]
    metrics["data_gaps"] = gaps
    return SymbolResult(job.symbol, metrics, trades, equity, data_hash, start_ts, end_ts, feed.released_events,
                        feed.released_batches, open_at_end, {"profile": profile.as_dict(), "gaps": gaps})


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


def _progress_bar(symbol: str, start_ts: float, end_ts: float, position: int | None = None) -> Any:
    """A tqdm bar in simulated days. ``position``: its own terminal line among several bars (one per process).

    Several bars share the cursor across processes, so each is drawn on its line and cleared when done (a bar left
    behind would write a newline and shift the others' lines); the only bar stays, as before.
    """
    from tqdm import tqdm

    return tqdm(total=round((end_ts - start_ts) / 86_400.0, 4), unit="day", desc=f"replay {symbol}",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} simulated days "
                           "[{elapsed}<{remaining}]", position=position, leave=position is None)


def _close_bar(bar: Any, position: int | None) -> None:
    """Close a bar. One of several is cleared on its line; tqdm then leaves the shared cursor mid-line, so return it."""
    bar.close()
    if position:
        with bar.get_lock():
            bar.fp.write("\r")
            bar.fp.flush()


def write_symbol_artifacts(run_dir: Path, result: SymbolResult, settings: Settings) -> None:
    """trades_{S}.csv, equity_{S}.csv, metrics_{S}.json: byte-stable for the same data, settings and seed."""
    bt = settings.backtest
    if bt.save_trade_log:
        write_csv(run_dir / f"trades_{result.symbol}.csv", TRADE_COLUMNS, (_trade_row(t) for t in result.trades))
    if bt.save_equity_curve:
        write_csv(run_dir / f"equity_{result.symbol}.csv", ("ts", "equity"),
                  ((_iso(p.ts), f"{p.equity:.8f}") for p in result.equity))
    write_json(run_dir / f"metrics_{result.symbol}.json", result.metrics)


def _iso(ts: float) -> str:
    from bot.timefmt import iso_utc

    return iso_utc(ts)


def _trade_row(t: ClosedTrade) -> list[str]:
    from replay.metrics import NORMALISED_NOTIONAL_USDT

    return [t.position_id, t.symbol, t.side, f"{t.qty:.10g}", f"{t.entry_price:.10g}", f"{t.exit_price:.10g}",
            _iso(t.opened_ts), _iso(t.closed_ts), f"{t.closed_ts - t.opened_ts:.3f}", t.reason, f"{t.sl:.10g}",
            f"{t.tp:.10g}", f"{t.maker_qty:.10g}", f"{t.taker_qty:.10g}", f"{t.fees:.8f}", f"{t.gross_pnl:.8f}",
            f"{t.net_pnl:.8f}", f"{t.pnl_bps:.4f}", f"{t.pnl_bps * NORMALISED_NOTIONAL_USDT / 1e4:.6f}"]


def run_jobs(jobs: Sequence[SymbolJob], executor: Executor | None = None) -> list[SymbolResult]:
    """Run symbol jobs in order; more than one fans out over a process pool (one replay = one process)."""
    if len(jobs) <= 1 and executor is None:
        return [run_symbol(j) for j in jobs]
    bars = [j for j in jobs if j.progress]
    if len(bars) > 1:  # one terminal line per bar, in job order
        line = itertools.count()
        jobs = [dataclasses.replace(j, progress_position=next(line)) if j.progress else j for j in jobs]
    owns = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=min(len(jobs), _cpu_count()), **_shared_bar_lock(bars))
    try:
        return list(pool.map(run_symbol, jobs))
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


def aggregate(results: Mapping[str, SymbolResult], initial_equity: float) -> dict[str, Any]:
    """Portfolio view: each symbol ran on its own account of ``initial_equity``; totals add up PnL and trades."""
    trades = [t for r in results.values() for t in r.trades]
    trades.sort(key=lambda t: (t.closed_ts, t.symbol, t.position_id))
    if not results:
        return {}
    start = min(r.start_ts for r in results.values())
    end = max(r.end_ts for r in results.values())
    # Sum the symbols' equity curves on a common grid (each sampled every EQUITY_SAMPLE_SEC from its start).
    grid: dict[float, float] = {}
    for r in results.values():
        for p in r.equity:
            grid[p.ts] = grid.get(p.ts, 0.0) + p.equity - initial_equity
    eq = [EquityPoint(ts, initial_equity * len(results) + v) for ts, v in sorted(grid.items())]
    m = compute_metrics(trades, eq, start_ts=start, end_ts=end, initial_equity=initial_equity * len(results))
    m["symbols"] = sorted(results)
    return m
