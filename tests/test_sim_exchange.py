"""Scenario tests of the simulated Bybit (freqtrade backtest-detail style: market script + orders → fills).

Every scenario runs on the virtual-time loop against the real BTCUSDT/ETHUSDT filters (tick 0.1 / step 0.001 and
tick 0.01 / step 0.01, minNotional 5 USDT).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sim_helpers import D, ScriptedMarket, fee_of

from bot.adapters.simulated import ERR_DUPLICATE_LINK_ID, ConstantLatency
from bot.ports import (
    ERR_INSUFFICIENT_BALANCE,
    ERR_NOT_MODIFIED,
    ERR_ORDER_NOT_EXISTS,
    ERR_PARAMS,
    ERR_QTY_TOO_SMALL,
    ERR_REDUCE_ONLY,
    ExchangeError,
    Execution,
    OrderRequest,
    OrderUpdate,
    PositionUpdate,
    WalletUpdate,
)
from replay.virtual_loop import run_virtual

BIDS = [(59999.9, 0.5), (59999.0, 1.0), (59990.0, 0.5)]
ASKS = [(60000.1, 0.003), (60000.5, 0.004), (60001.0, 1.0)]


def limit(side: str, price: str, qty: str, link: str, **kw: object) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "Limit", D(qty), link, price=D(price), **kw)  # type: ignore[arg-type]


def market(side: str, qty: str, link: str, symbol: str = "BTCUSDT", **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, "Market", D(qty), link, **kw)  # type: ignore[arg-type]


def fills_table(m: ScriptedMarket) -> list[tuple[str, str, str, bool]]:
    return [(e.side, str(e.exec_price), str(e.exec_qty), e.is_maker) for e in m.trade_fills()]


def assert_fees(m: ScriptedMarket) -> None:
    for e in m.ex.fills:
        assert e.exec_fee == fee_of(e) and e.exec_fee > 0
    assert m.ex.ledger.reconcile()


async def open_long(m: ScriptedMarket, qty: str = "0.010") -> None:
    await m.at(0.0, m.book(BIDS, [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
    await m.ex.place_order(market("Buy", qty, "open"))


# ---------------------------------------------------------------- resting limit orders
@pytest.mark.parametrize(("script", "expected"), [
    # trade through the price fills up to the trade size, then the rest
    ([(59989.0, 0.004, "Sell"), (59985.0, 1.0, "Sell")],
     [("Buy", "59990.0", "0.004", True), ("Buy", "59990.0", "0.006", True)]),
    # through, by a buy-aggressor print as well
    ([(59980.0, 1.0, "Buy")], [("Buy", "59990.0", "0.010", True)]),
    # a trade above the price never fills a buy
    ([(59995.0, 3.0, "Sell")], []),
])
def test_fill_through_price(script: list[tuple[float, float, str]], expected: list[tuple[str, str, str, bool]]) -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(59999.9, 0.5)], ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        for i, (p, s, side) in enumerate(script):
            await m.at(1.0 + i, m.trade(p, s, side))
        await m.settle()
        assert fills_table(m) == expected
        assert_fees(m)
    run_virtual(run())


@pytest.mark.parametrize(("trades", "expected"), [
    # the queue ahead (0.5 displayed at 59990.0) is consumed first, the excess fills us
    ([0.3, 0.25], [("Buy", "59990.0", "0.010", True)]),
    # partial: only 0.004 of excess reaches us
    ([0.3, 0.204], [("Buy", "59990.0", "0.004", True)]),
    # not consumed: no fill
    ([0.2, 0.2, 0.099], []),
])
def test_fill_at_price_after_queue(trades: list[float], expected: list[tuple[str, str, str, bool]]) -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        for i, s in enumerate(trades):
            await m.at(1.0 + i, m.trade(59990.0, s, "Sell"))
        await m.settle()
        assert fills_table(m) == expected
        assert_fees(m)
    run_virtual(run())


def test_queue_not_advanced_by_cancels_or_buy_aggressor_prints() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        # the displayed size at our level shrinks to 0.1 (cancels): we stay behind 0.5
        await m.at(1.0, m.book([(59999.9, 0.5), (59990.0, 0.1)], ASKS))
        await m.at(2.0, m.trade(59990.0, 5.0, "Buy"))     # lifts an ask at our price: not our side
        await m.at(3.0, m.trade(59990.0, 0.45, "Sell"))   # 0.45 < 0.5 ahead
        await m.settle()
        assert m.trade_fills() == []
        await m.at(4.0, m.trade(59990.0, 0.06, "Sell"))   # 0.01 excess
        await m.settle()
        assert fills_table(m) == [("Buy", "59990.0", "0.010", True)]
    run_virtual(run())


def test_partial_fill_then_order_events() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Sell", "60002.0", "0.010", "s1"))
        await m.at(1.0, m.trade(60003.0, 0.003, "Buy"))
        ev = await m.settle()
        orders = [e for e in ev if isinstance(e, OrderUpdate)]
        assert [(o.status, str(o.cum_exec_qty), str(o.leaves_qty)) for o in orders] == [
            ("New", "0", "0.010"), ("PartiallyFilled", "0.003", "0.007")]
        pos = [e for e in ev if isinstance(e, PositionUpdate)][-1]
        assert (pos.side, pos.size, pos.avg_price) == ("Sell", D("0.003"), D("60002.0"))
        assert any(isinstance(e, WalletUpdate) for e in ev)
        ex = [e for e in ev if isinstance(e, Execution)]
        assert ex[0].leaves_qty == D("0.007") and ex[0].is_maker
    run_virtual(run())


# ---------------------------------------------------------------- taking liquidity
def test_market_order_walks_the_book() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS), m.trade(60000.0, 0.001))
        await m.ex.place_order(market("Buy", "0.010", "m1"))
        await m.settle()
        assert fills_table(m) == [("Buy", "60000.1", "0.003", False), ("Buy", "60000.5", "0.004", False),
                                  ("Buy", "60001.0", "0.003", False)]
        size, avg = m.ex.position("BTCUSDT")
        assert size == D("0.010") and avg == D("60000.53")
        # never better than the book: every price is an ask level, the first one is the best ask
        assert min(e.exec_price for e in m.ex.fills) == D("60000.1")
        assert_fees(m)
    run_virtual(run())


def test_market_order_beyond_the_book_cancels_the_rest() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, [(60000.1, 0.003)]), m.trade(60000.0, 0.001))
        await m.ex.place_order(market("Buy", "0.010", "m1"))
        ev = await m.settle()
        last = [e for e in ev if isinstance(e, OrderUpdate)][-1]
        assert (last.status, last.cum_exec_qty, last.reject_reason) == ("Cancelled", D("0.003"),
                                                                         "EC_NoImmediateQtyToFill")
    run_virtual(run())


def test_marketable_limit_takes_what_crosses_and_rests_the_rest() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "60000.5", "0.010", "b1"))
        await m.settle()
        assert fills_table(m) == [("Buy", "60000.1", "0.003", False), ("Buy", "60000.5", "0.004", False)]
        # the rest (0.003) rests at 60000.5 and fills as maker on a print through it
        await m.at(1.0, m.trade(60000.2, 1.0, "Sell"))
        await m.settle()
        assert fills_table(m)[-1] == ("Buy", "60000.5", "0.003", True)
        assert_fees(m)
    run_virtual(run())


def test_post_only_that_would_take_is_cancelled() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "60000.1", "0.010", "p1", time_in_force="PostOnly"))
        ev = await m.settle()
        o = [e for e in ev if isinstance(e, OrderUpdate)][-1]
        assert (o.status, o.reject_reason) == ("Cancelled", "EC_PostOnlyWillTakeLiquidity")
        assert m.ex.fills == []
    run_virtual(run())


# ---------------------------------------------------------------- latency races, amend
def test_cancel_loses_the_race_with_a_fill() -> None:
    async def run() -> None:
        m = ScriptedMarket.create(latency=ConstantLatency(entry_ms=0, response_ms=10, cancel_ms=50))
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        await m.until(1.0)
        cancel = asyncio.ensure_future(m.ex.cancel_order("BTCUSDT", "b1"))
        await m.at(1.02, m.trade(59980.0, 1.0))         # the print beats the cancel (arrives at 1.05)
        with pytest.raises(ExchangeError) as err:
            await cancel
        assert err.value.code == ERR_ORDER_NOT_EXISTS
        ev = await m.settle()
        assert [e.exec_qty for e in ev if isinstance(e, Execution)] == [D("0.010")]
    run_virtual(run())


def test_cancel_wins_when_it_arrives_first() -> None:
    async def run() -> None:
        m = ScriptedMarket.create(latency=ConstantLatency(entry_ms=0, response_ms=10, cancel_ms=50))
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        await m.until(1.0)
        cancel = asyncio.ensure_future(m.ex.cancel_order("BTCUSDT", "b1"))
        await m.at(1.08, m.trade(59980.0, 1.0))
        await cancel
        assert m.ex.fills == []
        with pytest.raises(ExchangeError) as err:
            await m.ex.cancel_order("BTCUSDT", "b1")
        assert err.value.code == ERR_ORDER_NOT_EXISTS
    run_virtual(run())


def test_amend_price_loses_queue_priority_and_qty_decrease_keeps_it() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(59990.0, 0.5), (59990.1, 0.2)], ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        await m.at(1.0, m.trade(59990.0, 0.45))                       # ahead 0.5 → 0.05
        await m.ex.amend_order("BTCUSDT", "b1", qty=D("0.008"))       # smaller: keeps its place
        await m.at(2.0, m.trade(59990.0, 0.052))                      # 0.002 excess
        await m.settle()
        assert fills_table(m) == [("Buy", "59990.0", "0.002", True)]
        await m.ex.amend_order("BTCUSDT", "b1", price=D("59990.1"))   # new price: back of the 0.2 queue
        await m.at(3.0, m.trade(59990.1, 0.15))
        await m.settle()
        assert len(m.ex.fills) == 1
        await m.at(4.0, m.trade(59990.1, 0.1))                        # 0.05 excess ≥ 0.006 leaves
        await m.settle()
        assert fills_table(m)[-1] == ("Buy", "59990.1", "0.006", True)
        with pytest.raises(ExchangeError) as err:                     # filled: too late to amend
            await m.ex.amend_order("BTCUSDT", "b1", price=D("59990.2"))
        assert err.value.code == ERR_ORDER_NOT_EXISTS
    run_virtual(run())


def test_amend_to_a_crossing_price_takes() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book(BIDS, ASKS))
        await m.ex.place_order(limit("Buy", "59990.0", "0.003", "b1"))
        await m.ex.amend_order("BTCUSDT", "b1", price=D("60000.1"))
        await m.settle()
        assert fills_table(m) == [("Buy", "60000.1", "0.003", False)]
    run_virtual(run())


# ---------------------------------------------------------------- TP / SL
def test_tp_hit_fills_as_taker_with_tp_origin() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await open_long(m)
        await m.ex.set_trading_stop("BTCUSDT", take_profit=D("60600.0"), stop_loss=D("59400.0"))
        await m.at(1.0, m.book([(60600.5, 0.004), (60600.0, 1.0)], [(60601.0, 1.0)]),
                   m.trade(60600.0, 0.01, "Buy"))
        ev = await m.settle()
        tp = m.trade_fills()[-2:]
        assert [(e.exec_price, e.exec_qty, e.is_maker, e.create_type, e.stop_order_type) for e in tp] == [
            (D("60600.5"), D("0.004"), False, "CreateByTakeProfit", "TakeProfit"),
            (D("60600.0"), D("0.006"), False, "CreateByTakeProfit", "TakeProfit")]
        assert m.ex.position("BTCUSDT")[0] == 0 and m.ex.protection("BTCUSDT") == (0, 0)
        last_pos = [e for e in ev if isinstance(e, PositionUpdate)][-1]
        assert last_pos.side == "" and last_pos.take_profit == 0
        assert_fees(m)
    run_virtual(run())


def test_sl_hit_with_slippage() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await open_long(m)
        await m.ex.set_trading_stop("BTCUSDT", take_profit=D("60600.0"), stop_loss=D("59400.0"))
        thin = [(59399.0, 0.004), (59395.0, 0.004), (59380.0, 1.0)]
        await m.at(1.0, m.book(thin, [(59401.0, 1.0)]), m.trade(59400.0, 0.01, "Sell"))
        await m.settle()
        sl = [e for e in m.ex.fills if e.stop_order_type == "StopLoss"]
        assert [(str(e.exec_price), str(e.exec_qty)) for e in sl] == [
            ("59399.0", "0.004"), ("59395.0", "0.004"), ("59380.0", "0.002")]
        assert all(e.create_type == "CreateByStopLoss" and not e.is_maker for e in sl)
        assert m.ex.position("BTCUSDT")[0] == 0
        # realised = 0.01·(vwap exit − 60000.1); ledger agrees
        exit_value = sum(e.exec_qty * e.exec_price for e in sl)
        assert m.ex.ledger.realised_pnl == exit_value - D("0.010") * D("60000.1")
        assert_fees(m)
    run_virtual(run())


@pytest.mark.parametrize(("burst", "kind"), [
    ([59400.0, 60600.0], "StopLoss"),     # the SL-crossing print comes first
    ([60600.0, 59400.0], "TakeProfit"),
])
def test_tp_and_sl_in_one_burst_first_crossing_trade_decides(burst: list[float], kind: str) -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await open_long(m)
        await m.ex.set_trading_stop("BTCUSDT", take_profit=D("60600.0"), stop_loss=D("59400.0"))
        await m.at(1.0, m.book([(59500.0, 5.0)], [(59501.0, 5.0)]), *[m.trade(p, 0.01) for p in burst])
        await m.settle()
        closing = [e for e in m.ex.fills if e.stop_order_type]
        assert {e.stop_order_type for e in closing} == {kind}
        assert m.ex.position("BTCUSDT")[0] == 0
    run_virtual(run())


def test_reduce_only_close_after_exchange_tp_is_rejected() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await open_long(m)
        await m.ex.set_trading_stop("BTCUSDT", take_profit=D("60600.0"), stop_loss=None)
        await m.at(1.0, m.book([(60600.0, 5.0)], [(60601.0, 5.0)]), m.trade(60600.0, 0.01, "Buy"))
        with pytest.raises(ExchangeError) as err:
            await m.ex.place_order(market("Sell", "0.010", "close", reduce_only=True))
        assert err.value.code == ERR_REDUCE_ONLY
        assert m.ex.position("BTCUSDT")[0] == 0          # no opposite position was opened
        (pos,) = await m.ex.get_positions("BTCUSDT")
        assert pos.side == "" and pos.size == 0
    run_virtual(run())


def test_reduce_only_is_clamped_and_never_flips() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await open_long(m, "0.005")
        await m.at(1.0, m.book([(60000.0, 5.0)], [(60000.1, 5.0)]))
        await m.ex.place_order(market("Sell", "0.010", "close", reduce_only=True))
        assert m.ex.position("BTCUSDT")[0] == 0
        assert m.trade_fills()[-1].exec_qty == D("0.005")
    run_virtual(run())


@pytest.mark.parametrize(("side_qty", "tp", "sl"), [
    ("Buy", "59990.0", None),     # LONG TP below last
    ("Buy", None, "60010.0"),     # LONG SL above last
    ("Sell", "60010.0", None),    # SHORT TP above last
    ("Sell", None, "59990.0"),    # SHORT SL below last
    ("Buy", "60600.05", None),    # off tick
])
def test_wrong_side_tpsl_rejected(side_qty: str, tp: str | None, sl: str | None) -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(60000.0, 5.0)], [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
        await m.ex.place_order(market(side_qty, "0.010", "open"))
        with pytest.raises(ExchangeError) as err:
            await m.ex.set_trading_stop("BTCUSDT", take_profit=None if tp is None else D(tp),
                                        stop_loss=None if sl is None else D(sl))
        assert err.value.code == ERR_PARAMS
        assert m.ex.protection("BTCUSDT") == (0, 0)
    run_virtual(run())


def test_trading_stop_without_position_and_not_modified() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(60000.0, 5.0)], [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
        with pytest.raises(ExchangeError) as err:
            await m.ex.set_trading_stop("BTCUSDT", take_profit=D("61000.0"), stop_loss=None)
        assert err.value.code == ERR_PARAMS
        await m.ex.place_order(market("Buy", "0.010", "open"))
        await m.ex.set_trading_stop("BTCUSDT", take_profit=D("61000.0"), stop_loss=D("59000.0"))
        with pytest.raises(ExchangeError) as err:
            await m.ex.set_trading_stop("BTCUSDT", take_profit=D("61000.0"), stop_loss=D("59000.0"))
        assert err.value.code == ERR_NOT_MODIFIED
    run_virtual(run())


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("req", "code"), [
    (limit("Buy", "59990.05", "0.010", "x"), ERR_PARAMS),                      # off tick
    (limit("Buy", "59990.0", "0.0105", "x"), ERR_PARAMS),                      # off step
    (limit("Buy", "59990.0", "0", "x"), ERR_PARAMS),                           # below minOrderQty
    (limit("Buy", "4000.0", "0.001", "x"), ERR_QTY_TOO_SMALL),                 # 4 USDT < minNotional 5
    (limit("Buy", "59990.0", "1500.001", "x"), ERR_PARAMS),                    # > maxOrderQty
    (market("Buy", "150.001", "x"), ERR_PARAMS),                               # > maxMktOrderQty
    (market("Buy", "0.001", "x", symbol="NOPEUSDT"), ERR_PARAMS),              # unknown symbol
    (market("Sell", "0.010", "x", reduce_only=True), ERR_REDUCE_ONLY),         # reduce-only, flat
    (limit("Buy", "59990.0", "0.200", "x"), ERR_INSUFFICIENT_BALANCE),         # 11998 USDT at 10x on 1000
    (market("Buy", "0.200", "x"), ERR_INSUFFICIENT_BALANCE),
])
def test_rejections(req: OrderRequest, code: int) -> None:
    async def run() -> None:
        m = ScriptedMarket.create(balance="1000")
        await m.at(0.0, m.book(BIDS, [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
        with pytest.raises(ExchangeError) as err:
            await m.ex.place_order(req)
        assert err.value.code == code
        await m.settle()
        assert m.received == [] and m.ex.fills == []
    run_virtual(run())


def test_eth_filters_and_duplicate_link_id() -> None:
    async def run() -> None:
        m = ScriptedMarket.create("ETHUSDT")
        await m.at(0.0, m.book([(3000.00, 10.0)], [(3000.01, 10.0)]), m.trade(3000.0, 0.1))
        with pytest.raises(ExchangeError) as err:
            await m.ex.place_order(OrderRequest("ETHUSDT", "Buy", "Limit", D("0.015"), "e1", price=D("2990.00")))
        assert err.value.code == ERR_PARAMS
        await m.ex.place_order(OrderRequest("ETHUSDT", "Buy", "Limit", D("0.10"), "e1", price=D("2990.00")))
        with pytest.raises(ExchangeError) as err:
            await m.ex.place_order(OrderRequest("ETHUSDT", "Buy", "Limit", D("0.10"), "e1", price=D("2990.00")))
        assert err.value.code == ERR_DUPLICATE_LINK_ID
        with pytest.raises(ExchangeError) as err:
            await m.ex.cancel_order("ETHUSDT", "unknown")
        assert err.value.code == ERR_ORDER_NOT_EXISTS
    run_virtual(run())


def test_resting_orders_use_margin() -> None:
    async def run() -> None:
        m = ScriptedMarket.create(balance="1000")
        await m.at(0.0, m.book(BIDS, ASKS), m.trade(60000.0, 0.001))
        await m.ex.place_order(limit("Buy", "59990.0", "0.100", "b1"))      # 599.9 IM at 10x
        with pytest.raises(ExchangeError) as err:
            await m.ex.place_order(limit("Buy", "59990.0", "0.100", "b2"))
        assert err.value.code == ERR_INSUFFICIENT_BALANCE
        w = await m.ex.get_wallet()
        assert w.available_balance == D("1000") - D("0.100") * D("59990.0") / 10
    run_virtual(run())


# ---------------------------------------------------------------- funding, liquidation, leverage
@pytest.mark.parametrize(("side", "sign"), [("Buy", -1), ("Sell", 1)])
def test_funding_charge(side: str, sign: int) -> None:
    async def run() -> None:
        m = ScriptedMarket.create(backtest={"funding_rate": 0.0001})
        await m.at(0.0, m.book([(60000.0, 5.0)], [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
        await m.ex.place_order(market(side, "0.010", "open"))
        bal0 = m.ex.ledger.balance
        await m.at(28799.0, m.trade(61000.0, 0.001))      # last price before the 8 h boundary
        await m.at(28801.0, m.trade(61500.0, 0.001))
        ev = await m.settle()
        (f,) = [e for e in ev if isinstance(e, Execution) and e.exec_type == "Funding"]
        assert f.exec_fee == -sign * D("0.010") * D("61000.0") * D("0.0001")
        assert f.ts == 1_785_600_000.0 + 28800
        assert m.ex.ledger.balance - bal0 == sign * D("0.061")
        assert m.ex.ledger.funding == -sign * D("0.061") and m.ex.ledger.reconcile()
    run_virtual(run())


def test_liquidation_closes_at_bankruptcy_price() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(59999.0, 5.0)], [(60000.0, 5.0)]), m.trade(60000.0, 0.001))
        await m.ex.set_leverage("BTCUSDT", 50)
        await m.ex.place_order(market("Buy", "0.010", "open"))
        # LONG 50x at 60000: liq = 60000·(1 − 0.02 + 0.005) = 59100, bankruptcy = 58800
        assert m.ex.liq_price("BTCUSDT") == D("59100.0")
        await m.ex.place_order(limit("Buy", "58000.0", "0.010", "resting"))
        await m.at(1.0, m.book([(59100.0, 5.0)], [(59101.0, 5.0)]), m.trade(59100.1, 0.01))
        assert m.ex.position("BTCUSDT")[0] == D("0.010")
        await m.at(2.0, m.trade(59100.0, 0.01))
        ev = await m.settle()
        bust = m.ex.fills[-1]
        assert (bust.exec_type, bust.create_type, bust.exec_price, bust.exec_qty, bust.side) == (
            "BustTrade", "CreateByLiq", D("58800.0"), D("0.010"), "Sell")
        assert bust.exec_fee == D("0.010") * D("58800.0") * D("0.00055")
        assert m.ex.position("BTCUSDT")[0] == 0
        assert m.ex.ledger.realised_pnl == D("-12.000")                 # the whole initial margin
        cancelled = [e for e in ev if isinstance(e, OrderUpdate) and e.order_link_id == "resting"][-1]
        assert cancelled.status == "Cancelled"
        assert m.ex.ledger.reconcile()
    run_virtual(run())


def test_set_leverage_rules() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.ex.set_leverage("BTCUSDT", 20)
        for lev, code in ((20, 110043), (0, ERR_PARAMS), (101, ERR_PARAMS)):
            with pytest.raises(ExchangeError) as err:
                await m.ex.set_leverage("BTCUSDT", lev)
            assert err.value.code == code
    run_virtual(run())


# ---------------------------------------------------------------- latency on the wire, ledger
def test_latency_legs_and_event_timing() -> None:
    async def run() -> None:
        m = ScriptedMarket.create(latency=ConstantLatency(entry_ms=30, response_ms=20))
        await m.at(0.0, m.book(BIDS, ASKS), m.trade(60000.0, 0.001))
        await m.ex.place_order(market("Buy", "0.003", "m1"))
        assert abs(m.now - 0.05) < 1e-9                         # entry + response
        assert m.ex.fills[0].ts == pytest.approx(1_785_600_000.0 + 0.03)    # matched on arrival
        # a fill caused by the market reaches the bot one response leg later
        await m.ex.place_order(limit("Buy", "59990.0", "0.003", "b1"))
        await m.until(0.5)
        before = m.ex.events.qsize()
        assert before == 6                  # m1: New, execution, order, position, wallet; b1: New
        await m.at(1.0, m.trade(59980.0, 1.0))
        await m.until(1.019)
        assert m.ex.events.qsize() == before
        await m.until(1.021)
        assert m.ex.events.qsize() == before + 4    # execution, order, position, wallet
    run_virtual(run())


def test_ledger_matches_hand_computation() -> None:
    async def run() -> None:
        m = ScriptedMarket.create()
        await m.at(0.0, m.book([(60000.0, 5.0)], [(60000.1, 5.0)]), m.trade(60000.0, 0.001))
        await m.ex.place_order(market("Buy", "0.010", "a"))                      # 0.010 @ 60000.1
        await m.at(1.0, m.book([(60100.0, 5.0)], [(60100.1, 5.0)]))
        await m.ex.place_order(market("Sell", "0.015", "b"))                     # close 0.010, open short 0.005
        fees = sum((e.exec_fee for e in m.ex.fills), Decimal(0))
        assert m.ex.ledger.realised_pnl == D("0.010") * (D("60100.0") - D("60000.1"))
        assert m.ex.ledger.balance == D("10000") + m.ex.ledger.realised_pnl - fees
        assert m.ex.position("BTCUSDT") == (D("-0.005"), D("60100.0"))
        assert m.ex.fills[-1].closed_size == D("0.010")
        assert m.ex.ledger.reconcile()
    run_virtual(run())


# ---------------------------------------------------------------- models, port conformance, queries
def test_models_from_settings_and_seeded_latency() -> None:
    import random

    from bot.adapters.simulated import LogNormalLatency, RiskAverseQueue, latency_from_settings, net_fill
    from settings import Settings

    bt = Settings(backtest={"latency_model": "lognormal", "latency_entry_ms": 40, "latency_sigma": 0.5}).backtest
    a, b = latency_from_settings(bt, 3), latency_from_settings(bt, 3)
    draws = [a.entry() for _ in range(5)]
    assert draws == [b.entry() for _ in range(5)] and len(set(draws)) == 5 and all(x > 0 for x in draws)
    const = latency_from_settings(Settings(backtest={"latency_model": "constant", "latency_cancel_ms": 70}).backtest, 0)
    assert const.cancel() == 0.07
    model = LogNormalLatency(20, 0.5, random.Random(1))
    med = sorted(model.response() for _ in range(2001))[1000]
    assert abs(med - 0.020) < 0.002
    q = RiskAverseQueue()
    assert q.on_trade_at_price(q.on_new(D("0.5")), D("0.3")) == (D("0.2"), 0)
    assert q.on_trade_at_price(D("0.2"), D("0.25")) == (0, D("0.05"))
    # netting: open, add, partial close, flip
    size, cost, r, closed = net_fill(D(0), D(0), 1, D("2"), D("100"))
    size, cost, r, closed = net_fill(size, cost, 1, D("2"), D("110"))
    assert (size, cost) == (D(4), D(420))
    size, cost, r, closed = net_fill(size, cost, -1, D("5"), D("120"))
    assert (size, cost, r, closed) == (D(-1), D(120), D(60), D(4))


def test_sim_exchange_implements_the_port_and_answers_queries() -> None:
    from bot.ports import Exchange

    async def run() -> None:
        m = ScriptedMarket.create()
        assert isinstance(m.ex, Exchange)
        await m.at(0.0, m.book(BIDS, ASKS), m.trade(60000.0, 0.001))
        assert await m.ex.server_time() == 1_785_600_000.0
        await m.ex.place_order(limit("Buy", "59990.0", "0.010", "b1"))
        await m.ex.place_order(limit("Buy", "60000.5", "0.010", "fok", time_in_force="FOK"))   # 0.007 available
        await m.ex.place_order(limit("Buy", "60000.5", "0.010", "ioc", time_in_force="IOC"))
        assert [o.order_link_id for o in await m.ex.get_open_orders("BTCUSDT")] == ["b1"]
        fok = await m.ex.get_order("BTCUSDT", "fok")
        ioc = await m.ex.get_order("BTCUSDT", "ioc")
        assert fok is not None and (fok.status, fok.cum_exec_qty) == ("Cancelled", 0)
        assert ioc is not None and (ioc.status, ioc.cum_exec_qty, ioc.avg_price) == (
            "Cancelled", D("0.007"), D("60000.32857143"))
        assert len(await m.ex.get_executions("BTCUSDT")) == 2
        (pos,) = await m.ex.get_positions()
        assert (pos.side, pos.size, pos.leverage) == ("Buy", D("0.007"), D(10))
        assert await m.ex.get_order("BTCUSDT", "nope") is None
    run_virtual(run())
