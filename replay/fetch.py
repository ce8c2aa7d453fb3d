"""``python -m replay fetch``: download the most recent N days of 1m candles through the REST provider (cached) and
export them as ``{SYMBOL}_1m_{first}_{last}.csv.gz`` files, the bundled format ``--data-dir`` reads.

Why an export: the in-bot cycle (``bot/cycle``) fetches once, then runs ``python -m replay optimize --data-dir DIR``
on exactly that snapshot, so every trial (in any worker process) replays the same candles and the download happens
once, in one process. Downloads go through :class:`replay.data.KlineProvider` with ``data_source='rest_api'``: days
already in the kline cache are read from disk, missing days are fetched from Bybit and cached.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Sequence
from pathlib import Path

from loguru import logger

from replay.data.cache import DEFAULT_CACHE_DIR
from replay.data.timeutil import fmt_utc

EPILOG = """examples:
  python -m replay fetch --symbols BTCUSDT,ETHUSDT --days 7 --out /tmp/klines
  python -m replay fetch --symbol BTCUSDT --days 1 --out DIR --rest-url http://127.0.0.1:8080 --cache-dir DIR2
then: python -m replay optimize --symbols BTCUSDT,ETHUSDT --days 7 --data-dir /tmp/klines ..."""


def build_parser() -> argparse.ArgumentParser:
    from replay.cli_args import OneLineParser, days

    p = OneLineParser(
        prog="python -m replay fetch",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download recent 1m candles via Bybit REST (cached) and export them as CSV files.",
    )
    p.add_argument("--symbol", help="one symbol")
    p.add_argument("--symbols", help="comma-separated symbols")
    p.add_argument(
        "--days",
        type=days,
        help="the most recent N days, ending at the last closed candle (default: backtest.data_lookback_days)",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the exported CSV files")
    p.add_argument(
        "--rest-url", metavar="URL", help="REST endpoint (default backtest.kline_rest_url, else Bybit mainnet)"
    )
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help=f"kline cache (default {DEFAULT_CACHE_DIR})")
    p.add_argument("--settings", type=Path, metavar="FILE", help="TOML settings file")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    from replay.cli import _one_line, _split

    try:
        if args.symbol and args.symbols:
            raise ValueError("give --symbol or --symbols, not both")
        symbols = _split(args.symbols or args.symbol or "")
        if not symbols:
            raise ValueError("give --symbol or --symbols")
        for path in fetch(
            symbols, args.days, args.out, rest_url=args.rest_url, cache_dir=args.cache_dir, settings_file=args.settings
        ):
            print(path)
        return 0
    except Exception as exc:  # network, data and input errors: one line, exit 2 (the cycle logs the stderr tail)
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 2


def fetch(
    symbols: Sequence[str],
    days: float | None,
    out: Path,
    *,
    rest_url: str | None = None,
    cache_dir: Path | None = None,
    settings_file: Path | None = None,
) -> list[Path]:
    """Export each symbol's recent candles to ``out``; returns the files written (older exports there replaced)."""
    from replay.data import BybitKlineClient, KlineProvider
    from settings import load_settings

    settings = load_settings(settings_file)
    url = rest_url or settings.backtest.kline_rest_url
    provider = KlineProvider(
        settings,
        source="rest_api",
        cache_dir=cache_dir or DEFAULT_CACHE_DIR,
        rest_client=BybitKlineClient(base_url=url),
    )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for sym in symbols:
        c = provider.load(sym, days=days if days is not None else float(settings.backtest.data_lookback_days))
        t = c.open_time_ms
        for old in out.glob(f"{c.symbol}_1m_*.csv*"):
            old.unlink()
        path = out / f"{c.symbol}_1m_{fmt_utc(int(t[0]))[:10]}_{fmt_utc(int(t[-1]))[:10]}.csv.gz"
        tmp = path.with_name(f".{path.name}.tmp")
        with gzip.open(tmp, "wt", encoding="utf-8", newline="") as f:
            f.write("open_time_ms,open,high,low,close,volume\n")
            for row in zip(
                t.tolist(),
                c.open.tolist(),
                c.high.tolist(),
                c.low.tolist(),
                c.close.tolist(),
                c.volume.tolist(),
                strict=True,
            ):
                f.write(f"{row[0]},{row[1]!r},{row[2]!r},{row[3]!r},{row[4]!r},{row[5]!r}\n")
        tmp.replace(path)
        written.append(path)
    return written
