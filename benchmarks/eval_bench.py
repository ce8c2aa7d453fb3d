"""Cost of one full evaluation (VolumeAnalyzer + ImbalanceAnalyzer + SignalGenerator) on BTC-like tapes of several
densities.

For each tape density (trades per minute; default 1,000, 1,800 and 4,000: real tapes print hundreds to thousands a
minute) the storage is filled with one hour of seeded trades (heavy-tailed sizes, a random-walk price on the 0.1 grid)
and a 50-level book. Then the clock advances ``--step`` seconds at a time (default 8 s: a symbol's live revisit
period with the default 10 trade_pairs); each step ingests that step's trades, a fresh 50-level snapshot and a delta
(untimed) and times one ``evaluate`` call. Prints per density the median / p90 µs per evaluation, a split per component
(re-run on the same state, so without the incremental work of the timed call), and with ``--queries`` the median cost
of each storage query as the analyzers call it: what grows with the trade count shows up there.

    .venv/bin/python benchmarks/eval_bench.py [--steps 1500] [--per-min 1000,1800,4000] [--step 8] [--queries]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer, evaluate
from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T0 = 1_750_000_000.0
TICK = 0.1


class Market:
    """Seeded BTC-like trade and book generator (integer tick prices, so the grid is exact)."""

    def __init__(self, seed: int, per_sec: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.rate = per_sec
        self.tick_px = 1_000_000  # price in ticks (100 000.0 USDT)
        self.trade_id = 0
        self.update_id = 1

    def trades(self, t_start: float, t_end: float) -> list[Trade]:
        rng = self.rng
        n = int(rng.poisson(self.rate * (t_end - t_start)))
        ts = np.sort(rng.uniform(t_start, t_end, n))
        steps = rng.choice((-1, 0, 0, 1), n)
        sizes = np.round(rng.pareto(1.6, n) * 0.004 + 0.001, 3)
        buys = rng.random(n) < 0.5
        out = []
        for i in range(n):
            self.tick_px += int(steps[i])
            self.trade_id += 1
            out.append(
                Trade(SYM, float(ts[i]), self.tick_px * TICK, float(sizes[i]), "Buy" if buys[i] else "Sell",
                      str(self.trade_id))
            )
        return out

    def snapshot(self, ts: float) -> BookSnapshot:
        px = self.tick_px
        rng = self.rng
        sizes = np.round(rng.uniform(0.1, 3.0, 100), 3).tolist()
        bids = [(round((px - k - 1) * TICK, 1), sizes[k]) for k in range(50)]
        asks = [(round((px + k + 1) * TICK, 1), sizes[50 + k]) for k in range(50)]
        self.update_id += 1
        return BookSnapshot(SYM, ts, bids, asks, self.update_id)

    def delta(self, ts: float) -> BookDelta:
        """A small delta away from the touch (keeps the book fresh without crossing it)."""
        rng = self.rng
        self.update_id += 1
        k = int(rng.integers(5, 40))
        bids = [(round((self.tick_px - k) * TICK, 1), float(np.round(rng.uniform(0.1, 3.0), 3)))]
        asks = [(round((self.tick_px + k) * TICK, 1), float(np.round(rng.uniform(0.1, 3.0), 3)))]
        return BookDelta(SYM, ts, bids, asks, self.update_id)


def _instrument_queries(storage: DataStorage, sink: dict[str, list[float]]) -> None:
    """Wrap the query methods so each call's duration is recorded under its name (benchmark only)."""
    names = ("price_stats", "side_sums", "side_sums_multi", "trades_between", "trades_since", "trades_after_seq",
             "count_between", "last_n", "book_top", "book_levels", "suspicious_orders", "book_valid", "mid",
             "spread_bps", "last_seq")
    for name in names:
        fn = getattr(storage, name, None)
        if fn is None:  # an older storage (to compare before/after)
            continue

        def wrapped(*a: Any, _fn: Callable[..., Any] = fn, _name: str = name) -> Any:
            t = time.perf_counter_ns()
            r = _fn(*a)
            sink[_name].append((time.perf_counter_ns() - t) / 1000.0)
            return r

        setattr(storage, name, wrapped)


def run(per_min: float, steps: int, step_sec: float, seed: int, queries: bool) -> None:
    settings = Settings()
    clock = FixedClock(T0)
    storage = DataStorage(settings, clock, [SYM])
    mkt = Market(seed, per_min / 60.0)
    now = T0 + 3600.0
    for m in range(60):  # one hour, one batch per minute
        clock.set(T0 + 60.0 * (m + 1))
        storage.apply_batch(mkt.trades(T0 + 60.0 * m, T0 + 60.0 * (m + 1)))
    storage.apply(mkt.snapshot(now))

    vol_an = VolumeAnalyzer(settings, storage)
    imb_an = ImbalanceAnalyzer(settings, storage, InstrumentRegistry.bundled())
    sig_gen = SignalGenerator(settings)
    evaluate(SYM, now, storage, vol_an, imb_an, sig_gen)  # first call back-fills the per-symbol state

    q: dict[str, list[float]] = defaultdict(list)
    if queries:
        _instrument_queries(storage, q)
    total: list[float] = []
    parts: dict[str, list[float]] = defaultdict(list)
    actions: dict[str, int] = defaultdict(int)
    pc = time.perf_counter_ns
    for _ in range(steps):
        t_prev, now = now, now + step_sec
        clock.set(now)
        # a fresh 50-level book around the last trade, then a delta: the book follows the price, never crossed
        storage.apply_batch([*mkt.trades(t_prev, now), mkt.snapshot(now - 0.5), mkt.delta(now)])
        t = pc()
        sig = evaluate(SYM, now, storage, vol_an, imb_an, sig_gen)
        total.append((pc() - t) / 1000.0)
        actions[sig.reason] += 1
        # component split, on the same state one step later would differ: time the pieces on a copy-free re-run
        t = pc()
        vol = vol_an.compute(SYM, now)
        t1 = pc()
        imb = imb_an.compute(SYM, now, vol.recent_volatility)
        t2 = pc()
        sig_gen.generate(SYM, now, imb, vol, storage.spread_bps(SYM))
        t3 = pc()
        parts["volume"].append((t1 - t) / 1000.0)
        parts["imbalance"].append((t2 - t1) / 1000.0)
        parts["signal"].append((t3 - t2) / 1000.0)

    total.sort()
    print(f"tape {per_min:,.0f} trades/min, an evaluation every {step_sec:g} s: {len(total)} evaluations, "
          f"{len(storage.trades_since(SYM, -np.inf)):,} trades stored")
    print(f"  full evaluation: median {statistics.median(total):.1f} µs, p90 {total[int(0.9 * len(total))]:.1f} µs")
    for k, v in parts.items():
        print(f"    {k:10s} median {statistics.median(v):7.1f} µs")
    print("  reasons:", dict(sorted(actions.items())))
    if queries:
        print("  storage queries (median µs per call, calls per evaluation incl. the component re-run):")
        for k, v in sorted(q.items(), key=lambda kv: -statistics.median(kv[1]) * len(kv[1])):
            print(f"    {k:18s} {statistics.median(v):7.2f} µs  x{len(v) / (2 * steps):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-min", default="1000,1800,4000", help="tape densities, trades per minute")
    ap.add_argument("--step", type=float, default=8.0, help="seconds between evaluations")
    ap.add_argument("--queries", action="store_true", help="also time each storage query")
    args = ap.parse_args()
    for per_min in (float(x) for x in args.per_min.split(",")):
        run(per_min, args.steps, args.step, args.seed, args.queries)


if __name__ == "__main__":
    main()
