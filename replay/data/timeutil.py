"""UTC time helpers: epoch-ms conversion and the compact ``2025-06-01T10:03Z`` form used in every message."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

MINUTE_MS = 60_000
DAY_MS = 86_400_000

TimeLike = datetime | date | str | int | np.integer


def to_ms(t: TimeLike) -> int:
    """Epoch milliseconds of ``t``; naive datetimes and ISO strings without offset are taken as UTC.

    Ints are epoch ms already. Accepting 'Z' suffixes and dates keeps CLI strings like ``2025-06-01`` usable.
    """
    if isinstance(t, bool):
        raise TypeError(f"not a time: {t!r}")
    if isinstance(t, int | np.integer):
        return int(t)
    if isinstance(t, str):
        s = t.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        try:
            t = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"not an ISO-8601 UTC time: {t!r} (expected e.g. '2025-06-01' or '2025-06-01T10:00Z')")\
                from None
    if isinstance(t, datetime):
        dt = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    if isinstance(t, date):
        return round(datetime(t.year, t.month, t.day, tzinfo=UTC).timestamp() * 1000)
    raise TypeError(f"not a time: {t!r}")


def fmt_utc(ms: int | np.integer) -> str:
    """``2025-06-01T10:03Z``; seconds/millis are shown only when not zero (misaligned stamps must be visible)."""
    ms = int(ms)
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % MINUTE_MS == 0:
        return dt.strftime("%Y-%m-%dT%H:%MZ")
    if ms % 1000 == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def fmt_span(start_ms: int, end_ms: int) -> str:
    """``2025-06-01T10:03Z → 10:07Z``: the end drops its date when it is the same UTC day."""
    a, b = fmt_utc(start_ms), fmt_utc(end_ms)
    if a[:10] == b[:10]:
        b = b[11:]
    return f"{a} → {b}"


def utc_day_start(ms: int) -> int:
    return ms - ms % DAY_MS


def day_name(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
