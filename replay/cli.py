"""``python -m replay``: replay the real bot over 1m data in virtual time and write a run folder.

``python -m replay runs list|show|compare`` (:mod:`replay.runs`) reads run folders instead; it is dispatched on the
first word so the replay's own options keep their meaning (``python -m replay --symbol BTCUSDT --days 30``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from loguru import logger
from pydantic import ValidationError

from replay.cli_args import OneLineParser, add_window, seed

DESCRIPTION = "Replay the real bot over 1m data in virtual time against a simulated Bybit; write a run folder."
EPILOG = """examples:
  python -m replay --symbol BTCUSDT --days 30          30 days of bundled BTCUSDT data, strict no-repaint mode
  python -m replay --symbols BTCUSDT,ETHUSDT --days 7  one bot trading both on one account (portfolio)
  python -m replay --symbols BTCUSDT,ETHUSDT --days 7 --isolated   one account per symbol, parallel processes
  python -m replay --symbol SOLUSDT --start 2025-06-10 --end 2025-06-12 --seed 7
  python -m replay --quick                             a sanity check: last day of two symbols
  python -m replay --recorded data/ws/bybit-v5-public-linear-2026-08-09-44s.ndjson.gz   real recorded frames
  python -m replay --symbol BTCUSDT --days 3 --live-cadence   actions inside candles + generator-dependence report
  python -m replay runs list | runs show RUN | runs compare A B   the run folders (python -m replay runs --help)
  python -m replay optimize --symbols BTCUSDT --days 7 --trials 40   parameter search (python -m replay optimize --help)
  python -m replay robustness RUN                   seeds, Monte Carlo, stress windows, sensitivity around a run
  python -m replay apply STUDY | approve ID          apply a study's out-of-sample-validated parameters
  python -m replay fetch --symbols BTCUSDT --days 7 --out DIR   recent candles via Bybit REST (cached) as CSV files

Every symbol is evaluated at its live cadence: ceil(len(trading.trade_pairs)/symbol_batch_size) *
decision_interval_sec (8 s with the defaults), also when only one of the pairs is replayed. Strict mode (default) acts
on a signal only at the close of the candle it was computed in; --live-cadence acts inside candles as live does.

Settings come from defaults < --settings FILE (TOML) < NAPORRR_* environment variables (e.g.
NAPORRR_BACKTEST__SEED=7, NAPORRR_RISK__MIN_SL_PCT=0.003)."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m replay", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sel = p.add_argument_group("what to replay")
    add_window(sel, days_help="N days: the most recent N available, N from --start, or N back from --end "
                              "(default: backtest.data_lookback_days)")
    sel.add_argument("--recorded", type=Path, metavar="FILE",
                     help="replay a recorded WebSocket session (gzip NDJSON of {recv_ts, msg} lines, e.g. "
                          "data/ws/*.ndjson.gz) instead of 1m candles: symbols default to those in the file")
    sel.add_argument("--quick", action="store_true",
                     help="sanity check: the last day, at most two symbols (not with --days/--start/--end)")
    run = p.add_argument_group("how")
    run.add_argument("--seed", type=seed, help="seed for every random draw, >= 0 (default: backtest.seed)")
    run.add_argument("--settings", type=Path, metavar="FILE", help="TOML settings file")
    run.add_argument("--live-cadence", action="store_true",
                     help="act inside candles as live does (default: strict no-repaint mode, actions at candle "
                          "closes only)")
    run.add_argument("--isolated", action="store_true",
                     help="one account per symbol, in parallel processes (default: one bot and one account for all "
                          "symbols, as live)")
    run.add_argument("--data-source", choices=["bundled", "rest_api"], help="override backtest.data_source")
    run.add_argument("--data-dir", type=Path, metavar="DIR",
                     help="folder of {SYMBOL}_1m_*.csv.gz files (open_time_ms,open,high,low,close,volume) to use "
                          "instead of the bundled data")
    run.add_argument("--report-path", type=Path, help="override backtest.report_path (default logs/backtest)")
    run.add_argument("--calibration", type=Path, metavar="FILE",
                     help="generator coefficients from `python -m calibration fit --write` (or a calibration.json); "
                          "copied into the run folder")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("-v", "--verbose", action="store_true", help="log the bot's operational events to stderr")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check the options; any conflict exits 2 with one line naming the options involved."""
    parser = build_parser()
    args = parser.parse_args(argv)
    window = [f"--{name} {v:g}" if isinstance(v, float) else f"--{name} {v}"
              for name in ("days", "start", "end") if (v := getattr(args, name)) is not None]
    if args.quick and window:
        parser.error(f"--quick replays the last day; it cannot be combined with {', '.join(window)} "
                     f"(drop --quick to replay that window)")
    if len(window) == 3:
        parser.error(f"give at most two of --days, --start, --end, got {', '.join(window)} (--days counts forward "
                     f"from --start or back from --end)")
    if args.recorded is not None:
        clash = [*window, *(f"--{n.replace('_', '-')}" for n in ("quick", "isolated", "data_dir", "data_source")
                            if getattr(args, n) not in (None, False))]
        if clash:
            parser.error(f"--recorded replays the whole recording on one account; it cannot be combined with "
                         f"{', '.join(clash)}")
    if args.symbol is not None and args.symbols is not None:
        parser.error(f"give --symbol or --symbols, not both (got --symbol {args.symbol} --symbols {args.symbols})")
    for name in ("symbol", "symbols"):
        if (raw := getattr(args, name)) is not None and not _split(raw):
            parser.error(f"--{name} names no symbol, got {raw!r}")
    from replay.backtest import QUICK_MAX_SYMBOLS

    name, raw = ("symbols", args.symbols) if args.symbols is not None else ("symbol", args.symbol)
    if args.quick and raw is not None and len(_split(raw)) > QUICK_MAX_SYMBOLS:
        parser.error(f"--quick replays at most {QUICK_MAX_SYMBOLS} symbols, got --{name} {raw} "
                     f"(drop --quick, or name fewer symbols)")
    return args


def _split(raw: str) -> list[str]:
    return [s.strip().upper() for s in raw.split(",") if s.strip()]


def _symbols(args: argparse.Namespace, default: Sequence[str]) -> list[str]:
    raw = args.symbols or args.symbol
    if not raw:
        return list(default)
    out = _split(raw)
    if not out:
        raise ValueError("--symbols is empty")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"--symbols lists {', '.join(dup)} more than once")
    from bot.instruments import InstrumentRegistry

    registry = InstrumentRegistry.bundled()
    unknown = [s for s in out if s not in registry]
    if unknown:
        raise ValueError(f"unknown symbol{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                         "(not a Bybit USDT perpetual in the bundled instruments)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("optimize", "apply", "approve"):  # replay.optimize's subcommands
        from replay.optimize.cli import main as optimize_main

        return optimize_main(argv)
    if argv[:1] == ["robustness"]:
        from replay.robustness.cli import main as robustness_main

        return robustness_main(argv[1:])
    if argv[:1] == ["fetch"]:  # download + export recent candles (the in-bot cycle's data step)
        from replay.fetch import main as fetch_main

        return fetch_main(argv[1:])
    if argv[:1] == ["runs"]:
        from replay import runs

        return runs.main(argv[1:])
    with _sigterm_as_sigint() as stopped_by:
        args = parse_args(argv)
        logger.remove()
        logger.add(sys.stderr, level="INFO" if args.verbose else "WARNING", format="{level}: {message}")
        try:
            return _main(args)
        except KeyboardInterrupt:
            sig = stopped_by[0] if stopped_by else signal.SIGINT
            print(f"interrupted ({sig.name}): no run folder was kept", file=sys.stderr)
            return 128 + sig
        except (ValueError, KeyError, FileNotFoundError, ValidationError, OSError) as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 2


@contextmanager
def _sigterm_as_sigint() -> Iterator[list[signal.Signals]]:
    """While the CLI runs, SIGTERM (``kill``, ``timeout``, a cancelled CI job) stops a run the way Ctrl-C does.

    Python's default SIGTERM ends the process on the spot, leaving a half-written run folder. Here SIGTERM first stops
    the worker processes (so nothing writes into the folder any more), then takes the SIGINT path: inside a replay,
    asyncio cancels the run; elsewhere ``KeyboardInterrupt`` unwinds, and ``BacktestEngine`` removes the folder.
    The yielded list receives the signal that stopped the run. Pool workers forked from this process inherit the
    handler; in them SIGTERM keeps its default meaning (the pool and this handler use it to stop them).
    """
    owner = os.getpid()
    stopped_by: list[signal.Signals] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        stopped_by.append(signal.SIGTERM)
        for child in multiprocessing.active_children():
            child.terminate()
        on_sigint = signal.getsignal(signal.SIGINT)  # asyncio's (cancel the run) or Python's (KeyboardInterrupt)
        if callable(on_sigint):
            on_sigint(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job): SIGTERM must still stop the run
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield stopped_by
        return
    try:
        yield stopped_by
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errs[:3])
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())


def _main(args: argparse.Namespace) -> int:
    from replay.backtest import BacktestEngine
    from settings import load_settings
    from settings.search import with_overrides

    settings = load_settings(args.settings)
    overrides: dict[str, object] = {}
    if args.live_cadence:
        overrides["backtest.strict_repainting_check"] = False
    if args.data_source:
        overrides["backtest.data_source"] = args.data_source
    if args.report_path:
        overrides["backtest.report_path"] = str(args.report_path)
    if overrides:
        settings = with_overrides(settings, overrides)
    if args.recorded is not None:
        from replay.recorded import RecordedBacktest

        recorded = RecordedBacktest(args.recorded).configure_from_settings(settings)
        bar = settings.backtest.enable_progress_bar and not args.no_progress and sys.stderr.isatty()
        symbols = _split(args.symbols or args.symbol or "") or None
        outcome = recorded.run_recording(symbols, seed=args.seed, progress=bar)
        print(_summary_table(outcome.summary))
        print(f"run folder: {outcome.run_dir}")
        return 0
    if settings.backtest.data_source == "recorded":
        raise ValueError("backtest.data_source = 'recorded' replays a recording: give it with --recorded FILE")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir}: no such folder")
    engine = BacktestEngine(data_dir=args.data_dir, isolated=args.isolated,
                            calibration=args.calibration).configure_from_settings(settings)
    progress = settings.backtest.enable_progress_bar and not args.no_progress and sys.stderr.isatty()
    default_symbols = ["BTCUSDT"]
    if args.quick:
        outcome = engine.run_quick_test(_symbols(args, ["BTCUSDT", "ETHUSDT"]), seed=args.seed, progress=progress)
    else:
        if args.start is None and args.days is None:
            args.days = float(settings.backtest.data_lookback_days)
        outcome = engine.run_full_test(_symbols(args, default_symbols), days=args.days, start=args.start,
                                       end=args.end, seed=args.seed, progress=progress)
    print(_summary_table(outcome.summary))
    print(f"run folder: {outcome.run_dir}")
    return 0


def _summary_table(summary: dict) -> str:
    cols = [("symbol", 10), ("trades", 7), ("win%", 6), ("PF", 6), ("net USDT", 11), ("net bps", 9),
            ("maxDD%", 7), ("Sharpe", 7), ("fees", 9)]
    lines = [summary["mode"], summary.get("account", ""), "  ".join(f"{c:>{w}}" for c, w in cols)]
    rows = dict(summary["symbols"])
    if len(rows) > 1:
        rows["portfolio"] = summary["aggregate"]
    for sym, m in rows.items():
        pf = m["profit_factor"]
        vals = [sym, m["total_trades"], f"{100 * m['win_rate']:.1f}", f"{pf:.2f}" if isinstance(pf, float) else pf,
                f"{m['total_pnl_usdt']:.2f}", f"{m['total_pnl_bps']:.1f}", f"{m['max_drawdown_pct']:.2f}",
                "n/a" if m["sharpe"] is None else f"{m['sharpe']:.2f}", f"{m['fees_paid_usdt']:.2f}"]
        lines.append("  ".join(f"{v!s:>{w}}" for v, (_, w) in zip(vals, cols, strict=True)))
    notes: dict[str, list[str]] = {}
    for sym, m in summary["symbols"].items():
        if m.get("ratios_note"):
            notes.setdefault(m["ratios_note"], []).append(sym)
    lines += [f"Sharpe n/a for {', '.join(syms)}: {note}" for note, syms in notes.items()]
    return "\n".join(lines)
