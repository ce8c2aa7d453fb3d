"""On-disk kline cache: one zstd parquet file per symbol and UTC day, so a span fetched once is never fetched again.

Each day file records in its parquet metadata how far it is covered (``covered_until_ms``, exclusive): a finished
day is complete, today's file is extended on the next request. Writes are atomic (tmp + rename) so parallel
workers never read a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from replay.data.bundled import PROJECT_ROOT
from replay.data.timeutil import DAY_MS, day_name
from replay.data.validate import COLUMNS

DEFAULT_CACHE_DIR = PROJECT_ROOT / "logs" / "cache" / "klines"
_META_KEY = b"covered_until_ms"


class KlineCache:
    """Day files under ``{root}/{category}-{interval}m/{SYMBOL}/{YYYY-MM-DD}.parquet``."""

    def __init__(self, root: Path = DEFAULT_CACHE_DIR, *, category: str = "linear", interval: str = "1") -> None:
        self.root = Path(root) / f"{category}-{interval}m"

    def day_path(self, symbol: str, day_ms: int) -> Path:
        return self.root / symbol / f"{day_name(day_ms)}.parquet"

    def read_day(self, symbol: str, day_ms: int) -> tuple[dict[str, np.ndarray], int] | None:
        """``(columns, covered_until_ms)`` or ``None`` when the day is not cached (or the file is unreadable)."""
        path = self.day_path(symbol, day_ms)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
            covered = int(table.schema.metadata[_META_KEY])
            cols = {c: table.column(c).to_numpy() for c in COLUMNS}
        except (OSError, KeyError, ValueError, pa.ArrowException) as e:
            logger.warning(f"kline cache file {path} unreadable ({e}); it will be fetched again")
            return None
        if not day_ms <= covered <= day_ms + DAY_MS:
            logger.warning(f"kline cache file {path} has a bad coverage mark {covered}; it will be fetched again")
            return None
        return cols, covered

    def write_day(self, symbol: str, day_ms: int, cols: dict[str, np.ndarray], covered_until_ms: int) -> Path:
        path = self.day_path(symbol, day_ms)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({
            "open_time_ms": pa.array(np.asarray(cols["open_time_ms"], dtype=np.int64)),
            **{c: pa.array(np.asarray(cols[c], dtype=np.float64)) for c in COLUMNS[1:]},
        }).replace_schema_metadata({_META_KEY: str(int(covered_until_ms)).encode(), b"source": b"bybit-v5-rest"})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
