"""Market-state storage: L2 books, trade tapes and spoof records per symbol (STRATEGY.md §3)."""

from bot.storage.storage import DataStorage
from bot.storage.types import BookTop, PriceStats, SideSums, StorageIssue, SuspiciousOrder, TradeView

__all__ = ["BookTop", "DataStorage", "PriceStats", "SideSums", "StorageIssue", "SuspiciousOrder", "TradeView"]
