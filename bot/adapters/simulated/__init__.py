"""The simulated Bybit: an adapter of the Exchange port used by paper trading and replay (ARCHITECTURE.md §6).

It lives in ``bot/`` because paper mode (``python -m bot --mode paper``) trades against it and ``bot/`` may not import
``replay/``; it depends on ``bot/`` only. Rules in :mod:`bot.adapters.simulated.sim`.
"""

from bot.adapters.simulated.book import KEEP_LEVELS, SimBook
from bot.adapters.simulated.fees import FeeModel, TradingValueFees
from bot.adapters.simulated.latency import ConstantLatency, LatencyModel, LogNormalLatency, latency_from_settings
from bot.adapters.simulated.ledger import Ledger, net_fill
from bot.adapters.simulated.queue import QueueModel, RiskAverseQueue
from bot.adapters.simulated.sim import ERR_DUPLICATE_LINK_ID, MAINTENANCE_MARGIN_RATE, SimExchange

__all__ = [
    "ERR_DUPLICATE_LINK_ID",
    "KEEP_LEVELS",
    "MAINTENANCE_MARGIN_RATE",
    "ConstantLatency",
    "FeeModel",
    "LatencyModel",
    "Ledger",
    "LogNormalLatency",
    "QueueModel",
    "RiskAverseQueue",
    "SimBook",
    "SimExchange",
    "TradingValueFees",
    "latency_from_settings",
    "net_fill",
]
