"""Bybit v5 account payloads (REST ``result.list`` rows and private-stream ``data`` items) → the port's events.

One mapping for both sources, so a fill seen on the stream and its REST copy are the same ``Execution`` (the executor
deduplicates by ``execId``). Exchange times are Bybit's: ``execTime`` for fills, ``updatedTime`` for orders; a
position or wallet snapshot is dated by when it was taken (the frame's ``creationTime`` or the REST envelope's
``time``), which is what the executor compares against the fills it has applied. Empty strings (Bybit's "none")
become zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.ports import Execution, OrderUpdate, PositionUpdate, WalletUpdate

ZERO = Decimal(0)
_NO_STOP_TYPE = frozenset({"", "UNKNOWN", "None"})


class PayloadError(ValueError):
    """A payload that does not have the shape of Bybit's (missing field, not a number)."""


def dec(x: Any) -> Decimal:
    if x is None or x == "":
        return ZERO
    try:
        return Decimal(str(x))
    except InvalidOperation:
        raise PayloadError(f"not a number: {x!r}") from None


def ms(x: Any) -> float:
    """Bybit epoch milliseconds (string or int) → epoch seconds."""
    try:
        return int(x) / 1000.0
    except (TypeError, ValueError):
        raise PayloadError(f"not a millisecond timestamp: {x!r}") from None


def _stop_type(x: Any) -> str:
    return "" if x in _NO_STOP_TYPE or x is None else str(x)


def order_update(d: Mapping[str, Any]) -> OrderUpdate:
    try:
        return OrderUpdate(
            symbol=d["symbol"], order_id=d["orderId"], order_link_id=d.get("orderLinkId") or "", side=d["side"],
            order_type=d["orderType"], price=dec(d.get("price")), qty=dec(d["qty"]), cum_exec_qty=dec(d["cumExecQty"]),
            avg_price=dec(d.get("avgPrice")), status=d["orderStatus"], time_in_force=d.get("timeInForce") or "GTC",
            reduce_only=bool(d.get("reduceOnly", False)), ts=ms(d.get("updatedTime") or d["createdTime"]),
            create_type=d.get("createType") or "CreateByUser", stop_order_type=_stop_type(d.get("stopOrderType")),
            reject_reason=d.get("rejectReason") or "EC_NoError")
    except KeyError as e:
        raise PayloadError(f"order payload without {e}") from None


def execution(d: Mapping[str, Any]) -> Execution:
    try:
        return Execution(
            symbol=d["symbol"], exec_id=d["execId"], order_id=d.get("orderId") or "",
            order_link_id=d.get("orderLinkId") or "", side=d["side"], exec_price=dec(d["execPrice"]),
            exec_qty=dec(d["execQty"]), exec_fee=dec(d.get("execFee")), fee_rate=dec(d.get("feeRate")),
            is_maker=bool(d.get("isMaker", False)), ts=ms(d["execTime"]), exec_type=d.get("execType") or "Trade",
            create_type=d.get("createType") or "CreateByUser", stop_order_type=_stop_type(d.get("stopOrderType")),
            order_type=d.get("orderType") if d.get("orderType") in ("Limit", "Market") else "Limit",
            leaves_qty=dec(d.get("leavesQty")), closed_size=dec(d.get("closedSize")))
    except KeyError as e:
        raise PayloadError(f"execution payload without {e}") from None


def position_update(d: Mapping[str, Any], ts: float) -> PositionUpdate:
    try:
        size = dec(d["size"])
        side = d.get("side") if d.get("side") in ("Buy", "Sell") and size > 0 else ""
        return PositionUpdate(
            symbol=d["symbol"], side=side, size=size, avg_price=dec(d.get("avgPrice") or d.get("entryPrice")),
            ts=ts, take_profit=dec(d.get("takeProfit")), stop_loss=dec(d.get("stopLoss")),
            liq_price=dec(d.get("liqPrice")), leverage=dec(d.get("leverage")),
            unrealised_pnl=dec(d.get("unrealisedPnl")), cum_realised_pnl=dec(d.get("cumRealisedPnl")))
    except KeyError as e:
        raise PayloadError(f"position payload without {e}") from None


def wallet_update(d: Mapping[str, Any], ts: float) -> WalletUpdate:
    """One UNIFIED account row (``totalEquity`` ... in USD terms, which for a USDT-margined bot is USDT)."""
    try:
        return WalletUpdate(total_equity=dec(d["totalEquity"]), total_margin_balance=dec(d.get("totalMarginBalance")),
                            available_balance=dec(d.get("totalAvailableBalance")),
                            wallet_balance=dec(d.get("totalWalletBalance")), ts=ts)
    except KeyError as e:
        raise PayloadError(f"wallet payload without {e}") from None
