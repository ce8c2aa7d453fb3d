"""The candle input of the synthetic market: plain numpy columns, nothing else.

``open_time_ms`` is the candle's OPEN time (Bybit ``startTime``): a candle stamped t covers [t, t+60 s) and its
close is only known at t+60 s. The data provider (``replay/data``) returns this type; the generator never reads files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CANDLE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, eq=False)
class Candles:
    """1-minute OHLCV of one symbol, ascending ``open_time_ms`` (int64), prices and base-coin volume (float64)."""

    symbol: str
    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.open_time_ms)
        for name in ("open", "high", "low", "close", "volume"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Candles({self.symbol}): column {name} has {len(getattr(self, name))} rows, "
                                 f"open_time_ms has {n}")

    def __len__(self) -> int:
        return len(self.open_time_ms)

    def slice(self, a: int, b: int) -> Candles:
        """Rows [a, b) as views (no copy)."""
        return Candles(self.symbol, self.open_time_ms[a:b], self.open[a:b], self.high[a:b], self.low[a:b],
                       self.close[a:b], self.volume[a:b])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad row; the generator relies on every one of these."""
        t = np.asarray(self.open_time_ms)
        if t.dtype.kind not in "iu":
            raise ValueError(f"Candles({self.symbol}): open_time_ms must be integer ms, got dtype {t.dtype}")
        o, h, lo, c, v = self.open, self.high, self.low, self.close, self.volume
        checks = (
            ("open_time_ms not on a minute", t % CANDLE_MS != 0),
            ("non-finite value", ~np.isfinite(np.stack([o, h, lo, c, v])).all(0)),
            ("low <= 0", lo <= 0),
            ("high < max(open, close)", h < np.maximum(o, c)),
            ("low > min(open, close)", lo > np.minimum(o, c)),
            ("volume < 0", v < 0),
        )
        for what, bad in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"Candles({self.symbol}) row {i} (open_time_ms={int(t[i])}): {what} "
                                 f"(o={o[i]}, h={h[i]}, l={lo[i]}, c={c[i]}, v={v[i]})")
        if n_bad := int((np.diff(t) <= 0).sum()):
            i = int(np.flatnonzero(np.diff(t) <= 0)[0]) + 1
            raise ValueError(f"Candles({self.symbol}): open_time_ms not strictly ascending at row {i} ({n_bad} rows)")


def snapshot_flags(open_time_ms: np.ndarray) -> np.ndarray:
    """True where the feed starts a new book with a snapshot: the first candle, every UTC day and after a gap."""
    t = np.asarray(open_time_ms, np.int64)
    flags = t % DAY_MS == 0
    if len(t):
        flags[0] = True
        flags[1:] |= np.diff(t) != CANDLE_MS
    return flags
