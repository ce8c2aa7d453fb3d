"""UTC ISO-8601 timestamps for the bot's logs (STRATEGY.md §11): ``2025-12-08T13:29:09.412Z``.

Pure formatting of a given epoch time (the injected clock's, or an event's) — never a clock read. Rows are written
many times per second of virtual time, so the date-time prefix of the last second is cached (one tuple, replaced
atomically, so concurrent callers can never pair one second's prefix with another's).
"""

from __future__ import annotations

import time

_cache: tuple[int, str] = (-1, "")


def iso_utc(ts: float) -> str:
    """Epoch seconds → UTC ISO-8601 with milliseconds (rounded to the nearest ms) and a ``Z`` suffix."""
    global _cache
    sec, msr = divmod(round(ts * 1000.0), 1000)
    csec, prefix = _cache
    if sec != csec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _cache = (sec, prefix)
    return f"{prefix}.{msr:03d}Z"
