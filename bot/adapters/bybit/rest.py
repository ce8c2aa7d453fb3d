"""The Exchange port's REST half over pybit's synchronous ``HTTP`` v5 client (category ``linear``, one-way mode).

Every call runs in a worker thread (``asyncio.to_thread``) under ``timeout_sec``, so the event loop never blocks
on the network. pybit's own retry loop is switched off (``retry_codes`` holds no real code, ``force_retry`` off):
it would ``time.sleep`` inside the thread. Instead this module:

- reads ``X-Bapi-Limit-Status`` / ``X-Bapi-Limit-Reset-Timestamp`` from every answer and, when a path has no
  requests left, waits until its reset before the next call on that path;
- retries 10006 (and HTTP 403/429) up to ``retry_attempts`` times, waiting for the reset time the refusal carries
  or an exponential backoff with jitter, whichever is longer (capped at ``backoff_cap_sec``);
- maps every failure through :mod:`bot.adapters.bybit.errors`. Timeouts are not retried here: an order request
  that timed out may have executed, and only the executor (via reconciliation) can tell. When the executor's retry
  of such a placement meets 110072 (orderLinkId already used), the order placed by the lost attempt is looked up and
  acknowledged, so the entry or close goes on with it instead of being dropped while it rests on the exchange.

Prices go out rounded half-up to the tick, quantities floored to the step (never more than asked), both as
strings; a value the grid changed is logged. The request log never contains headers, so never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from loguru import logger

from bot.adapters.bybit import parse
from bot.adapters.bybit.backoff import backoff_delays
from bot.adapters.bybit.errors import response_headers, to_port_error
from bot.clock import Clock
from bot.instruments import Instrument, InstrumentRegistry
from bot.ports import (
    ERR_DUPLICATE_LINK_ID,
    ERR_PARAMS,
    ERR_RATE_LIMIT,
    ExchangeError,
    Execution,
    OrderAck,
    OrderRequest,
    OrderUpdate,
    PositionUpdate,
    WalletUpdate,
)

CATEGORY = "linear"
SETTLE_COIN = "USDT"
PYBIT_NO_RETRY_CODES = frozenset({-1})  # pybit replaces an empty set by its defaults (10002, 10006 ...)
PAGE_LIMIT = 50
EXEC_PAGE_LIMIT = 100
MAX_PAGES = 50


class BybitRest:
    """REST methods of :class:`bot.ports.Exchange`; ``http`` is a ``pybit.unified_trading.HTTP`` built with
    ``return_response_headers=True`` (see :func:`bot.adapters.bybit.exchange.make_http`)."""

    def __init__(self, http: Any, clock: Clock, *, timeout_sec: float = 10.0, retry_attempts: int = 3,
                 backoff_base_sec: float = 0.2, backoff_cap_sec: float = 5.0, instrument_ttl_sec: float = 3600.0,
                 rng: random.Random | None = None) -> None:
        self.http = http
        self.clock = clock
        self.timeout_sec = timeout_sec
        self.retry_attempts = retry_attempts
        self.backoff_base_sec = backoff_base_sec
        self.backoff_cap_sec = backoff_cap_sec
        self.instrument_ttl_sec = instrument_ttl_sec
        self._rng = rng or random.Random()
        self._limits: dict[str, tuple[int, float]] = {}   # pybit method → (requests left, reset epoch s)
        self._instruments: InstrumentRegistry | None = None
        self._instruments_at = float("-inf")
        self.calls: dict[str, int] = {}

    # ------------------------------------------------------------------ transport
    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """``http.<method>(**params)`` off the loop; returns the decoded envelope (retCode 0) or raises a port error."""
        delays = backoff_delays(self.backoff_base_sec, self.backoff_cap_sec, self._rng)
        for attempt in range(self.retry_attempts + 1):
            await self._respect_limit(method)
            self.calls[method] = self.calls.get(method, 0) + 1
            fn = getattr(self.http, method)
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for returns a result that lands with a cancellation
                # and swallows the cancel, so a stopping bot could hang on (or carry on past) a REST call
                async with asyncio.timeout(self.timeout_sec):
                    out = await asyncio.to_thread(fn, **params)
            except TimeoutError:
                raise TimeoutError(f"{method}: no answer within {self.timeout_sec}s") from None
            except Exception as e:
                err = to_port_error(e)
                if isinstance(err, ExchangeError) and err.code == ERR_RATE_LIMIT and attempt < self.retry_attempts:
                    wait = max(next(delays), self._reset_wait(response_headers(e)))
                    logger.warning("{} rate-limited ({}); retry {} in {:.2f}s", method, err.msg, attempt + 1, wait)
                    await asyncio.sleep(min(wait, self.backoff_cap_sec))
                    continue
                raise err from e
            body, headers = (out[0], out[-1]) if isinstance(out, tuple) else (out, {})
            self._note_limit(method, headers)
            return body
        raise AssertionError("unreachable")

    def _reset_wait(self, headers: Mapping[str, Any]) -> float:
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
        try:
            return max(0.0, int(reset) / 1000.0 - self.clock.now()) if reset is not None else 0.0
        except ValueError:
            return 0.0

    def _note_limit(self, method: str, headers: Mapping[str, Any]) -> None:
        left, reset = headers.get("X-Bapi-Limit-Status"), headers.get("X-Bapi-Limit-Reset-Timestamp")
        if left is None or reset is None:
            return
        with contextlib.suppress(ValueError):
            self._limits[method] = (int(left), int(reset) / 1000.0)

    async def _respect_limit(self, method: str) -> None:
        left, reset = self._limits.get(method, (1, 0.0))
        wait = reset - self.clock.now()
        if left <= 0 and wait > 0:
            logger.info("{}: rate-limit window exhausted, waiting {:.2f}s for its reset", method, wait)
            await asyncio.sleep(min(wait, self.backoff_cap_sec))
        if left <= 0:
            self._limits.pop(method, None)

    async def _paged(self, method: str, **params: Any) -> tuple[list[dict[str, Any]], float]:
        """Every ``result.list`` row across ``nextPageCursor`` pages, and the first answer's time (epoch s)."""
        rows: list[dict[str, Any]] = []
        cursor, ts = None, None
        for _ in range(MAX_PAGES):
            body = await self.call(method, **params, **({"cursor": cursor} if cursor else {}))
            ts = ts if ts is not None else _envelope_time(body, self.clock.now())
            result = body.get("result") or {}
            rows.extend(result.get("list") or [])
            cursor = result.get("nextPageCursor")
            if not cursor:
                break
        return rows, ts if ts is not None else self.clock.now()

    # ------------------------------------------------------------------ grid
    async def instrument(self, symbol: str) -> Instrument:
        registry = await self.get_instruments()
        try:
            return registry[symbol]
        except KeyError as e:
            raise ExchangeError(ERR_PARAMS, f"params error: symbol invalid ({symbol})") from e

    def _price(self, inst: Instrument, p: Decimal) -> str:
        on = inst.round_tick(p)
        if on != p:
            logger.warning("{} price {} rounded to the tick: {}", inst.symbol, p, on)
        return _wire(on, inst.price_decimals)

    def _qty(self, inst: Instrument, q: Decimal) -> str:
        on = inst.floor_step(q)
        if on <= 0:
            raise ExchangeError(ERR_PARAMS, f"Qty invalid: {q} is below qtyStep {inst.qty_step}")
        if on != q:
            logger.warning("{} qty {} floored to the step: {}", inst.symbol, q, on)
        return _wire(on, inst.qty_decimals)

    # ------------------------------------------------------------------ Exchange port (REST)
    async def server_time(self) -> float:
        body = await self.call("get_server_time")
        result = body.get("result") or {}
        if result.get("timeNano"):
            return int(result["timeNano"]) / 1e9
        return float(result["timeSecond"])

    async def get_instruments(self) -> InstrumentRegistry:
        now = self.clock.now()
        if self._instruments is None or now - self._instruments_at >= self.instrument_ttl_sec:
            rows, _ = await self._paged("get_instruments_info", category=CATEGORY, limit=1000)
            self._instruments = InstrumentRegistry.from_bybit_response({"retCode": 0, "result": {"list": rows}})
            self._instruments_at = now
        return self._instruments

    async def get_fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) fee rates of this account for ``symbol`` (not part of the port: a start-up check)."""
        body = await self.call("get_fee_rates", category=CATEGORY, symbol=symbol)
        rows = (body.get("result") or {}).get("list") or []
        if not rows:
            raise ExchangeError(ERR_PARAMS, f"no fee rate for {symbol}")
        return parse.dec(rows[0]["makerFeeRate"]), parse.dec(rows[0]["takerFeeRate"])

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self.call("set_leverage", category=CATEGORY, symbol=symbol, buyLeverage=str(int(leverage)),
                        sellLeverage=str(int(leverage)))

    async def place_order(self, req: OrderRequest) -> OrderAck:
        inst = await self.instrument(req.symbol)
        params: dict[str, Any] = {"category": CATEGORY, "symbol": req.symbol, "side": req.side,
                                  "orderType": req.order_type, "qty": self._qty(inst, req.qty),
                                  "timeInForce": req.time_in_force, "orderLinkId": req.order_link_id,
                                  "reduceOnly": req.reduce_only, "positionIdx": 0}
        if req.order_type == "Limit":
            if req.price is None:
                raise ExchangeError(ERR_PARAMS, "price is required for a Limit order")
            params["price"] = self._price(inst, req.price)
        try:
            return _ack(await self.call("place_order", **params), req.order_link_id)
        except ExchangeError as e:
            if e.code != ERR_DUPLICATE_LINK_ID:
                raise
            # a retry after a lost answer (timeout, 5xx): our own earlier attempt placed it; link ids are never
            # reused, so the order that holds this one is that attempt, and the caller goes on working it
            known = await self.get_order(req.symbol, req.order_link_id)
            if known is None:
                raise
            logger.warning("{} order {} was placed by an earlier attempt whose answer was lost: continuing with it",
                           req.symbol, req.order_link_id)
            return OrderAck(order_id=known.order_id, order_link_id=req.order_link_id)

    async def amend_order(self, symbol: str, order_link_id: str, *, price: Decimal | None = None,
                          qty: Decimal | None = None) -> OrderAck:
        inst = await self.instrument(symbol)
        params: dict[str, Any] = {"category": CATEGORY, "symbol": symbol, "orderLinkId": order_link_id}
        if price is not None:
            params["price"] = self._price(inst, price)
        if qty is not None:
            params["qty"] = self._qty(inst, qty)
        return _ack(await self.call("amend_order", **params), order_link_id)

    async def cancel_order(self, symbol: str, order_link_id: str) -> OrderAck:
        body = await self.call("cancel_order", category=CATEGORY, symbol=symbol, orderLinkId=order_link_id)
        return _ack(body, order_link_id)

    async def set_trading_stop(self, symbol: str, *, take_profit: Decimal | None, stop_loss: Decimal | None,
                               trigger_by: str = "LastPrice") -> None:
        """Position TP/SL, tpslMode Full, market on trigger; ``None`` leaves a side unchanged, 0 cancels it."""
        inst = await self.instrument(symbol)
        params: dict[str, Any] = {"category": CATEGORY, "symbol": symbol, "tpslMode": "Full", "positionIdx": 0}
        if take_profit is not None:
            params.update(takeProfit=self._price(inst, take_profit) if take_profit > 0 else "0",
                          tpTriggerBy=trigger_by, tpOrderType="Market")
        if stop_loss is not None:
            params.update(stopLoss=self._price(inst, stop_loss) if stop_loss > 0 else "0",
                          slTriggerBy=trigger_by, slOrderType="Market")
        await self.call("set_trading_stop", **params)

    async def get_positions(self, symbol: str | None = None) -> list[PositionUpdate]:
        """Per symbol Bybit also returns a flat position (dated by the answer's time); without one, open ones only."""
        where = {"symbol": symbol} if symbol is not None else {"settleCoin": SETTLE_COIN}
        rows, ts = await self._paged("get_positions", category=CATEGORY, limit=200, **where)
        out = [parse.position_update(r, ts) for r in rows]
        return out if symbol is not None else [p for p in out if p.size > 0]

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        where = {"symbol": symbol} if symbol is not None else {"settleCoin": SETTLE_COIN}
        rows, _ = await self._paged("get_open_orders", category=CATEGORY, openOnly=0, limit=PAGE_LIMIT, **where)
        return [o for o in map(parse.order_update, rows) if not o.is_final]

    async def get_order(self, symbol: str, order_link_id: str) -> OrderUpdate | None:
        """The live order book first, then order history (Bybit moves final orders there)."""
        for method in ("get_open_orders", "get_order_history"):
            body = await self.call(method, category=CATEGORY, symbol=symbol, orderLinkId=order_link_id)
            rows = (body.get("result") or {}).get("list") or []
            for r in rows:
                if r.get("orderLinkId") == order_link_id:
                    return parse.order_update(r)
        return None

    async def get_executions(self, symbol: str | None = None, since: float = 0.0) -> list[Execution]:
        where = {"symbol": symbol} if symbol is not None else {}
        start = {"startTime": int(since * 1000)} if since > 0 else {}
        rows, _ = await self._paged("get_executions", category=CATEGORY, limit=EXEC_PAGE_LIMIT, **where, **start)
        return [e for e in map(parse.execution, rows) if e.ts >= since]

    async def get_wallet(self) -> WalletUpdate:
        body = await self.call("get_wallet_balance", accountType="UNIFIED")
        rows = (body.get("result") or {}).get("list") or []
        if not rows:
            raise ExchangeError(ERR_PARAMS, "wallet-balance returned no UNIFIED account")
        return parse.wallet_update(rows[0], _envelope_time(body, self.clock.now()))


def _wire(x: Decimal, decimals: int) -> str:
    """A grid value as Bybit prints it: the grid's significant decimals (tick "0.10" → "59988.0")."""
    return format(x.quantize(Decimal(1).scaleb(-decimals)), "f")


def _envelope_time(body: Mapping[str, Any], default: float) -> float:
    t = body.get("time")
    return int(t) / 1000.0 if t else default


def _ack(body: Mapping[str, Any], link: str) -> OrderAck:
    result = body.get("result") or {}
    return OrderAck(order_id=str(result.get("orderId", "")), order_link_id=str(result.get("orderLinkId") or link))
