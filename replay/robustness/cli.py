"""The ``robustness`` subcommand: resolve the base (a run folder, or a settings file replayed first), run the study on
the sweep executor, write ``robustness.json`` and re-render the run's ``report.html`` with its section."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from replay import cli_args

if TYPE_CHECKING:
    from replay.robustness.run import Base

EPILOG = """examples:
  python -m replay robustness latest                         the newest run, default study
  python -m replay robustness RUN --seeds 8 --mc 2000 --stress 3 --sensitivity 10 --jobs 2
  python -m replay robustness my.toml --symbols BTCUSDT --days 7   replay the settings first, then study that run
  python -m replay robustness RUN --params risk.min_sl_pct,signals.base_threshold
RUN is a run id (folder name), a unique prefix or part of one, 'latest', or a path to a run folder."""


def _pct(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= x < 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100), got {text!r}")
    return x


def build_parser() -> argparse.ArgumentParser:
    count = cli_args.int_at_least(0)
    p = cli_args.OneLineParser(prog="python -m replay robustness", epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               description="Seeds, Monte Carlo, stress windows and parameter sensitivity around one "
                                           "run; writes robustness.json and a Robustness section in the run's "
                                           "report.html.")
    p.add_argument("target", metavar="RUN_OR_SETTINGS", help="a run id/folder, or a settings .toml file")
    p.add_argument("--seeds", type=count,
                   help="generator seeds incl. the run's own (default: 1 + backtest.generator_seeds, 4 by default)")
    p.add_argument("--mc", type=count, default=1000, help="Monte Carlo paths per method (default 1000)")
    p.add_argument("--stress", type=count, default=2,
                   help="k most volatile days and k largest 1m moves (gaps) to replay alone (default 2; 0: none)")
    p.add_argument("--sensitivity", type=_pct, default=10.0, metavar="PCT",
                   help="move each parameter ±PCT%% (default 10; 0: no sensitivity)")
    p.add_argument("--params", help="comma-separated OPTIMIZABLE fields to move (default: the optimizer's 8)")
    p.add_argument("--jobs", type=count, default=1, help="parallel replays (default 1)")
    p.add_argument("--executor", default="local", help="'local' (process pool) or 'dask://host:port'")
    p.add_argument("--symbols", help="with a settings file: comma-separated symbols (default BTCUSDT)")
    p.add_argument("--days", type=cli_args.days, help="with a settings file: the most recent N days (default 7)")
    p.add_argument("--report-path", type=Path, help="where runs live (default backtest.report_path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _base(args: argparse.Namespace) -> Base:
    """The run to study: an existing run folder, or a new run of the settings file."""
    from replay.backtest import BacktestEngine
    from replay.robustness.run import base_from_run
    from replay.runs import resolve
    from settings import load_settings
    from settings.search import with_overrides

    target = Path(args.target)
    if target.suffix == ".toml":
        if not target.is_file():
            raise FileNotFoundError(f"settings file {target} does not exist")
        settings = load_settings(target)
        if args.report_path:
            settings = with_overrides(settings, {"backtest.report_path": str(args.report_path)})
        symbols = [s.strip().upper() for s in (args.symbols or "BTCUSDT").split(",") if s.strip()]
        engine = BacktestEngine().configure_from_settings(settings)
        outcome = engine.run_full_test(symbols, days=args.days or 7.0, progress=not args.no_progress,
                                       label="robust")
        return base_from_run(resolve(Path(settings.backtest.report_path), str(outcome.run_dir)))
    if args.symbols or args.days:
        raise ValueError("--symbols/--days apply to a settings file; a run brings its own symbols and window")
    report_path = args.report_path or Path(load_settings().backtest.report_path)
    return base_from_run(resolve(report_path, args.target))


def main(argv: Sequence[str]) -> int:
    """Errors are one ``error:`` line and exit 2; SIGTERM stops like Ctrl-C (the scratch replays are removed)."""
    from loguru import logger

    from replay.cli import _sigterm_as_sigint

    args = build_parser().parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    with _sigterm_as_sigint() as stopped_by:
        try:
            return _main(args)
        except KeyboardInterrupt:
            sig = stopped_by[0] if stopped_by else signal.SIGINT
            print(f"interrupted ({sig.name}): robustness.json was not written", file=sys.stderr)
            return 128 + sig
        except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
            print(f"error: {' '.join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())}",
                  file=sys.stderr)
            return 2


def _main(args: argparse.Namespace) -> int:
    from replay.backtest import BacktestEngine
    from replay.optimize.executors import memory_capped_jobs, open_executor
    from replay.optimize.space import resolve as resolve_params
    from replay.robustness.run import RESULT_FILE, _ts, run_study
    from replay.runs import load_run

    params = [p.strip() for p in args.params.split(",") if p.strip()] if args.params else None
    resolve_params(params)  # a FIXED or unknown field fails here, before any replay
    base = _base(args)
    days = (_ts(base.end) - _ts(base.start)) / 86_400.0
    jobs = memory_capped_jobs(max(args.jobs, 1), days, base.settings.backtest.max_memory_gb)
    with open_executor(args.executor, jobs) as (executor, _):
        seeds = 1 + base.settings.backtest.generator_seeds if args.seeds is None else args.seeds
        result, base_v = run_study(base, executor, seeds=seeds, mc=args.mc, stress=args.stress,
                                   pct=args.sensitivity, params=params, progress=not args.no_progress)
    run = load_run(base.run_dir)
    results, agg, corr, equity = base_v.result
    if base.settings.backtest.generate_html_report:
        BacktestEngine(base.settings, isolated=base.isolated, calibration=base.calibration).write_report(
            base.run_dir, list(base.symbols), run.summary, results, agg, corr, equity)
    print(_summary(result))
    if base.calibration is not None:
        print(f"every variant replayed the run's calibrated generator ({base.calibration})")
    print(f"wrote {base.run_dir / RESULT_FILE}" + (f" and {base.run_dir / 'report.html'}"
                                                   if base.settings.backtest.generate_html_report else ""))
    return 0


def _summary(r: dict) -> str:
    """A few lines for the terminal; the report has the tables."""
    s = r["seeds"]["summary"]["total_pnl_usdt"]
    mc = r["monte_carlo"]
    lines = [f"seeds: net PnL min {s['min']:.2f} / median {s['median']:.2f} / max {s['max']:.2f} USDT, "
             f"{s['share_positive']:.0%} positive" if s["n"] else "seeds: none",
             f"flag: {r['seeds']['flag']}" if r["seeds"]["flag"] else "seed flag: none",
             f"Monte Carlo ({mc['paths']} paths, {mc['trades']} trades): bootstrap max DD p5/p50/p95 "
             + "/".join(f"{mc['bootstrap']['max_dd_pct'][q]:.2f}%" for q in ("p5", "p50", "p95"))
             + f", risk of ruin (DD >= {mc['ruin_dd_pct']:g}%) {mc['bootstrap']['risk_of_ruin']:.1%}",
             f"stress windows: {len(r['stress']['rows'])}",
             f"sensitivity: {len(r['sensitivity']['rows'])} moves, "
             + ("FRAGILE" if r["sensitivity"]["fragile"] else "not fragile")]
    return "\n".join(lines)
