"""Exceptions of the kline data provider.

Messages are ONE line (the CLI prints ``str(exc)`` as is) and name the file/source and the row or span at fault,
so a user can open the file and see the problem without a traceback.
"""

from __future__ import annotations


class DataError(ValueError):
    """Candle data is missing, out of range or malformed; the message says where and what exists."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # collapse any newline so the CLI line stays one line


class DataSourceError(DataError):
    """A data source cannot deliver (unsupported source, REST failure, exhausted retries)."""
