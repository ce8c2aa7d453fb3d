"""1m OHLCV data for the replay harness: bundled files, on-disk cache, Bybit REST; validated, as numpy arrays."""

from replay.data.errors import DataError, DataSourceError
from replay.data.provider import RECORDED_MSG, KlineProvider, describe, load_candles, load_segments
from replay.data.rest import BybitKlineClient, FetchResult
from replay.data.validate import DataIssue, ensure_valid, gap_issues, segment_bounds, validate_candles

__all__ = [
    "RECORDED_MSG",
    "BybitKlineClient",
    "DataError",
    "DataIssue",
    "DataSourceError",
    "FetchResult",
    "KlineProvider",
    "describe",
    "ensure_valid",
    "gap_issues",
    "load_candles",
    "load_segments",
    "segment_bounds",
    "validate_candles",
]
