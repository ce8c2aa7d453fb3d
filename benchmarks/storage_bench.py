"""DataStorage throughput and query latency on BTC-like synthetic trades (a script, not a test).

    python benchmarks/storage_bench.py [--hours 1] [--rate 30] [--batch 50] [--seed 7]

Prints: batched trade ingest rate (events/s, including retention pruning and reallocations), the same trades as
``TradeBatch``es (int64 ids as a synthetic feed sends, string ids as the live decoder does) next to ``Trade`` events
for batch sizes 1, 10, 40 and 200, book-delta ingest rate (50-level books, ~30 changed levels per delta: through
``DataStorage.apply_batch`` with continuity checks and spoof tracking, and ``OrderBook.try_apply`` alone), the
simulated exchange's ``on_market`` cost per batch of prints (no order; a resting order the prints never reach; a
resting order at the touch whose queue every Sell print at its price consumes), the median and p99 latency of each
query on a one-hour tape, an "evaluation" of the window queries the analyzers make, and peak RSS
(``resource.getrusage``, whole process, so it includes numpy/python and the pre-built events).
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.simulated import ConstantLatency, SimExchange
from bot.clock import FixedClock
from bot.events import BookDelta, BookSnapshot, Trade, TradeBatch
from bot.instruments import InstrumentRegistry
from bot.ports import OrderRequest
from bot.storage import DataStorage
from bot.storage.book import OrderBook
from replay.virtual_loop import run_virtual, virtual_clock
from settings import Settings

SYM = "BTCUSDT"


def make_trades(n: int, rate: float, t0: float, seed: int, id_prefix: str = "id") -> list[Trade]:
    """Poisson arrivals at ``rate``/s, a 0.1-tick random walk around 65 000, lognormal sizes, ~50 % buys."""
    rng = np.random.default_rng(seed)
    ts = t0 + np.cumsum(rng.exponential(1.0 / rate, n))
    ticks = np.cumsum(rng.choice([-1, 0, 0, 1], n))
    price = np.round(65_000.0 + 0.1 * ticks, 1)
    size = np.round(rng.lognormal(-4.0, 1.2, n), 3) + 0.001
    buy = rng.random(n) < 0.5
    return [
        Trade(SYM, float(t), float(p), float(s), "Buy" if b else "Sell", f"{id_prefix}{i}")
        for i, (t, p, s, b) in enumerate(zip(ts, price, size, buy, strict=True))
    ]


def make_book_deltas(
    n: int, seed: int, t0: float, levels: int = 50, changed: int = 30, tick: float = 0.1
) -> tuple[BookSnapshot, list[BookDelta]]:
    """A snapshot and ``n`` valid deltas of a ``levels``-per-side book around a random-walk mid: each delta moves
    the book with the mid (levels leaving/entering at the edges) and re-sizes or deletes (20 %) random levels so
    that about ``changed`` levels change; sizes lognormal, so some levels are large enough for spoof tracking."""
    rng = np.random.default_rng(seed)
    mid = 650_000  # ticks
    book = (
        {mid - 1 - k: round(float(x), 3) + 0.001 for k, x in enumerate(rng.lognormal(-0.5, 1.0, levels))},
        {mid + 1 + k: round(float(x), 3) + 0.001 for k, x in enumerate(rng.lognormal(-0.5, 1.0, levels))},
    )

    def px(k: int) -> float:
        return round(k * tick, 1)

    snap = BookSnapshot(SYM, t0, [(px(k), s) for k, s in sorted(book[0].items(), reverse=True)],
                        [(px(k), s) for k, s in sorted(book[1].items())], 1)
    moves = rng.choice((-1, 0, 0, 1), n)
    out = []
    for i in range(n):
        mid += int(moves[i])
        diff: tuple[dict[int, float], dict[int, float]] = ({}, {})
        for side, want, d in zip(book, (range(mid - levels, mid), range(mid + 1, mid + 1 + levels)), diff, strict=True):
            for k in [k for k in side if k not in want]:
                del side[k]
                d[k] = 0.0
            for k in want:
                if k not in side:
                    side[k] = d[k] = round(float(rng.lognormal(-0.5, 1.0)), 3) + 0.001
        m = max(0, changed - len(diff[0]) - len(diff[1]))
        picks = rng.choice(2 * levels, m, replace=False).tolist()
        sizes = (np.round(rng.lognormal(-0.5, 1.0, m), 3) + 0.001).tolist()
        dels = (rng.random(m) < 0.2).tolist()
        for j, size, dl in zip(picks, sizes, dels, strict=True):
            b = j < levels
            side, d, k = (book[0], diff[0], mid - 1 - j) if b else (book[1], diff[1], mid + 1 + j - levels)
            if not dl:
                side[k] = d[k] = size
            elif k in side:
                del side[k]
                d[k] = 0.0
        bids = [(px(k), s) for k, s in diff[0].items()]
        asks = [(px(k), s) for k, s in diff[1].items()]
        out.append(BookDelta(SYM, t0 + 0.01 * (i + 1), bids, asks, i + 2))
    return snap, out


def bench_deltas(snap: BookSnapshot, deltas: list[BookDelta]) -> tuple[float, float]:
    """(deltas/s through DataStorage.apply_batch, one delta per batch; deltas/s of OrderBook.try_apply alone)."""
    clock = FixedClock(snap.ts)
    settings = Settings()
    ds = DataStorage(settings, clock, [SYM])
    ds.apply(snap)
    apply = ds.apply_batch
    t = time.perf_counter()
    for d in deltas:
        clock.t = d.ts
        apply([d])
    full = len(deltas) / (time.perf_counter() - t)
    if ds.issues:
        raise RuntimeError(f"delta stream rejected: {ds.issues[0]}")
    book = OrderBook(SYM, settings.websocket.subscription_depth)
    max_bps = settings.spread.max_valid_spread_bps
    book.try_apply(snap, True, max_bps)
    try_apply = book.try_apply
    t = time.perf_counter()
    for d in deltas:
        try_apply(d, False, max_bps)
    alone = len(deltas) / (time.perf_counter() - t)
    return full, alone


def as_columns(trades: list[Trade]) -> tuple[np.ndarray, ...]:
    """ts, price, size, is_buy, int64 ids, string ids (object array) of ``trades``."""
    sids = np.empty(len(trades), dtype=object)
    sids[:] = [t.trade_id for t in trades]
    return (np.array([t.ts for t in trades]), np.array([t.price for t in trades]), np.array([t.size for t in trades]),
            np.array([t.side == "Buy" for t in trades]), np.arange(1, len(trades) + 1, dtype=np.int64), sids)


def bench_batch_ingest(cols: tuple[np.ndarray, ...], batch: int, str_ids: bool) -> float:
    """trades/s through ``DataStorage.apply_batch``, one ``TradeBatch`` per queue item (as ``bench_ingest``)."""
    ts, price, size, buy, ids, sids = cols
    tid = sids if str_ids else ids
    n = len(ts)
    items = [[TradeBatch(SYM, ts[i : i + batch], price[i : i + batch], size[i : i + batch], buy[i : i + batch],
                         tid[i : i + batch])] for i in range(0, n, batch)]
    ends = ts[np.minimum(np.arange(batch, n + batch, batch), n) - 1].tolist()
    clock = FixedClock(float(ts[0]))
    ds = DataStorage(Settings(), clock, [SYM])
    apply = ds.apply_batch
    t = time.perf_counter()
    for item, end in zip(items, ends, strict=True):
        clock.t = end
        apply(item)
    dt = time.perf_counter() - t
    if ds.last_seq(SYM) != n or ds.issues:
        raise RuntimeError(f"batch ingest lost trades: {ds.last_seq(SYM)} of {n}, {list(ds.issues)[:1]}")
    return n / dt


def bench_ingest(trades: list[Trade], batch: int) -> tuple[float, DataStorage, FixedClock]:
    clock = FixedClock(trades[0].ts)
    ds = DataStorage(Settings(), clock, [SYM])
    batches = [trades[i : i + batch] for i in range(0, len(trades), batch)]
    ends = [b[-1].ts for b in batches]
    apply = ds.apply_batch
    t = time.perf_counter()
    for b, end in zip(batches, ends, strict=True):
        clock.t = end
        apply(b)
    dt = time.perf_counter() - t
    return len(trades) / dt, ds, clock


def bench_sim(batches: list[list[Any]], order: str, bid: float) -> float:
    """µs per ``on_market`` call of the simulated exchange over ``batches``: ``order`` is "none", "away" (a resting
    buy 50 ticks under every print) or "touch" (a resting buy at ``bid`` behind 10⁶ displayed: Sell prints there
    consume its queue, none fills it)."""

    async def run() -> float:
        ex = SimExchange(Settings(), virtual_clock(1_786_300_000.0), InstrumentRegistry.bundled(), seed=1,
                         latency=ConstantLatency(0, 0))
        ex.on_market([BookSnapshot(SYM, 1_786_300_000.0, [(bid, 1e6), (bid - 5.0, 1e6)], [(bid + 1.0, 1.0)], 1)])
        if order != "none":
            px = Decimal(str(bid if order == "touch" else bid - 5.0))
            await ex.place_order(OrderRequest(SYM, "Buy", "Limit", Decimal("0.001"), "b1", price=px))
        on_market = ex.on_market
        t = time.perf_counter()
        for b in batches:
            on_market(b)
        dt = time.perf_counter() - t
        if ex.fills or len(await ex.get_open_orders(SYM)) != (order != "none"):
            raise RuntimeError("the benchmark order filled or never rested")
        return dt / len(batches) * 1e6

    return run_virtual(run())


def sim_on_market_figures(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bid = 65_000.0
    print("SimExchange.on_market, µs per call (one batch of prints at 0..5 ticks over a resting bid; median of 3):")
    print(f"{'batch':>6s} {'delivery':>11s} {'no order':>9s} {'order away':>11s} {'order at touch':>15s}")
    for bs in (40, 200):
        k = 2000 if bs == 40 else 400
        n = bs * k
        price = np.round(bid + 0.1 * rng.integers(0, 6, n), 1)
        buy = rng.random(n) < 0.5
        size = np.round(rng.lognormal(-4.0, 1.2, n), 3) + 0.001
        ts = 1_786_300_000.0 + np.sort(rng.uniform(0, 1, n))
        ids = np.arange(1, n + 1, dtype=np.int64)
        as_batches = [[TradeBatch(SYM, ts[i : i + bs], price[i : i + bs], size[i : i + bs], buy[i : i + bs],
                                  ids[i : i + bs])] for i in range(0, n, bs)]
        as_trades = [[Trade(SYM, t, p, v, "Buy" if b else "Sell", str(j)) for t, p, v, b, j in
                      zip(ts[i : i + bs].tolist(), price[i : i + bs].tolist(), size[i : i + bs].tolist(),
                          buy[i : i + bs].tolist(), range(i, i + bs), strict=True)] for i in range(0, n, bs)]
        for name, batches in (("TradeBatch", as_batches), ("Trade", as_trades)):
            cells = [statistics.median(bench_sim(batches, o, bid) for _ in range(3)) for o in ("none", "away", "touch")]
            print(f"{bs:6d} {name:>11s} {cells[0]:9.2f} {cells[1]:11.2f} {cells[2]:15.2f}")


def timeit_us(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    samples = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t) / 1000.0)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3000)
    args = ap.parse_args()

    n = int(args.hours * 3600 * args.rate)
    t0 = 1_786_300_000.0
    trades = make_trades(n, args.rate, t0, args.seed)
    runs = [bench_ingest(trades, args.batch) for _ in range(5)]
    rates = sorted(r[0] for r in runs)
    _, ds, clock = runs[-1]
    print(
        f"ingest: {n:,} trades ({args.hours} h at {args.rate}/s) in batches of {args.batch}, 5 runs: "
        f"median {rates[2]:,.0f} trades/s (min {rates[0]:,.0f}, max {rates[-1]:,.0f})"
    )

    # a 3x longer stream exercises pruning + reallocation in steady state
    long_trades = make_trades(3 * n, args.rate, t0, args.seed + 1)
    rates_long = sorted(bench_ingest(long_trades, args.batch)[0] for _ in range(3))
    del long_trades
    print(f"ingest with retention pruning active ({3 * n:,} trades, 3 h), 3 runs: median {rates_long[1]:,.0f} trades/s")
    half = trades[: n // 2]
    cols = as_columns(half)
    print(f"ingest by batch size ({len(half):,} trades; median of 3 interleaved runs), trades/s (µs per queue item):")
    print(f"{'batch':>6s} {'Trade events':>22s} {'TradeBatch int ids':>22s} {'TradeBatch str ids':>22s}")
    for bs in (1, 10, 40, 200):
        runs: list[list[float]] = [[], [], []]
        for _ in range(3):
            runs[0].append(bench_ingest(half, bs)[0])
            runs[1].append(bench_batch_ingest(cols, bs, str_ids=False))
            runs[2].append(bench_batch_ingest(cols, bs, str_ids=True))
        cells = [f"{r:,.0f} ({bs / r * 1e6:.2f})" for r in (statistics.median(x) for x in runs)]
        print(f"{bs:6d} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>22s}")
    del cols
    sim_on_market_figures(args.seed)

    snap, deltas = make_book_deltas(20_000, args.seed, t0)
    per = sum(len(d.bids) + len(d.asks) for d in deltas) / len(deltas)
    res = sorted(bench_deltas(snap, deltas) for _ in range(3))
    print(f"book deltas (50 levels/side, {per:.1f} changed levels per delta, {len(deltas):,} deltas), 3 runs, median: "
          f"DataStorage.apply_batch {res[1][0]:,.0f} deltas/s ({1e6 / res[1][0]:.1f} µs each, incl. continuity and "
          f"spoof tracking); OrderBook.try_apply alone {res[1][1]:,.0f} deltas/s ({1e6 / res[1][1]:.1f} µs each)")
    del snap, deltas

    now = clock.now()
    mid = trades[-1].price
    bids = [(mid - 0.1 * i, 1.0 + i % 7) for i in range(50)]
    asks = [(mid + 0.1 * (i + 1), 1.0 + i % 5) for i in range(50)]
    ds.apply(BookSnapshot(SYM, now, bids, asks, 1))
    last = ds.last_seq(SYM)
    inf = math.inf
    print(f"tape: {ds.count_between(SYM, -inf, inf):,} trades retained; now = t0 + {now - t0:.0f}s")

    if hasattr(ds, "side_sums_multi"):
        def multi(t0s: list[float], t1: float) -> None:
            ds.side_sums_multi(SYM, t0s, t1)
    else:  # an older storage (to compare before/after)
        def multi(t0s: list[float], t1: float) -> None:
            for t0 in t0s:
                ds.side_sums(SYM, t0, t1)

    queries: dict[str, Callable[[], object]] = {
        "side_sums 30s": lambda: ds.side_sums(SYM, now - 30, inf),
        "side_sums 1h": lambda: ds.side_sums(SYM, now - 3600, inf),
        "side_sums x5 (multi) 15s-120s": lambda: multi([now - w for w in (15.0, 30.0, 60.0, 120.0, 30.0)], inf),
        "price_stats 60s": lambda: ds.price_stats(SYM, now - 60, inf),
        "price_stats 1h": lambda: ds.price_stats(SYM, now - 3600, inf),
        "count_between 300s": lambda: ds.count_between(SYM, now - 300, now),
        "trades_since 30s": lambda: ds.trades_since(SYM, now - 30),
        "trades_between 30s": lambda: ds.trades_between(SYM, now - 30, now),
        "last_n 100": lambda: ds.last_n(SYM, 100),
        "trades_after_seq 50": lambda: ds.trades_after_seq(SYM, last - 50),
        "book_top bid 50": lambda: ds.book_top(SYM, "bid", 50),
        "best": lambda: ds.best(SYM),
        "suspicious_orders": lambda: ds.suspicious_orders(SYM, now - 300),
        "view + .price.sum() 30s": lambda: ds.trades_since(SYM, now - 30).price.sum(),
    }
    print(f"{'query':28s} {'median µs':>10s} {'p99 µs':>8s}")
    for name, fn in queries.items():
        med, p99 = timeit_us(fn, args.reps)
        print(f"{name:28s} {med:10.2f} {p99:8.2f}")

    def evaluation() -> None:
        # what VolumeAnalyzer + ImbalanceAnalyzer ask per evaluation (§4/§5): ~10 storage queries
        ds.price_stats(SYM, now - 3600, inf)
        multi([now - w for w in (15.0, 30.0, 60.0, 120.0, 30.0)], inf)  # momentum windows + current bucket
        ds.side_sums(SYM, now - 30, now - 15)
        ds.side_sums(SYM, now - 15, inf)
        ds.trades_since(SYM, now - 30)
        ds.count_between(SYM, now - 300, now)
        ds.count_between(SYM, now - 30, inf)
        ds.last_n(SYM, 50)
        ds.trades_after_seq(SYM, last - 30)
        ds.book_top(SYM, "bid", 50)
        ds.book_top(SYM, "ask", 50)

    med, p99 = timeit_us(evaluation, args.reps)
    print(f"{'evaluation (queries)':28s} {med:10.2f} {p99:8.2f}")

    # live-like: one second of new trades lands between evaluations, so the first aggregate query pays the lazy
    # prefix-sum/min-max catch-up for those trades
    fresh = make_trades(int(args.rate) * 500, args.rate, now, args.seed + 2, id_prefix="live")
    per_s = int(args.rate)
    samples = []
    for k in range(500):
        chunk = fresh[k * per_s : (k + 1) * per_s]
        clock.t = chunk[-1].ts
        ds.apply_batch(chunk)
        now = clock.t
        t = time.perf_counter_ns()
        evaluation()
        samples.append((time.perf_counter_ns() - t) / 1000.0)
    samples.sort()
    print(f"{'evaluation after 1 s of trades':28s} {statistics.median(samples):10.2f} {samples[int(0.99 * 499)]:8.2f}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS: {peak_kb / 1024:.0f} MiB (whole process, incl. {n:,} pre-built Trade objects)")


if __name__ == "__main__":
    main()
