"""signals.csv writer (STRATEGY.md §11): one row per evaluation, HOLDs included, append-only, header once.

``accepted`` is YES exactly when the action is BUY or SELL (defect §12.21: it used to mean strength ≥ 3). Rows are
formatted with one printf-style template and go through a large write buffer, because replay logs millions of
evaluations; ``SignalLog(None)`` is a no-op sink for runs that do not want the file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

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


def _row_format(has_z: bool, has_spread: bool) -> str:
    """A printf-style row: ``%`` formats each value directly, where an f-string's ``{x:.4f}`` looks up and calls
    ``float.__format__`` and parses the spec per field (more than half of the f-string's cost). ``%.4f`` gives the text
    of ``:.4f`` (both are ``PyOS_double_to_string(x, 'f', 4)``), ``%s`` that of ``{}`` (``str``) for any value; a
    missing z-score or spread is ``%s`` of ``""``."""
    z = "%.4f" if has_z else "%s"
    sp = "%.4f" if has_spread else "%s"
    return f"%s%02d.%03dZ,%s,%s,%s,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%s,%s,%s,%s,{z},{sp},%.4f,%s,%s,%s,%s\n"


_ROWS: dict[tuple[bool, bool], str] = {(z, sp): _row_format(z, sp) for z in (False, True) for sp in (False, True)}

_minute: tuple[int, str] = (-1 << 62, "")
"""(epoch minute, its ``YYYY-MM-DDTHH:MM:`` prefix) of the last row: one tuple, replaced atomically (see below)."""
_day: tuple[int, str] = (-1 << 62, "")
"""(epoch day, its ``YYYY-MM-DDT`` prefix) of the last new minute, the same way."""


def _minute_prefix(minute: int) -> str:
    """``strftime("%Y-%m-%dT%H:%M:", gmtime(60·minute))``, with the date part cached per day: ``minute = 1440·day +
    m`` with 0 ≤ m < 1440 (floor division), and gmtime has no leap seconds, so the time of day is ``m // 60`` hours and
    ``m % 60`` minutes, two zero-padded digits each as ``%H`` and ``%M`` print them. Inside a replay gmtime and
    strftime cost tens of µs a call (cold code and data, once a simulated minute); now they run once a day."""
    global _day
    day, m = divmod(minute, 1440)
    key, date = _day
    if day != key:
        date = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
        _day = (day, date)
    return f"{date}{m // 60:02d}:{m % 60:02d}:"


def format_row(sig: Signal) -> str:
    """One CSV line (with newline). Scores use 4 decimals; a missing z-score or spread is an empty field.

    The ``ts`` field is :func:`bot.timefmt.iso_utc` text, built here with the date-time prefix cached per *minute*:
    a symbol is evaluated every few seconds, so iso_utc's per-second cache always missed and its ``strftime`` was a
    third of the row's cost. ``sec = 60·minute + s`` with 0 ≤ s < 60 (floor division, negative times too), and
    gmtime has no leap seconds, so ``strftime(..%H:%M:, gmtime(60·minute))`` + ``s:02d`` is exactly iso_utc's text.
    The cache is one tuple replaced at once, so concurrent writers can never pair one minute's prefix with another's.
    """
    global _minute
    sec, msr = divmod(round(sig.ts * 1000.0), 1000)
    minute, s = divmod(sec, 60)
    key, prefix = _minute
    if minute != key:
        prefix = _minute_prefix(minute)
        _minute = (minute, prefix)
    z = sig.volume_z
    sp = sig.spread_bps
    act = sig.action
    return _ROWS[z is not None, sp is not None] % (
        prefix, s, msr, sig.symbol, act, sig.raw_action, sig.strength, sig.raw_strength,
        sig.composite, sig.ema, sig.threshold, sig.effective_imbalance, sig.momentum_score,
        sig.bayesian_signal, sig.informed_direction, sig.frequency_regime, sig.confirmation,
        "" if z is None else z, "" if sp is None else sp,
        sig.volatility, sig.ohara_score, "YES" if sig.cooldown_active else "NO", sig.reason,
        "YES" if act == "BUY" or act == "SELL" else "NO",
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
