"""The three ports that differ between live, paper and replay (ARCHITECTURE.md §1).

Everything else in ``bot/`` is the same code in all three. ``Clock`` lives in :mod:`bot.clock`; this module holds
``MarketFeed`` and ``Exchange`` plus the private (account) events an exchange delivers, at Bybit's level of
meaning: the same fields as Bybit's private ``order``/``execution``/``position``/``wallet`` topics, the same
error codes as its REST API. Money fields are ``Decimal`` so that fills, positions and the ledger reconcile
exactly.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

import msgspec

from bot.events import EventBatch
from bot.instruments import InstrumentRegistry

OrderSide = Literal["Buy", "Sell"]
OrderType = Literal["Limit", "Market"]
TimeInForce = Literal["GTC", "IOC", "FOK", "PostOnly"]
OrderStatus = Literal["New", "PartiallyFilled", "Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected",
                      "Untriggered", "Triggered", "Deactivated"]

# Bybit v5 retCodes the bot reacts to (the simulated exchange raises exactly these).
ERR_PARAMS = 10001            # bad parameter: price off tick, qty off step, wrong-side TP/SL ...
ERR_RATE_LIMIT = 10006        # too many visits
ERR_ORDER_NOT_EXISTS = 110001 # order does not exist / too late to amend or cancel
ERR_DUPLICATE_LINK_ID = 110072 # orderLinkId already used: our own earlier attempt reached the exchange
ERR_INSUFFICIENT_BALANCE = 110007
ERR_REDUCE_ONLY = 110017      # reduce-only order would increase the position / position is zero
ERR_QTY_TOO_SMALL = 110094    # order does not meet minimum order value / qty
ERR_POSTONLY_WOULD_TAKE = 110095
ERR_LEVERAGE_NOT_MODIFIED = 110043
ERR_NOT_MODIFIED = 34040      # trading-stop: nothing changed


class ExchangeError(Exception):
    """A request the exchange refused, with Bybit's ``retCode`` and ``retMsg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class OrderRequest(msgspec.Struct, frozen=True):
    """``POST /v5/order/create`` for category=linear, one-way mode. ``price``/``qty`` must be on the grid."""

    symbol: str
    side: OrderSide
    order_type: OrderType
    qty: Decimal
    order_link_id: str
    price: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    reduce_only: bool = False


class OrderAck(msgspec.Struct, frozen=True):
    order_id: str
    order_link_id: str


class OrderUpdate(msgspec.Struct, frozen=True, tag="order"):
    """The private ``order`` topic (and REST order queries)."""

    symbol: str
    order_id: str
    order_link_id: str
    side: OrderSide
    order_type: OrderType
    price: Decimal
    qty: Decimal
    cum_exec_qty: Decimal
    avg_price: Decimal
    status: OrderStatus
    time_in_force: TimeInForce
    reduce_only: bool
    ts: float
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    reject_reason: str = "EC_NoError"

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.cum_exec_qty if self.status in ("New", "PartiallyFilled") else Decimal(0)

    @property
    def is_final(self) -> bool:
        return self.status in ("Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected", "Deactivated")


class Execution(msgspec.Struct, frozen=True, tag="execution"):
    """The private ``execution`` topic: one fill (or a funding charge, ``exec_type == "Funding"``)."""

    symbol: str
    exec_id: str
    order_id: str
    order_link_id: str
    side: OrderSide
    exec_price: Decimal
    exec_qty: Decimal
    exec_fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    ts: float
    exec_type: str = "Trade"          # Trade | Funding | BustTrade | AdlTrade
    create_type: str = "CreateByUser"  # CreateByUser | CreateByTakeProfit | CreateByStopLoss | CreateByLiq ...
    stop_order_type: str = ""          # TakeProfit | StopLoss | ...
    order_type: OrderType = "Limit"
    leaves_qty: Decimal = Decimal(0)
    closed_size: Decimal = Decimal(0)


class PositionUpdate(msgspec.Struct, frozen=True, tag="position"):
    """The private ``position`` topic (and ``GET /v5/position/list``). ``side == ""`` means flat."""

    symbol: str
    side: Literal["Buy", "Sell", ""]
    size: Decimal
    avg_price: Decimal
    ts: float
    take_profit: Decimal = Decimal(0)
    stop_loss: Decimal = Decimal(0)
    liq_price: Decimal = Decimal(0)
    leverage: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    cum_realised_pnl: Decimal = Decimal(0)


class WalletUpdate(msgspec.Struct, frozen=True, tag="wallet"):
    """The private ``wallet`` topic, UNIFIED account, USDT only."""

    total_equity: Decimal
    total_margin_balance: Decimal
    available_balance: Decimal
    wallet_balance: Decimal
    ts: float


PrivateEvent = OrderUpdate | Execution | PositionUpdate | WalletUpdate


class StreamStatus(msgspec.Struct, frozen=True):
    """Health of the private stream that feeds ``Exchange.events`` (STRATEGY.md §8.1, §8.4, §8.7).

    ``connects`` counts successful (authenticated, subscribed) connections, so a change in it tells the executor a
    reconnect happened and events may have been missed: reconcile before trading again. ``lossless`` marks an
    in-process delivery that can neither drop nor stall (the simulated exchange): the §8.4 silence check guards
    against a silently dead socket and is moot there.
    """

    up: bool
    connects: int = 0
    changed_at: float = 0.0
    lossless: bool = False

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


ALWAYS_UP = StreamStatus(up=True, connects=1, lossless=True)


@runtime_checkable
class MarketFeed(Protocol):
    """Produces market event batches into the bot's queue until it is exhausted or cancelled.

    A feed may also carry ``symbols``: every symbol it can ever deliver (the orchestrator then passes the ticks of
    batches holding none of them without a timer each; absent or None means unknown)."""

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None: ...


@runtime_checkable
class Exchange(Protocol):
    """What the bot may ask of an exchange. Methods raise :class:`ExchangeError` with Bybit's codes.

    Account changes are also pushed, as Bybit's private stream does, into ``events`` (``order``, ``execution``,
    ``position``, ``wallet``), after the exchange's response latency. ``stream_status()`` says whether that push
    is flowing; while it is not, the executor polls REST instead.
    """

    events: asyncio.Queue[PrivateEvent]

    def stream_status(self) -> StreamStatus: ...

    async def server_time(self) -> float: ...
    async def get_instruments(self) -> InstrumentRegistry: ...
    async def set_leverage(self, symbol: str, leverage: int) -> None: ...
    async def place_order(self, req: OrderRequest) -> OrderAck: ...
    async def amend_order(self, symbol: str, order_link_id: str, *, price: Decimal | None = None,
                          qty: Decimal | None = None) -> OrderAck: ...
    async def cancel_order(self, symbol: str, order_link_id: str) -> OrderAck: ...
    async def set_trading_stop(self, symbol: str, *, take_profit: Decimal | None, stop_loss: Decimal | None,
                               trigger_by: str = "LastPrice") -> None: ...
    async def get_positions(self, symbol: str | None = None) -> list[PositionUpdate]: ...
    async def get_open_orders(self, symbol: str | None = None) -> list[OrderUpdate]: ...
    async def get_order(self, symbol: str, order_link_id: str) -> OrderUpdate | None: ...
    async def get_executions(self, symbol: str | None = None, since: float = 0.0) -> list[Execution]: ...
    async def get_wallet(self) -> WalletUpdate: ...
