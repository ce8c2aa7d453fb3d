"""A small stateful Bybit v5 account (USDT linear, one-way mode) behind the local HTTP and private WS test servers.

Not a matching engine: Market orders fill at once at the symbol's ``mark`` (taker), Limit orders rest until the test
calls :meth:`FakeBybitAccount.fill`, and :meth:`FakeBybitAccount.exchange_close` plays an exchange-side TP/SL or
liquidation. Every change is answered the way Bybit answers: REST bodies in v5's response shapes (routes installed
by :func:`install_account_routes`, which also verify pybit's HMAC signature) and private-stream frames in v5's
``order``/``execution``/``position``/``wallet`` shapes, handed to every registered listener (the WS server).
The ledger (``executions``, ``position``) is the truth the bot must reconcile to. Thread-safe: the HTTP server
answers from its own threads.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from bybit_http_server import BybitHTTPServer, Reply, Request, envelope

from bot.instruments import BUNDLED_INSTRUMENTS

D = Decimal
ZERO = D(0)
Frame = dict[str, Any]


class Refusal(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg = code, msg


@functools.cache
def _bundled_rows() -> tuple[dict[str, Any], ...]:
    with gzip.open(BUNDLED_INSTRUMENTS, "rt") as f:
        return tuple(json.load(f)["result"]["list"])


def instrument_rows(symbols: Iterable[str]) -> list[dict[str, Any]]:
    """The real instruments-info rows of ``symbols`` (from the bundled 2026-08-09 response)."""
    wanted = set(symbols)
    return [r for r in _bundled_rows() if r["symbol"] in wanted]


def _s(x: Decimal) -> str:
    return format(x.normalize(), "f") if x else "0"


class FakeBybitAccount:
    def __init__(self, api_key: str, api_secret: str, *, symbols: Iterable[str] = ("BTCUSDT",),
                 balance: str = "1000", skew_sec: float = 0.0) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.rows = instrument_rows(symbols)
        self.symbols = [r["symbol"] for r in self.rows]
        self.skew_sec = skew_sec
        self.mark: dict[str, Decimal] = {}
        self.balance = D(balance)
        self.orders: dict[str, dict[str, Any]] = {}          # by orderLinkId (or orderId)
        self.positions: dict[str, dict[str, Any]] = {s: {"size": ZERO, "cost": ZERO, "tp": ZERO, "sl": ZERO,
                                                          "realised": ZERO, "updated": 0} for s in self.symbols}
        self.executions: list[dict[str, Any]] = []
        self.leverage: dict[str, str] = {}
        self.listeners: list[Callable[[Frame], None]] = []
        self.auth_failures = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ clock and push
    def now_ms(self) -> int:
        return int((time.time() + self.skew_sec) * 1000)

    def _push(self, topic: str, data: list[dict[str, Any]]) -> None:
        frame = {"id": f"fake-{next(self._ids)}", "topic": topic, "creationTime": self.now_ms(), "data": data}
        for fn in list(self.listeners):
            fn(frame)

    # ------------------------------------------------------------------ shapes
    def order_row(self, o: dict[str, Any]) -> dict[str, Any]:
        cum, value = o["cum"], o["value"]
        return {"category": "linear", "symbol": o["symbol"], "orderId": o["orderId"], "orderLinkId": o["link"],
                "side": o["side"], "orderType": o["type"], "price": _s(o["price"]), "qty": _s(o["qty"]),
                "timeInForce": o["tif"], "orderStatus": o["status"], "reduceOnly": o["reduce"],
                "leavesQty": _s(o["qty"] - cum if o["status"] in ("New", "PartiallyFilled") else ZERO),
                "cumExecQty": _s(cum), "cumExecValue": _s(value), "avgPrice": _s(value / cum) if cum else "",
                "cumExecFee": "0", "createType": o["create"], "stopOrderType": o["stop"], "rejectReason": "EC_NoError",
                "positionIdx": 0, "createdTime": str(o["created"]), "updatedTime": str(o["updated"]),
                "cancelType": "UNKNOWN", "tpslMode": "", "takeProfit": "", "stopLoss": "", "triggerPrice": ""}

    def position_row(self, sym: str) -> dict[str, Any]:
        p = self.positions[sym]
        size = p["size"]
        avg = (p["cost"] / abs(size)) if size else ZERO
        return {"positionIdx": 0, "tradeMode": 0, "riskId": 1, "symbol": sym,
                "side": "" if not size else ("Buy" if size > 0 else "Sell"), "size": _s(abs(size)),
                "avgPrice": _s(avg), "positionValue": _s(p["cost"]), "leverage": self.leverage.get(sym, "10"),
                "markPrice": _s(self.mark.get(sym, ZERO)), "liqPrice": "", "bustPrice": "",
                "takeProfit": _s(p["tp"]), "stopLoss": _s(p["sl"]), "trailingStop": "0", "tpslMode": "Full",
                "unrealisedPnl": "0", "curRealisedPnl": "0", "cumRealisedPnl": _s(p["realised"]),
                "positionStatus": "Normal", "createdTime": "1672121182216", "updatedTime": str(p["updated"]),
                "category": "linear", "seq": next(self._ids), "isReduceOnly": False}

    def wallet_row(self) -> dict[str, Any]:
        b = _s(self.balance)
        return {"accountType": "UNIFIED", "totalEquity": b, "totalWalletBalance": b, "totalMarginBalance": b,
                "totalAvailableBalance": b, "totalPerpUPL": "0", "totalInitialMargin": "0",
                "totalMaintenanceMargin": "0", "accountIMRate": "0", "accountMMRate": "0",
                "coin": [{"coin": "USDT", "equity": b, "walletBalance": b, "unrealisedPnl": "0"}]}

    # ------------------------------------------------------------------ engine
    def _inst(self, sym: str) -> dict[str, Any]:
        for r in self.rows:
            if r["symbol"] == sym:
                return r
        raise Refusal(10001, f"params error: symbol invalid ({sym})")

    def place(self, p: dict[str, Any], *, create: str = "CreateByUser", stop: str = "") -> dict[str, Any]:
        with self._lock:
            sym = p["symbol"]
            inst = self._inst(sym)
            link = p.get("orderLinkId") or ""
            if link and link in self.orders:
                raise Refusal(110072, "OrderLinkedID is duplicate")
            qty = D(p["qty"])
            if qty % D(inst["lotSizeFilter"]["qtyStep"]):
                raise Refusal(10001, "Qty invalid")
            price = D(p["price"]) if p.get("price") else self.mark.get(sym, ZERO)
            if p["orderType"] == "Limit" and price % D(inst["priceFilter"]["tickSize"]):
                raise Refusal(10001, "Price invalid")
            pos = self.positions[sym]["size"]
            sign = 1 if p["side"] == "Buy" else -1
            if p.get("reduceOnly") and (pos == 0 or (pos > 0) == (sign > 0)):
                raise Refusal(110017, "current position is zero, cannot fix reduce-only order qty")
            now = self.now_ms()
            o = {"orderId": f"oid-{next(self._ids)}", "link": link, "symbol": sym, "side": p["side"],
                 "type": p["orderType"], "price": price, "qty": qty, "tif": p.get("timeInForce", "GTC"),
                 "reduce": bool(p.get("reduceOnly")), "status": "New", "cum": ZERO, "value": ZERO,
                 "create": create, "stop": stop, "created": now, "updated": now}
            self.orders[link or o["orderId"]] = o
            self._push("order", [self.order_row(o)])
            if o["type"] == "Market":
                self.fill(link or o["orderId"], qty, self.mark[sym], is_maker=False)
            return {"orderId": o["orderId"], "orderLinkId": link}

    def fill(self, key: str, qty: Decimal, price: Decimal, *, is_maker: bool = True) -> dict[str, Any]:
        """Fill ``qty`` of a working order at ``price``: order, execution, position and wallet change together."""
        with self._lock:
            o = self.orders[key]
            sym, sign = o["symbol"], (1 if o["side"] == "Buy" else -1)
            pos = self.positions[sym]
            if o["reduce"]:
                qty = min(qty, abs(pos["size"]))
            now = self.now_ms()
            rate = D("0.0002") if is_maker else D("0.00055")
            fee = qty * price * rate
            closed = ZERO
            if pos["size"] == 0 or (pos["size"] > 0) == (sign > 0):
                pos["cost"] += qty * price
            else:
                closed = min(qty, abs(pos["size"]))
                avg = pos["cost"] / abs(pos["size"])
                pnl = (price - avg) * closed * (1 if pos["size"] > 0 else -1)
                pos["cost"] -= avg * closed
                pos["realised"] += pnl - fee
                self.balance += pnl
            pos["size"] += sign * qty
            pos["updated"] = now
            if pos["size"] == 0:
                pos["cost"], pos["tp"], pos["sl"] = ZERO, ZERO, ZERO
            self.balance -= fee
            o["cum"] += qty
            o["value"] += qty * price
            o["updated"] = now
            o["status"] = "Filled" if o["cum"] >= o["qty"] else "PartiallyFilled"
            if o["type"] == "Market" and o["status"] != "Filled":
                o["status"] = "Cancelled"
            ex = {"category": "linear", "symbol": sym, "execFee": _s(fee), "execId": f"exec-{next(self._ids)}",
                  "execPrice": _s(price), "execQty": _s(qty), "execType": "Trade", "execValue": _s(qty * price),
                  "isMaker": is_maker, "feeRate": _s(rate), "tradeIv": "", "markIv": "", "blockTradeId": "",
                  "markPrice": _s(price), "indexPrice": "", "underlyingPrice": "",
                  "leavesQty": _s(o["qty"] - o["cum"]), "orderId": o["orderId"], "orderLinkId": o["link"],
                  "orderPrice": _s(o["price"]), "orderQty": _s(o["qty"]), "orderType": o["type"],
                  "stopOrderType": o["stop"] or "UNKNOWN", "createType": o["create"], "side": o["side"],
                  "execTime": str(now), "isLeverage": "0", "closedSize": _s(closed), "seq": next(self._ids)}
            self.executions.append(ex)
            self._push("order", [self.order_row(o)])
            self._push("execution", [ex])
            self._push("position", [self.position_row(sym)])
            self._push("wallet", [self.wallet_row()])
            return ex

    def open_position(self, sym: str, side: str, qty: str, price: str, *, tp: str = "0", sl: str = "0") -> None:
        """A position opened outside the bot (before it started): adopted on reconciliation."""
        with self._lock:
            self.mark[sym] = D(price)
            self.place({"symbol": sym, "side": side, "orderType": "Market", "qty": qty}, create="CreateByUser")
            self.positions[sym]["tp"], self.positions[sym]["sl"] = D(tp), D(sl)

    def exchange_close(self, sym: str, price: str, kind: str = "TakeProfit") -> dict[str, Any]:
        """The exchange closes the whole position (TP/SL trigger): a reduce-only Market of its own."""
        with self._lock:
            size = self.positions[sym]["size"]
            self.mark[sym] = D(price)
            ack = self.place({"symbol": sym, "side": "Sell" if size > 0 else "Buy", "orderType": "Market",
                              "qty": _s(abs(size)), "reduceOnly": True}, create=f"CreateBy{kind}", stop=kind)
            return self.orders[ack["orderId"]]

    def amend(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            o = self._working(p)
            if p.get("price"):
                o["price"] = D(p["price"])
            if p.get("qty"):
                o["qty"] = D(p["qty"])
            o["updated"] = self.now_ms()
            self._push("order", [self.order_row(o)])
            return {"orderId": o["orderId"], "orderLinkId": o["link"]}

    def cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            o = self._working(p)
            o["status"] = "PartiallyFilledCanceled" if o["cum"] else "Cancelled"
            o["updated"] = self.now_ms()
            self._push("order", [self.order_row(o)])
            return {"orderId": o["orderId"], "orderLinkId": o["link"]}

    def _working(self, p: dict[str, Any]) -> dict[str, Any]:
        o = self.orders.get(p.get("orderLinkId") or p.get("orderId") or "")
        if o is None or o["status"] not in ("New", "PartiallyFilled"):
            raise Refusal(110001, "order not exists or too late to cancel")
        return o

    def trading_stop(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            pos = self.positions[p["symbol"]]
            if pos["size"] == 0:
                raise Refusal(10001, "can not set tp/sl/ts for zero position")
            new_tp = D(p["takeProfit"]) if "takeProfit" in p else pos["tp"]
            new_sl = D(p["stopLoss"]) if "stopLoss" in p else pos["sl"]
            if (new_tp, new_sl) == (pos["tp"], pos["sl"]):
                raise Refusal(34040, "not modified")
            pos["tp"], pos["sl"], pos["updated"] = new_tp, new_sl, self.now_ms()
            self._push("position", [self.position_row(p["symbol"])])
            return {}


# ---------------------------------------------------------------------- HTTP routes
PRIVATE_PREFIXES = ("/v5/order/", "/v5/position/", "/v5/execution/", "/v5/account/")


def _signed_ok(acct: FakeBybitAccount, req: Request) -> bool:
    """pybit's v5 HMAC: sign(timestamp + key + recvWindow + (query string | JSON body))."""
    h = {k.lower(): v for k, v in req.headers.items()}
    if h.get("x-bapi-api-key") != acct.api_key:
        return False
    payload = req.body.decode() if req.method == "POST" else "&".join(f"{k}={v}" for k, v in
                                                                      sorted(req.query.items()))
    expected = hmac.new(acct.api_secret.encode(), f"{h.get('x-bapi-timestamp')}{acct.api_key}"
                        f"{h.get('x-bapi-recv-window')}{payload}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, h.get("x-bapi-sign", ""))


def _outside_recv_window(req: Request, server_ms: int) -> str | None:
    """Bybit's rule for signed requests: server_time - recv_window <= timestamp < server_time + 1000 (else 10002)."""
    h = {k.lower(): v for k, v in req.headers.items()}
    ts, window = int(h["x-bapi-timestamp"]), int(h["x-bapi-recv-window"])
    if server_ms - window <= ts < server_ms + 1000:
        return None
    return (f"invalid request, please check your server timestamp or recv_window param. req_timestamp[{ts}],"
            f"server_timestamp[{server_ms}],recv_window[{window}]")


def install_account_routes(srv: BybitHTTPServer, acct: FakeBybitAccount) -> None:
    """Bybit v5 trading, position, account and market routes over ``acct``."""

    def wrap(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Reply | dict[str, Any]]:
        def handler(req: Request) -> Reply | dict[str, Any]:
            now = acct.now_ms()
            if req.path.startswith(PRIVATE_PREFIXES) and not _signed_ok(acct, req):
                acct.auth_failures += 1
                return envelope(ret_code=10004, ret_msg="error sign! origin_string[...]", time_ms=now)
            if req.path.startswith(PRIVATE_PREFIXES) and (late := _outside_recv_window(req, now)):
                return envelope(ret_code=10002, ret_msg=late, time_ms=now)
            params = req.json() if req.method == "POST" else dict(req.query)
            try:
                return envelope(fn(params), time_ms=acct.now_ms())
            except Refusal as e:
                return envelope(ret_code=e.code, ret_msg=e.msg, time_ms=now)
        return handler

    def open_orders(q: dict[str, Any]) -> dict[str, Any]:
        with acct._lock:
            rows = [acct.order_row(o) for o in acct.orders.values()
                    if o["status"] in ("New", "PartiallyFilled") and _match(o, q)]
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def history(q: dict[str, Any]) -> dict[str, Any]:
        with acct._lock:
            rows = [acct.order_row(o) for o in acct.orders.values() if _match(o, q)]
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def positions(q: dict[str, Any]) -> dict[str, Any]:
        with acct._lock:
            if q.get("symbol"):
                acct._inst(q["symbol"])
                rows = [acct.position_row(q["symbol"])]
            else:
                rows = [acct.position_row(s) for s in acct.symbols if acct.positions[s]["size"]]
        return {"category": "linear", "list": rows, "nextPageCursor": ""}

    def executions(q: dict[str, Any]) -> dict[str, Any]:
        start = int(q.get("startTime", 0))
        with acct._lock:
            rows = [e for e in acct.executions if int(e["execTime"]) >= start
                    and (not q.get("symbol") or e["symbol"] == q["symbol"])]
        return {"category": "linear", "list": rows[::-1], "nextPageCursor": ""}

    def leverage(p: dict[str, Any]) -> dict[str, Any]:
        if acct.leverage.get(p["symbol"]) == p["buyLeverage"]:
            raise Refusal(110043, "Set leverage not modified")
        acct.leverage[p["symbol"]] = p["buyLeverage"]
        return {}

    def server_time(_: dict[str, Any]) -> dict[str, Any]:
        ns = int((time.time() + acct.skew_sec) * 1e9)
        return {"timeSecond": str(ns // 10**9), "timeNano": str(ns)}

    routes: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
        ("GET", "/v5/market/time", server_time),
        ("GET", "/v5/market/instruments-info",
         lambda q: {"category": "linear", "list": acct.rows, "nextPageCursor": ""}),
        ("GET", "/v5/account/fee-rate", lambda q: {"list": [{"symbol": q["symbol"], "takerFeeRate": "0.00055",
                                                             "makerFeeRate": "0.0002"}]}),
        ("GET", "/v5/account/wallet-balance", lambda q: {"list": [acct.wallet_row()]}),
        ("POST", "/v5/position/set-leverage", leverage),
        ("POST", "/v5/order/create", acct.place),
        ("POST", "/v5/order/amend", acct.amend),
        ("POST", "/v5/order/cancel", acct.cancel),
        ("POST", "/v5/position/trading-stop", acct.trading_stop),
        ("GET", "/v5/order/realtime", open_orders),
        ("GET", "/v5/order/history", history),
        ("GET", "/v5/position/list", positions),
        ("GET", "/v5/execution/list", executions),
    ]
    for method, path, fn in routes:
        srv.route(method, path, wrap(fn))


def _match(o: dict[str, Any], q: dict[str, Any]) -> bool:
    return (not q.get("symbol") or o["symbol"] == q["symbol"]) and \
        (not q.get("orderLinkId") or o["link"] == q["orderLinkId"])
