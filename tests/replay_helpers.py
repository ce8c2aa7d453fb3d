"""Shared helpers of the replay tests: jobs on the bundled data, a recorder of the orchestrator's decisions, a data
folder holding a (possibly edited) slice of the real candles."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import Bot
from bot.orchestrator import Decision
from replay.engine import PortfolioJob, SymbolJob
from settings import Settings
from settings.search import with_overrides

ROOT = Path(__file__).resolve().parent.parent
KLINES = ROOT / "data" / "klines" / "bybit-linear-1m"
EIGHT_SEC = 8.0  # live revisit period with the default 10 trade_pairs: ceil(10 / 3) · 2 s


def settings_with(**over: Any) -> Settings:
    return with_overrides(Settings(), over) if over else Settings()


def symbol_job(tmp: Path, start: str, end: str, *, symbol: str = "BTCUSDT", seed: int = 42,
               data_dir: Path | None = None, **over: Any) -> SymbolJob:
    return SymbolJob(symbol=symbol, settings_json=settings_with(**over).model_dump_json(), out_dir=str(tmp),
                     seed=seed, start=start, end=end, data_dir=str(data_dir) if data_dir else None)


def portfolio_job(tmp: Path, symbols: tuple[str, ...], start: str, end: str, *, seed: int = 42,
                  **over: Any) -> PortfolioJob:
    return PortfolioJob(symbols=symbols, settings_json=settings_with(**over).model_dump_json(), out_dir=str(tmp),
                        seed=seed, start=start, end=end)


class Recorder:
    """``inspect`` hook for :func:`replay.engine.run_account`: keeps the orchestrator's decisions."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.bot: Bot | None = None

    def __call__(self, bot: Bot) -> None:
        self.bot = bot
        bot.orchestrator.decisions = self.decisions


def signal_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def epoch(iso: str) -> float:
    """``2025-06-20T03:00`` (UTC) or a log stamp ``2025-06-20T03:00:00.000Z`` → epoch seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp()


def write_klines(folder: Path, symbol: str, start: str, end: str,
                 edit: Callable[[int, list[str]], list[str]] | None = None) -> Path:
    """The bundled candles of ``symbol`` in ``[start, end)`` as ``{symbol}_1m_test.csv.gz`` in ``folder``;
    ``edit(open_time_ms, fields)`` may rewrite a row (open_time_ms, open, high, low, close, volume as text)."""
    lo, hi = int(epoch(start) * 1000), int(epoch(end) * 1000)
    src = next(KLINES.glob(f"{symbol}_1m_*.csv.gz"))
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(src, "rt") as f:
        header = next(f).strip()
        rows = []
        for line in f:
            fields = line.strip().split(",")
            t = int(fields[0])
            if lo <= t < hi:
                rows.append(",".join(edit(t, fields) if edit else fields))
    with gzip.open(folder / f"{symbol}_1m_test.csv.gz", "wt") as f:
        f.write("\n".join([header, *rows]) + "\n")
    return folder
