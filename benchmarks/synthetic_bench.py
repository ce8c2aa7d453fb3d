"""Throughput of the synthetic market builder on the bundled BTCUSDT 1m data (30 days).

``python benchmarks/synthetic_bench.py [--days N] [--symbol BTCUSDT] [--k 12]``: prints events/s, seconds per simulated
day, events per point and changed book levels per point.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bot.events import Trade
from bot.instruments import InstrumentRegistry
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder, profile_from_candles

DATA = Path(__file__).resolve().parent.parent / "data" / "klines" / "bybit-linear-1m"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    df = pd.read_csv(next(DATA.glob(f"{args.symbol}_1m_*.csv.gz")))
    df = df.iloc[: int(args.days * 1440)]
    c = Candles(args.symbol, df.open_time_ms.to_numpy(np.int64),
                *(df[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume")))
    ins = InstrumentRegistry.bundled()[args.symbol]
    t0 = time.perf_counter()
    prof = profile_from_candles(c, ins)
    b = SyntheticMarketBuilder(ins, prof, GeneratorParams.load_defaults(), seed=args.seed, points_per_candle=args.k)
    n_batches = n_events = n_trades = n_levels = 0
    for _, batch in b.iter_batches(c):
        n_batches += 1
        n_events += len(batch)
        n_levels += len(batch[0].bids) + len(batch[0].asks)
        n_trades += sum(1 for e in batch if isinstance(e, Trade))
    dt = time.perf_counter() - t0
    days = len(c) / 1440
    print(f"{args.symbol}: {len(c)} candles ({days:.1f} days), K={args.k}")
    print(f"  total {dt:.2f} s, {dt / days:.3f} s per simulated day, {n_events / dt:,.0f} events/s")
    print(f"  batches {n_batches:,}, events {n_events:,} (trades {n_trades:,}, {n_trades / len(c):.1f}/min), "
          f"book levels {n_levels:,} ({n_levels / n_batches:.1f} per point)")


if __name__ == "__main__":
    main()
