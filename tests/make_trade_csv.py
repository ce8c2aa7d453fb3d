"""Build the Bybit public trade archive CSV fixture from the bundled capture's real ``publicTrade`` frames.

There is no real public.bybit.com/trading file offline, so ``data/ws/bybit-trading-from-capture-2026-08-09.csv.gz``
is this capture's trades (all four symbols) in that archive's layout: ``timestamp`` epoch seconds with the trade time
``T``, ``size``/``price`` as the wire strings, ``tickDirection`` from ``L``, ``trdMatchID`` from ``i``,
``grossValue`` = price·size·1e8, ``homeNotional`` = size, ``foreignNotional`` = price·size. Run from the project root:
``python tests/make_trade_csv.py``.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "data" / "ws" / "bybit-v5-public-linear-2026-08-09-44s.ndjson.gz"
OUT = ROOT / "data" / "ws" / "bybit-trading-from-capture-2026-08-09.csv.gz"
HEADER = "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional"


def main() -> None:
    rows = []
    with gzip.open(CAPTURE, "rt", encoding="utf-8") as fh:
        for line in fh:
            msg = json.loads(line)["msg"]
            if not msg.get("topic", "").startswith("publicTrade."):
                continue
            for t in msg["data"]:
                p, v = Decimal(t["p"]), Decimal(t["v"])
                rows.append(
                    (
                        t["T"],
                        f"{Decimal(t['T']) / 1000:.3f},{t['s']},{t['S']},{t['v']},{t['p']},{t['L']},"
                        f"{t['i']},{int(p * v * 100_000_000)},{t['v']},{p * v}",
                    )
                )
    rows.sort(key=lambda r: r[0])
    with gzip.GzipFile(OUT, "wb", mtime=0) as gz:
        gz.write(("\n".join([HEADER, *(r[1] for r in rows)]) + "\n").encode())
    print(f"wrote {OUT} ({len(rows)} trades)")


if __name__ == "__main__":
    main()
