"""What the executor's collaborators (entry, protection, closing, reconciliation, stream watch) may use of it.

They receive the executor as an :class:`ExecutorHost`: its public surface only, so none of them imports the
executor module (no import cycle) or reaches into its private state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.clock import Clock
from bot.execution.close_reasons import CloseReasonDetector
from bot.execution.positions import PositionBook, PositionRecord
from bot.execution.sync import AccountSync
from bot.execution.trade_log import TradeLog
from bot.instruments import InstrumentRegistry
from bot.ports import Exchange, Execution, OrderUpdate, PositionUpdate, WalletUpdate
from bot.risk import RiskManager

if TYPE_CHECKING:
    from settings import Settings

T = TypeVar("T")


class SignalLike(Protocol):
    """What the executor needs of a Signal (bot/analysis/signals.py)."""

    symbol: str
    ts: float
    range_pct: float
    atr_pct: float
    std_pct: float

    def summary(self) -> str: ...


class StorageLike(Protocol):
    def book_valid(self, sym: str, now: float) -> bool: ...
    def best(self, sym: str) -> Any: ...
    def last_price(self, sym: str) -> float | None: ...


class ExecutorHost(Protocol):
    """The executor as its collaborators see it (implemented by :class:`bot.execution.executor.Executor`)."""

    settings: Settings
    xs: Any  # settings.execution
    clock: Clock
    exchange: Exchange
    storage: StorageLike
    risk: RiskManager
    instruments: InstrumentRegistry
    trade_log: TradeLog | None
    on_closed: Callable[[PositionRecord], None] | None
    prefix: str
    taker_rate: Decimal
    book: PositionBook
    detector: CloseReasonDetector
    closed: list[PositionRecord]
    sync: AccountSync
    last_event_at: float

    async def send(self, name: str, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T: ...
    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> Any: ...
    def new_position_id(self, now: float) -> str: ...
    def open(self, sym: str, direction: int, signal: SignalLike) -> bool: ...
    def apply_order(self, u: OrderUpdate) -> None: ...
    def apply_execution(self, ex: Execution) -> None: ...
    def apply_position(self, p: PositionUpdate) -> None: ...
    def apply_wallet(self, w: WalletUpdate) -> None: ...
    async def mark_open(self, rec: PositionRecord, entry_reason: str) -> None: ...
    def write_open(self, rec: PositionRecord, ts: float) -> None: ...
    def drop(self, rec: PositionRecord, reason: str) -> None: ...
    def spawn_protection(self, rec: PositionRecord) -> None: ...
    def begin_close(self, rec: PositionRecord, reason: str, reenter: SignalLike | None = None) -> None: ...
    def force_flat(self, rec: PositionRecord, price: Decimal | None) -> None: ...
    async def reconcile(self) -> None: ...
    async def reconcile_symbol(self, sym: str) -> None: ...
    async def refresh_orders(self) -> None: ...
    async def refresh_account(self, symbols: Sequence[str], *, wallet: bool = False) -> None: ...
