"""signals.csv's per-minute timestamp prefix (bot.signal_log._minute_prefix: the date cached per day) against
``strftime("%Y-%m-%dT%H:%M:", gmtime(60·minute))`` at random minutes, both sides of the epoch and around midnights."""

from __future__ import annotations

import random
import time

from bot import signal_log


def test_minute_prefix_equals_strftime_of_gmtime() -> None:
    rng = random.Random(7)
    minutes = [rng.randint(-(10**8), 10**8) for _ in range(20_000)]
    minutes += [1440 * d + m for d in (-2, -1, 0, 1, 20_000) for m in (-1, 0, 1, 59, 60, 1439)]
    for minute in minutes:
        assert signal_log._minute_prefix(minute) == time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
