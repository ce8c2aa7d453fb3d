"""When the cycle is due: a grid of ``backtest_cycle_hrs`` anchored at ``backtest_start_time`` (UTC) of the day.

Pure functions of a time read from the bot's :class:`~bot.clock.Clock` (never the wall clock directly), so the
schedule is testable on a fixed clock.
"""

from __future__ import annotations

import math

DAY_SEC = 86_400.0


def anchor(now: float, start_hhmm: str) -> float:
    """``HH:MM`` UTC of ``now``'s day, in epoch seconds."""
    hh, mm = (int(x) for x in start_hhmm.split(":"))
    return math.floor(now / DAY_SEC) * DAY_SEC + hh * 3600.0 + mm * 60.0


def next_due(now: float, start_hhmm: str, cycle_hrs: float) -> float:
    """The first grid time ``anchor + k * cycle_hrs`` (k any integer) at or after ``now``.

    E.g. start 02:00, every 24 h: 02:00 daily; every 6 h: 02:00, 08:00, 14:00, 20:00.
    """
    if not cycle_hrs > 0:
        raise ValueError(f"backtest_cycle_hrs must be > 0, got {cycle_hrs}")
    period = cycle_hrs * 3600.0
    a = anchor(now, start_hhmm)
    return a + math.ceil((now - a) / period - 1e-9) * period
