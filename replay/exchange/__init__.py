"""The simulated Bybit used by replay and paper trading (ARCHITECTURE.md §6); rules in :mod:`replay.exchange.sim`."""

from replay.exchange.book import KEEP_LEVELS, SimBook
from replay.exchange.fees import FeeModel, TradingValueFees
from replay.exchange.latency import ConstantLatency, LatencyModel, LogNormalLatency, latency_from_settings
from replay.exchange.ledger import Ledger, net_fill
from replay.exchange.queue import QueueModel, RiskAverseQueue
from replay.exchange.sim import ERR_DUPLICATE_LINK_ID, MAINTENANCE_MARGIN_RATE, SimExchange

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
