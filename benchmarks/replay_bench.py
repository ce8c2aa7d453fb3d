"""Replay throughput: a 30-day BTCUSDT run in both no-repaint modes, each in its own process.

Prints wall and CPU seconds, simulated days per wall second, market trades per second end to end (every synthetic
trade generated, delivered, ingested and matched), market events per second (a book update or a per-second
``TradeBatch`` counts as one), the bot's round trips and peak RSS. A benchmark, not a test: it asserts nothing.
Usage: ``python benchmarks/replay_bench.py [--days 30] [--symbol BTCUSDT] [--modes strict,live] [--repeat N]``.
With ``--repeat N`` the modes run in turn N times (strict, live, strict, live, …), so a drift of the machine's speed
touches both alike, and a last row per mode gives the median wall seconds and its range: on a shared VM single runs of
the same replay differ by up to ±15%.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(symbol: str, days: float, mode: str, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from replay.engine import SymbolJob, run_symbol
    from settings import Settings
    from settings.search import with_overrides

    settings = with_overrides(Settings(), {"backtest.strict_repainting_check": mode == "strict"})
    job = SymbolJob(symbol=symbol, settings_json=settings.model_dump_json(), out_dir=str(out), seed=42, days=days)
    t0 = time.perf_counter()
    r = run_symbol(job)
    wall = time.perf_counter() - t0
    sim_days = (r.end_ts - r.start_ts) / 86_400.0
    print(json.dumps({"mode": mode, "wall_s": wall, "cpu_s": time.process_time(), "sim_days": sim_days,
                      "events": r.events, "batches": r.batches, "market_trades": r.extra["market_trades"],
                      "trades": r.metrics["total_trades"],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--modes", default="strict,live")
    ap.add_argument("--repeat", type=int, default=1, help="runs per mode, interleaved (default 1)")
    ap.add_argument("--child", choices=["strict", "live"])
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            child(args.symbol, args.days, args.child, Path(tmp))
        return
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    modes = args.modes.split(",")
    bad = [m for m in modes if m not in ("strict", "live")]
    if bad:
        ap.error(f"unknown mode(s) {','.join(bad)}: choose from strict, live")
    print(f"replay benchmark: {args.symbol}, {args.days:g} days, one process per run")
    head = ("mode", "wall s", "CPU s", "sim days/s", "trades/s", "market trades", "events/s", "round trips",
            "peak RSS MB")
    print(f"{head[0]:<8} {head[1]:>8} {head[2]:>8} {head[3]:>11} {head[4]:>10} {head[5]:>14} {head[6]:>10} "
          f"{head[7]:>12} {head[8]:>12}")
    walls: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeat):
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--symbol", args.symbol, "--days",
                                  str(args.days)], capture_output=True, text=True, check=False, cwd=ROOT)
            if out.returncode != 0:
                print(f"{mode:<8} failed:\n{out.stderr[-3000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            w = r["wall_s"]
            walls[mode].append(w)
            print(f"{mode:<8} {w:8.1f} {r['cpu_s']:8.1f} {r['sim_days'] / w:11.3f} {r['market_trades'] / w:10,.0f} "
                  f"{r['market_trades']:14,d} {r['events'] / w:10,.0f} {r['trades']:12d} {r['peak_rss_mb']:12.0f}",
                  flush=True)
    if args.repeat > 1:
        for mode, ws in walls.items():
            if ws:
                print(f"{mode:<8} median wall {statistics.median(ws):.1f} s over {len(ws)} runs "
                      f"(min {min(ws):.1f}, max {max(ws):.1f})")


if __name__ == "__main__":
    main()
