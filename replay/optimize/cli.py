"""``python -m replay optimize | apply | approve``: the optimizer's command line (issue 11).

``replay.cli.main`` hands argv here when its first word is one of :data:`COMMANDS`, so the plain
``python -m replay --symbol X --days N`` usage is untouched.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from loguru import logger
from pydantic import ValidationError

from replay import cli_args

COMMANDS = ("optimize", "apply", "approve")
EPILOG = """examples:
  python -m replay optimize --symbols BTCUSDT,ETHUSDT --days 7 --trials 40 --study wk1
  python -m replay optimize --symbol BTCUSDT --days 30 --trials 20 --walk-forward --wf-window-days 10 --wf-step-days 5
  python -m replay optimize --symbol BTCUSDT --days 3 --trials 16 --mode grid --params risk.min_sl_pct,risk.min_tp_pct
  python -m replay optimize --symbols BTCUSDT,ETHUSDT --days 7 --trials 40 --executor dask://10.0.0.5:8786
  python -m replay apply wk1          compare with the current parameters out of sample; apply / propose / reject
  python -m replay approve 0003       apply a pending proposal (backtest.require_manual_approval)

The same optimize command resumes an interrupted study (logs/backtest/optimization/{study}/study.db).
Score: normalised net PnL in bps per day (unified: median or worst symbol); constraints from
backtest.target_metrics (min_trades per 30 days, max_drawdown_pct). See README "Optimization and walk-forward"."""


def _study_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}", text):
        raise argparse.ArgumentTypeError(f"study names are letters, digits, '_', '.', '-' (got {text!r})")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = cli_args.OneLineParser(prog="python -m replay", description="Optimize, apply and approve bot parameters.",
                               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    o = sub.add_parser("optimize", help="search OPTIMIZABLE parameters with Optuna, validate out of sample",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli_args.add_window(o, days_help="N days (default: backtest.data_lookback_days)")
    o.add_argument("--trials", type=cli_args.int_at_least(1), help="completed trials per study (default: "
                   "backtest.optimization_iterations)")
    o.add_argument("--mode", choices=["tpe", "grid", "random"], help="sampler (default: backtest.optimization_mode)")
    o.add_argument("--jobs", type=int, default=0, help="concurrent trials (default: CPUs locally, the cluster's "
                   "threads on Dask; capped by backtest.max_memory_gb)")
    o.add_argument("--executor", default="local", help="local (process pool) or dask://host:port")
    o.add_argument("--study", type=_study_name, help="study name (default: derived from symbols and window)")
    o.add_argument("--params", help="comma-separated dotted OPTIMIZABLE fields, or 'all' (default: a curated set "
                   "of signal and exit parameters)")
    g = o.add_mutually_exclusive_group()
    g.add_argument("--unified", action="store_true", default=None, help="one parameter set for all symbols")
    g.add_argument("--per-symbol", dest="unified", action="store_false", help="one study per symbol")
    o.add_argument("--aggregate", choices=["median", "worst"], default="median",
                   help="unified score over symbols (default: median)")
    o.add_argument("--validation-split", type=float, help="hold-out share at the end (default: "
                   "backtest.validation_split)")
    o.add_argument("--walk-forward", action="store_true", default=None, help="rolling folds instead of a hold-out")
    o.add_argument("--wf-window-days", type=float, help="in-sample days per fold (default: "
                   "backtest.walk_forward_window_days)")
    o.add_argument("--wf-step-days", type=float, help="out-of-sample days per fold and roll step (default: "
                   "backtest.walk_forward_step_days)")
    o.add_argument("--grid-points", type=cli_args.int_at_least(1), default=3, help="grid values per numeric range")
    o.add_argument("--seed", type=cli_args.seed, help="sampler and replay seed (default: backtest.seed)")
    _common(o)
    o.add_argument("--data-dir", type=Path, metavar="DIR", help="folder of {SYMBOL}_1m_*.csv.gz files")
    o.add_argument("--calibration", type=Path, metavar="FILE",
                   help="generator coefficients (`python -m calibration fit --write`, or a calibration.json) for "
                        "every trial's synthetic market; copied into the study folder and named in result.json")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = sub.add_parser("apply", help="apply (or propose) a study's best parameters if they beat the current ones")
    a.add_argument("study", type=_study_name)
    a.add_argument("--target", help="which target of a per-symbol study (a symbol)")
    _common(a)
    b = sub.add_parser("approve", help="apply a pending proposal")
    b.add_argument("id")
    _common(b)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settings", type=Path, metavar="FILE", help="TOML settings file")
    p.add_argument("--overlay", type=Path, default=None, help="parameter overlay file (default: config/overlay.toml)")
    p.add_argument("--report-path", type=Path, help="override backtest.report_path (default logs/backtest)")


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    from replay.cli import _one_line

    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept in study.db; the same command resumes", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, ValidationError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace):
    from settings import load_settings
    from settings.search import with_overrides

    settings = load_settings(args.settings)
    if args.report_path:
        settings = with_overrides(settings, {"backtest.report_path": str(args.report_path)})
    return settings


def _dispatch(args: argparse.Namespace) -> int:
    from replay.optimize import apply as ap

    settings = _settings(args)
    overlay = args.overlay or ap.DEFAULT_OVERLAY
    root = Path(settings.backtest.report_path) / "optimization"
    if args.command == "apply":
        p = ap.propose(root, args.study, args.target, settings, overlay)
        print(f"proposal {p['id']}: {p['status']} (out-of-sample improvement {p['improvement']:.1%}, threshold "
              f"{p['threshold']:.1%})" + (f"; {p['why']}" if p["status"] == "pending" else ""))
        return 0
    if args.command == "approve":
        p = ap.approve(root, args.id, settings)
        print(f"proposal {p['id']} approved: {overlay if args.overlay else p['overlay']} updated")
        return 0
    return _optimize(args, settings, overlay, root)


def _optimize(args: argparse.Namespace, settings, overlay: Path, root: Path) -> int:
    from replay.cli import _split
    from replay.optimize.executors import cpu_count
    from replay.optimize.run import OptimizeConfig, optimize

    if args.symbol and args.symbols:
        raise ValueError("give --symbol or --symbols, not both")
    symbols = _split(args.symbols or args.symbol or "BTCUSDT")
    if len({*symbols}) != len(symbols):
        raise ValueError(f"--symbols lists a symbol twice: {','.join(symbols)}")
    bt = settings.backtest
    days = args.days
    if days is None and args.start is None:
        days = float(bt.data_lookback_days)
    study = args.study or f"{'-'.join(symbols)}-{(str(days) + 'd') if days else args.start}".replace(":", "")
    jobs = args.jobs if args.jobs > 0 else (cpu_count() if args.executor == "local" else 0)
    cfg = OptimizeConfig(
        study=study, symbols=symbols, settings=settings, trials=args.trials or bt.optimization_iterations,
        days=days, start=args.start, end=args.end, mode=args.mode or bt.optimization_mode, jobs=jobs,
        executor=args.executor, params=[s.strip() for s in args.params.split(",")] if args.params else None,
        unified=args.unified, aggregate=args.aggregate, overlay=overlay, root=root, seed=args.seed,
        data_dir=str(args.data_dir) if args.data_dir else None, calibration=args.calibration,
        walk_forward=args.walk_forward,
        wf_window_days=args.wf_window_days, wf_step_days=args.wf_step_days, validation_split=args.validation_split,
        grid_points=args.grid_points,
        progress=bt.enable_progress_bar and not args.no_progress and sys.stderr.isatty())
    result = optimize(cfg)
    print(summary(result))
    print(f"study folder: {cfg.folder}")
    return 0


def summary(result: dict) -> str:
    """A few lines per target: best vs current, in and out of sample, DSR."""
    lines = [f"study {result['study']} ({result['kind']}, {result['mode']}, {result['jobs']} parallel)"]
    for name, t in result["targets"].items():
        best = t.get("best")
        cur = t["current"]["oos"]["score"]
        if best is None:
            lines.append(f"  {name}: no feasible trial in {t['trials']} (current OOS {cur:.2f} bps/day)")
            continue
        is_s = best["is"]["score"] if best.get("is") else float("nan")
        lines.append(f"  {name}: IS {is_s:.2f}  OOS {best['oos']['score']:.2f}  current OOS {cur:.2f} bps/day  "
                     f"improvement {t['improvement']:.1%}  DSR {t['overfitting'].get('dsr')}"
                     + (f"  WFE {t['walk_forward_efficiency']}  stability {t['parameter_stability']}"
                        if "walk_forward_efficiency" in t else ""))
        for f in t.get("folds", []):
            lines.append(f"    fold {f['fold']}: IS {_num(f['is'])}  OOS {_num(f['oos'])}  current OOS "
                         f"{_num(f['current_oos'])} bps/day")
        lines.append(f"    params {json.dumps(best['params'])}")
        if t.get("preset"):
            lines.append(f"    preset {t['preset']}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
