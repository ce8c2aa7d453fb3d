"""Throughput of the synthetic market builder on the bundled BTCUSDT 1m data (30 days).

``python benchmarks/synthetic_bench.py [--days N] [--symbol BTCUSDT] [--k 60] [--storage] [--no-far-deletes]``:
prints wall and CPU seconds (CPU time is the stable figure on a shared machine), events and trades per second, trades
per minute and changed book levels per point (of which deletes). ``--storage`` also applies every batch to the bot's
``DataStorage`` and reports that cost separately (the consumer's side of the same events).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bot.events import TradeBatch
from bot.instruments import InstrumentRegistry
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder, profile_from_candles

DATA = Path(__file__).resolve().parent.parent / "data" / "klines" / "bybit-linear-1m"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--k", type=int, default=60)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--storage", action="store_true", help="also time DataStorage.apply_batch on every batch")
    ap.add_argument("--no-far-deletes", action="store_true", help="builder(far_deletes=False): fewer levels per delta")
    args = ap.parse_args()
    df = pd.read_csv(next(DATA.glob(f"{args.symbol}_1m_*.csv.gz")))
    df = df.iloc[: int(args.days * 1440)]
    c = Candles(args.symbol, df.open_time_ms.to_numpy(np.int64),
                *(df[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume")))
    ins = InstrumentRegistry.bundled()[args.symbol]
    store = clock = None
    if args.storage:
        from bot.clock import FixedClock
        from bot.storage import DataStorage
        from settings import Settings

        clock = FixedClock(float(c.open_time_ms[0]) / 1000.0)
        store = DataStorage(Settings(), clock, [args.symbol])
    t0, c0 = time.perf_counter(), time.process_time()
    prof = profile_from_candles(c, ins)
    b = SyntheticMarketBuilder(ins, prof, GeneratorParams.load_defaults(), seed=args.seed, points_per_candle=args.k,
                               far_deletes=not args.no_far_deletes)
    n_batches = n_events = n_trades = n_levels = 0
    st_cpu = st_wall = 0.0
    for release, batch in b.iter_batches(c):
        n_batches += 1
        n_events += len(batch)
        for e in batch:  # a batch holds book updates and/or trade batches (trades may come alone)
            if isinstance(e, TradeBatch):
                n_trades += len(e)
            else:
                n_levels += len(e.bids) + len(e.asks)
        if store is not None and clock is not None:
            s0, w0 = time.process_time(), time.perf_counter()
            clock.set(release)
            store.apply_batch(batch)
            st_cpu += time.process_time() - s0
            st_wall += time.perf_counter() - w0
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0 - st_cpu
    sample = list(itertools.islice(b.iter_batches(c), 1440 * args.k))  # untimed: deletes share over the first day
    n_deletes = sum(1 for _, bt in sample for e in bt if not isinstance(e, TradeBatch)
                    for lv in (e.bids, e.asks) for _, s in lv if s == 0)
    days = len(c) / 1440
    print(f"{args.symbol}: {len(c)} candles ({days:.1f} days), K={args.k}")
    print(f"  generator: wall {dt - st_wall:.2f} s, CPU {cpu:.2f} s ({cpu / days:.3f} CPU s per simulated day), "
          f"{n_events / cpu:,.0f} events and {n_trades / cpu:,.0f} trades per CPU s")
    print(f"  batches {n_batches:,}, events {n_events:,} (trades {n_trades:,}, {n_trades / len(c):.1f}/min), "
          f"book levels {n_levels:,} ({n_levels / n_batches:.1f} per batch, of which deletes "
          f"{n_deletes / len(sample):.1f} on day 1)")
    if store is not None:
        print(f"  DataStorage.apply_batch: CPU {st_cpu:.2f} s ({st_cpu / n_batches * 1e6:.1f} us per batch), "
              f"issues {len(list(store.issues))}")


if __name__ == "__main__":
    main()
