"""``python -m bot``: run the scalper on Bybit's live public feed: ``--mode paper`` (default: the simulated exchange,
no keys), ``demo`` (Bybit demo trading) or ``live`` (real money; needs keys and an explicit confirmation).

Parsing only; the wiring is :mod:`bot.runner`, imported after parsing so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

MODES = ("paper", "demo", "live")
MAINNET_PUBLIC = "wss://stream.bybit.com/v5/public/linear"
REPLAY = "python -m replay --symbol BTCUSDT --days 30"
CONFIRM_ENV = "NAPORRR_CONFIRM_LIVE"


def _positive(v: str) -> float:
    x = float(v)
    if not x > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return x


def _positive_int(v: str) -> int:
    x = int(v)
    if x < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bot",
        description="Run the order-book-imbalance scalper on Bybit USDT perpetuals, fed by Bybit's public WebSocket.\n"
                    "  paper  the live public feed against the simulated exchange (default; no keys, no orders)\n"
                    "  demo   Bybit demo trading (api-demo.bybit.com; demo keys)\n"
                    "  live   REAL MONEY on Bybit: needs keys and --i-understand-live (or NAPORRR_CONFIRM_LIVE=1)",
        epilog=f"stop with Ctrl-C / SIGTERM: no new entries, resting entries cancelled, open positions stay protected "
               f"by their TP/SL.\nthe same bot in virtual time against a simulated Bybit: {REPLAY}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="paper", help="paper (default), demo or live")
    p.add_argument("--symbols", nargs="+", metavar="SYM", help="symbols to trade (space or comma separated); "
                   "default trading.trade_pairs")
    p.add_argument("--settings", type=Path, metavar="FILE", help="settings TOML (env NAPORRR_* still overrides it)")
    p.add_argument("--minutes", type=_positive, metavar="N", help="stop after N minutes (default: run until stopped)")
    p.add_argument("--ws-url", default=None, metavar="URL",
                   help=f"public WS endpoint (default websocket.ws_public_linear, {MAINNET_PUBLIC})")
    p.add_argument("--rest-url", default=None, metavar="URL", help="demo/live: REST endpoint override (test servers)")
    p.add_argument("--private-ws-url", default=None, metavar="URL",
                   help="demo/live: private WS endpoint override (test servers)")
    p.add_argument("--log-dir", type=Path, metavar="DIR",
                   help="bot.log, signals.csv, trades.csv (default {data_retention.log_dir}/live/{mode}-{UTC time})")
    p.add_argument("--i-understand-live", action="store_true", dest="confirm_live",
                   help="confirm live trading with real money (or set NAPORRR_CONFIRM_LIVE=1)")
    p.add_argument("--status-every", type=_positive, default=60.0, metavar="SEC", help="status line period (60)")
    p.add_argument("--max-daily-loss-pct", type=_positive, default=None, metavar="PCT",
                   help="kill switch: stop when equity falls this far below the day's start "
                        "(default risk.kill_switch_daily_loss_pct, 5)")
    p.add_argument("--max-errors", type=_positive_int, default=None, metavar="N",
                   help="kill switch: stop after N error log records within risk.kill_switch_error_window_sec "
                        "(default risk.kill_switch_max_errors, 20)")
    p.add_argument("--seed", type=int, default=0, help="paper: the simulated exchange's latency seed")
    p.add_argument("--overlay", type=Path, default=Path("config/overlay.toml"), metavar="FILE",
                   help="tuned-parameter overlay written by python -m replay apply|approve, applied at start when "
                        "present and, with backtest.enable_backtest, swapped in while running (config/overlay.toml)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # read (and hide from the settings loader, which refuses unknown NAPORRR_* names) the live confirmation
    confirm_env = os.environ.pop(CONFIRM_ENV, None) == "1"
    from bot.monitor import KillSwitchLimits
    from bot.runner import RunOptions, run
    from settings import load_settings

    symbols = tuple(s.strip().upper() for arg in (args.symbols or ()) for s in arg.split(",") if s.strip())
    try:
        settings = load_settings(args.settings)
    except Exception as e:  # one line: a settings error is the user's to fix, not a traceback
        print(f"python -m bot: settings: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    opts = RunOptions(mode=args.mode, symbols=symbols, minutes=args.minutes, ws_url=args.ws_url, rest_url=args.rest_url,
                      private_ws_url=args.private_ws_url, log_dir=args.log_dir,
                      confirm_live=args.confirm_live or confirm_env, status_every_sec=args.status_every, seed=args.seed,
                      overlay=args.overlay,
                      limits=KillSwitchLimits.from_settings(settings, max_daily_loss_pct=args.max_daily_loss_pct,
                                                            max_errors=args.max_errors))
    return run(opts, settings)


if __name__ == "__main__":
    raise SystemExit(main())
