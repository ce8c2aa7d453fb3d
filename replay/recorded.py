"""``python -m replay --recorded FILE``: the real bot over a recorded WebSocket session, in virtual time.

The recording's frames go through the live collector's core (:mod:`replay.recorded_source`) onto the bot's feed
queue on the virtual clock (the real ``DataStorage`` via the ``FeedConsumer``, as with the synthetic feed), and the
same batches reach the simulated exchange, which therefore fills against the **recorded** book and tape: no synthetic
market is built in this mode. Everything after the feed (one bot on one account, live cadence and ``trade_pairs``,
strict no-repaint via ``trading.act_on_closed_candles``, trades, equity, metrics, signals.csv, report, manifest) is
the synthetic replay's own code (:func:`replay.engine._replay`, :class:`replay.backtest.BacktestEngine`).

Settings in this mode: ``backtest.data_source = "recorded"`` and ``websocket.subscription_depth`` = the recording's
book depth (the bot sees the stream it was recorded with). The run's manifest names the recording and its sha256,
which is also each symbol's ``data_hash``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.app import Bot
from bot.events import EventBatch, TradeBatch
from bot.instruments import InstrumentRegistry
from bot.timefmt import iso_utc
from replay.backtest import BacktestEngine, RunOutcome
from replay.engine import (
    PortfolioJob,
    PortfolioResult,
    SymbolFacts,
    SymbolResult,
    _replay,
    log_dir_name,
    ordered_symbols,
    replay_settings,
    settle,
)
from replay.recorded_source import RecordingError, RecordingInfo, recorded_batches, scan_recording
from replay.synthetic.candles import Candles
from replay.virtual_loop import VirtualTimeLoop
from settings import Settings
from settings.search import with_overrides

__all__ = [
    "RecordedBacktest",
    "RecordingError",
    "recorded_settings",
    "replay_batches",
    "run_recorded",
    "select_symbols",
]

SIMPLIFICATIONS = (
    "recorded WebSocket frames through the live collector's session; the simulated exchange fills "
    "against the recorded book and tape; a recording cannot resubscribe (after a gap the book waits "
    "for the next recorded snapshot); positions open at the end are marked to market, not closed"
)


@dataclass(frozen=True, slots=True)
class _Sym:
    """What :func:`replay.engine._replay` reads of a market: its symbol (the batches come separately)."""

    symbol: str


class _MinuteBars:
    """1m OHLCV of one symbol's recorded prints (exchange time), built as the feed plays: the report's price chart."""

    def __init__(self) -> None:
        self.rows: dict[int, list[float]] = {}  # minute open (ms) → [open, high, low, close, volume]

    def add(self, t: TradeBatch) -> None:
        minutes = (t.ts * 1000.0).astype(np.int64) // 60_000 * 60_000
        for m in np.unique(minutes).tolist():
            sel = minutes == m
            px, vol = t.price[sel], float(t.size[sel].sum())
            row = self.rows.get(m)
            if row is None:
                self.rows[m] = [float(px[0]), float(px.max()), float(px.min()), float(px[-1]), vol]
            else:
                row[1], row[2] = max(row[1], float(px.max())), min(row[2], float(px.min()))
                row[3], row[4] = float(px[-1]), row[4] + vol

    def candles(self, symbol: str) -> Candles | None:
        if not self.rows:
            return None
        keys = sorted(self.rows)
        cols = np.array([self.rows[k] for k in keys], dtype=np.float64)
        return Candles(symbol, np.array(keys, dtype=np.int64), *(cols[:, i].copy() for i in range(5)))


def select_symbols(info: RecordingInfo, wanted: Sequence[str] | None) -> list[str]:
    """``wanted`` (default: every symbol in the recording), each checked against the recording and instruments."""
    symbols = list(wanted) if wanted else list(info.symbols)
    missing = [s for s in symbols if s not in info.spans]
    if missing:
        raise RecordingError(
            f"{', '.join(missing)} not in recording {info.path.name} (it holds {', '.join(info.symbols)})"
        )
    registry = InstrumentRegistry.bundled()
    unknown = [s for s in symbols if s not in registry]
    if unknown:
        raise RecordingError(f"{', '.join(unknown)}: not a Bybit USDT perpetual in the bundled instruments")
    no_book = [s for s in symbols if s not in info.depths]
    if no_book:
        raise RecordingError(f"{', '.join(no_book)}: recording {info.path.name} holds trades but no order book")
    return symbols


def recorded_settings(settings: Settings, info: RecordingInfo) -> Settings:
    """``data_source = "recorded"`` and the recording's book depth (see the module docstring)."""
    updates: dict[str, Any] = {"backtest.data_source": "recorded"}
    if info.depth is not None:
        updates["websocket.subscription_depth"] = info.depth
    return with_overrides(settings, updates)


def replay_batches(
    settings: Settings,
    symbols: Sequence[str],
    batches: Iterable[tuple[float, EventBatch]],
    *,
    start_ts: float,
    end_ts: float,
    out_dir: Path,
    seed: int,
    data_hash: str,
    observers: Sequence[Callable[..., None]] = (),
    inspect: Callable[[Bot], None] | None = None,
    progress: bool = False,
) -> PortfolioResult:
    """One bot on one simulated account over ``(release time, batch)`` pairs from ``start_ts`` to ``end_ts``.

    The recorded feed's batches (:func:`run_recorded`) or any other real stream, e.g. what the live collector put on
    its queue (the parity test); ``observers`` / ``inspect`` as in :func:`replay.engine.run_account`."""
    instruments = InstrumentRegistry.bundled()
    symbols = ordered_symbols(settings, symbols)
    log_dir = out_dir / log_dir_name(symbols)
    log_dir.mkdir(parents=True, exist_ok=True)
    rsettings = replay_settings(settings, symbols, log_dir)
    markets = [_Sym(s) for s in symbols]
    counts = {s: [0, 0, 0] for s in symbols}  # events, batches, market trades per symbol (for the run's rows)

    bar = _progress_bar(start_ts, end_ts) if progress else None
    bars: dict[str, _MinuteBars] = {}

    def counted() -> Iterator[tuple[float, EventBatch]]:
        shown = 0  # whole recorded seconds the bar shows
        for ts, batch in batches:
            c = counts.setdefault(batch[0].symbol, [0, 0, 0])  # one frame, one topic, one symbol
            c[0] += len(batch)
            c[1] += 1
            for e in batch:
                if e.__class__ is TradeBatch and len(e):
                    c[2] += len(e)
                    bars.setdefault(e.symbol, _MinuteBars()).add(e)  # type: ignore[arg-type]
            if bar is not None and (sec := min(int(ts - start_ts), bar.total)) > shown:
                bar.update(sec - shown)
                shown = sec
            yield ts, batch

    try:
        with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start_ts)) as runner:
            account, curves, feed, exchange, bot, open_syms = runner.run(
                _replay(
                    rsettings,
                    markets,  # type: ignore[arg-type]
                    instruments,
                    log_dir,
                    seed,
                    end_ts,
                    None,
                    observers,
                    inspect,
                    batches=counted(),
                )
            )
        if bar is not None:
            bar.update(bar.total - bar.n)
    finally:
        if bar is not None:
            bar.close()
    facts = {}
    for sym in symbols:
        events, nbatches, market_trades = counts[sym]
        facts[sym] = SymbolFacts(start_ts, end_ts, data_hash, events, nbatches, [],
                                 {"gaps": [], "market_trades": market_trades,
                                  "candles": bars.get(sym, _MinuteBars()).candles(sym)})
    return settle(settings, bot, exchange, log_dir, account, curves, open_syms, facts, start_ts, end_ts, feed)


def _progress_bar(start_ts: float, end_ts: float) -> Any:
    """A tqdm bar in recorded seconds (a recording of hours replays in minutes)."""
    from tqdm import tqdm

    return tqdm(
        total=max(1, int(end_ts - start_ts)),
        unit="s",
        desc="replay recording",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} recorded s [{elapsed}<{remaining}]",
    )


def run_recorded(
    job: PortfolioJob,
    path: Path,
    observers: Sequence[Callable[..., None]] = (),
    inspect: Callable[[Bot], None] | None = None,
    progress: bool = False,
) -> PortfolioResult:
    """The whole recorded replay of ``job.symbols`` (in this process): scan, feed, bot, results."""
    info = scan_recording(path)
    symbols = select_symbols(info, job.symbols)
    settings = recorded_settings(Settings.model_validate_json(job.settings_json), info)
    start_ts, end_ts = info.span(symbols)
    depth = settings.websocket.subscription_depth
    return replay_batches(
        settings,
        symbols,
        recorded_batches(path, symbols, depth),
        start_ts=start_ts,
        end_ts=end_ts,
        out_dir=Path(job.out_dir),
        seed=job.seed,
        data_hash=info.sha256,
        observers=observers,
        inspect=inspect,
        progress=progress or job.progress,
    )


class RecordedBacktest(BacktestEngine):
    """:class:`BacktestEngine` over one recording instead of 1m candles: same run folder, plus the recording's name,
    sha256, span and truncated-tail note in the manifest and report."""

    def __init__(self, recording: Path, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.recording = Path(recording)
        self.info = scan_recording(self.recording)

    def configure_from_settings(self, settings: Settings) -> RecordedBacktest:
        super().configure_from_settings(recorded_settings(settings, self.info))
        return self

    def run_recording(
        self, symbols: Sequence[str] | None = None, *, seed: int | None = None, progress: bool = False
    ) -> RunOutcome:
        """Every selected symbol (default: all in the recording) on one account; a normal run folder."""
        chosen = select_symbols(self.info, symbols)
        return self.run_full_test(chosen, seed=seed, progress=progress, label="recorded")

    def _jobs(
        self,
        symbols: Sequence[str],
        run_dir: Path,
        days: float | None,
        start: str | None,
        end: str | None,
        seed: int,
        progress: bool,
        pessimistic: bool = False,
    ) -> list[Any]:
        return [
            PortfolioJob(
                symbols=tuple(symbols),
                settings_json=self.settings.model_dump_json(),
                out_dir=str(run_dir),
                seed=seed,
                progress=progress,
            )
        ]

    def _results(
        self, jobs: Sequence[Any]
    ) -> tuple[dict[str, SymbolResult], dict[str, Any], dict[str, Any], list[Any]]:
        return self._collect([run_recorded(job, self.recording) for job in jobs])

    def _robustness(self, *args: Any) -> list[dict[str, Any]]:
        return []  # generator seeds and a pessimistic path vary a synthetic market; a recording has none

    def provenance(self) -> dict[str, Any]:
        start, end = self.info.span(self.info.symbols)
        return {
            "recording": {
                "file": str(self.recording.resolve()),
                "name": self.recording.name,
                "sha256": self.info.sha256,
                "lines": self.info.lines,
                "market_frames": self.info.market_frames,
                "symbols": self.info.symbols,
                "book_depth": self.info.depths,
                "span_utc": [iso_utc(start), iso_utc(end)],
                "truncated_tail": self.info.truncated_tail,
            }
        }

    def report_facts(self) -> dict[str, str]:
        return {
            "recording": f"{self.recording.name} (sha256 {self.info.sha256[:16]}…)",
            "simplifications": SIMPLIFICATIONS,
        }
