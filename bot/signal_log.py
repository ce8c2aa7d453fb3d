"""signals.csv writer (STRATEGY.md §11): one row per evaluation, HOLDs included, append-only, header once.

``accepted`` is YES exactly when the action is BUY or SELL (defect §12.21: it used to mean strength ≥ 3). Rows are
formatted with one f-string and go through a large write buffer, because replay logs millions of evaluations;
``SignalLog(None)`` is a no-op sink for runs that do not want the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.timefmt import iso_utc

if TYPE_CHECKING:
    from bot.analysis.signals import Signal

COLUMNS: tuple[str, ...] = (
    "ts",
    "symbol",
    "action",
    "raw_action",
    "strength",
    "raw_strength",
    "composite",
    "ema",
    "threshold",
    "imbalance",
    "momentum",
    "bayesian",
    "large_orders",
    "frequency",
    "vol_confirm",
    "volume_z",
    "spread_bps",
    "volatility",
    "ohara_score",
    "cooldown_active",
    "reason",
    "accepted",
)
HEADER = ",".join(COLUMNS) + "\n"


def format_row(sig: Signal) -> str:
    """One CSV line (with newline). Scores use 4 decimals; a missing z-score or spread is an empty field."""
    z = sig.volume_z
    sp = sig.spread_bps
    act = sig.action
    return (
        f"{iso_utc(sig.ts)},{sig.symbol},{act},{sig.raw_action},{sig.strength},{sig.raw_strength},"
        f"{sig.composite:.4f},{sig.ema:.4f},{sig.threshold:.4f},{sig.effective_imbalance:.4f},"
        f"{sig.momentum_score:.4f},{sig.bayesian_signal},{sig.informed_direction},{sig.frequency_regime},"
        f"{sig.confirmation},{'' if z is None else f'{z:.4f}'},{'' if sp is None else f'{sp:.4f}'},"
        f"{sig.volatility:.4f},{sig.ohara_score},{'YES' if sig.cooldown_active else 'NO'},{sig.reason},"
        f"{'YES' if act == 'BUY' or act == 'SELL' else 'NO'}\n"
    )


class SignalLog:
    """Appends signal rows to ``path`` (created with its directory; header written only into an empty file).

    An existing file with a different header is refused rather than silently mixed with another column layout.
    """

    def __init__(self, path: str | Path | None, buffer_bytes: int = 1 << 16) -> None:
        self.path = None if path is None else Path(path)
        self.rows = 0
        self._f = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("r", encoding="utf-8", newline="") as f:
                first = f.readline()
            if first != HEADER:
                raise ValueError(f"{self.path}: existing header {first.strip()!r} is not the signals.csv header")
            self._f = self.path.open("a", encoding="utf-8", newline="", buffering=buffer_bytes)
        else:
            self._f = self.path.open("a", encoding="utf-8", newline="", buffering=buffer_bytes)
            self._f.write(HEADER)

    def append(self, sig: Signal) -> None:
        if self._f is not None:
            self._f.write(format_row(sig))
            self.rows += 1

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> SignalLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
