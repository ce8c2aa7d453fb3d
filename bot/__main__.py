"""``python -m bot``: the live bot's entry point. The live adapters are later work, so for now it says so and points at
the replay, which runs this same bot code against a simulated Bybit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

REPLAY = "python -m replay --symbol BTCUSDT --days 30"
NOT_BUILT = (f"python -m bot: the live bot is not built yet (no live Bybit adapters); to run this bot on market data "
             f"use the replay: {REPLAY} (python -m replay --help)")


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m bot",
        description="Run the order-book-imbalance scalper live on Bybit USDT perpetuals.\nNot built yet: the live "
                    "adapters (public WS collector, REST trading, private WS) are later work.",
        epilog=f"meanwhile, replay the same bot code in virtual time against a simulated Bybit:\n  {REPLAY}\n"
               f"  python -m replay --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def main(argv: Sequence[str] | None = None) -> int:
    """``--help`` describes the entry point; anything else prints one line and exits 2 (nothing can run yet)."""
    build_parser().parse_known_args(argv)
    print(NOT_BUILT, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
