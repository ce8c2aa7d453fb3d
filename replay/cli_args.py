"""Argument types and option groups shared by every ``python -m replay`` subcommand.

One place for what a window, a seed or a count means on the command line, so ``replay``, ``optimize``,
``robustness`` and ``runs`` accept the same spellings and refuse bad input with the same one-line errors.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "add_window", "days", "int_at_least", "seed", "utc_time"]


class OneLineParser(argparse.ArgumentParser):
    """argparse with bad input reported as one ``error:`` line (exit code 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        hint = f" ({self.prog} --help lists them)" if message.startswith("unrecognized arguments") else ""
        self.exit(2, f"error: {message}{hint}\n")


def days(text: str) -> float:
    """``--days``: a finite number of days, at least one minute."""
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not math.isfinite(n) or n * 1440 < 1:
        raise argparse.ArgumentTypeError(f"must be a finite number of days, at least one minute (1/1440), "
                                         f"got {text!r}")
    return n


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer option type refusing values below ``low`` (counts: 0 may mean "none", 1 "at least one")."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return n

    parse.__name__ = f"int_at_least_{low}"  # argparse names the type in its messages
    return parse


def seed(text: str) -> int:
    """``--seed``: a non-negative integer (the generator's hashes and numpy's SeedSequence need one)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return n


def utc_time(text: str) -> str:
    """``--start`` / ``--end``: checked here so the message names the option; passed on as given."""
    from replay.data.timeutil import to_ms

    try:
        to_ms(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_window(group: argparse._ActionsContainer, *, days_help: str) -> None:
    """``--symbol/--symbols/--days/--start/--end``: which symbols and which span of 1m data."""
    group.add_argument("--symbol", help="one symbol, e.g. BTCUSDT")
    group.add_argument("--symbols", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    group.add_argument("--days", type=days, help=days_help)
    group.add_argument("--start", type=utc_time, help="window start, UTC (ISO date or datetime)")
    group.add_argument("--end", type=utc_time, help="window end, UTC (exclusive)")
