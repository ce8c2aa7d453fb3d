"""Execution layer (STRATEGY.md §8–§9, §11): the position book, the Executor, close reasons and trades.csv."""

from bot.execution.close_reasons import CloseReason, CloseReasonDetector, CloseVerdict
from bot.execution.executor import Executor
from bot.execution.fills import Fill
from bot.execution.positions import PositionRecord, PositionState, Protection
from bot.execution.trade_log import TradeLog

__all__ = ["CloseReason", "CloseReasonDetector", "CloseVerdict", "Executor", "Fill", "PositionRecord",
           "PositionState", "Protection", "TradeLog"]
