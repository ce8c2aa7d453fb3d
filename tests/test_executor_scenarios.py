"""Executor scenarios (freqtrade backtest-detail style): the REAL Executor against the REAL SimExchange and DataStorage
on the virtual-time loop, with a scripted market pushed to both at its timestamps.

Market used by most scenarios (BTCUSDT, tick 0.1, step 0.001): book 60000.0 / 60000.1, equity 1000 USDT, 10x, 10 %
margin → q = floor_step(1000 / 59988.0) = 0.016; BUY P0 = floor_tick(60000·(1 − 2 bps)) = 59988.0.
No volatility in the signal → static distances sl 0.2 %, tp 1.0 % → SL = 59868.0, TP = 60587.9 (from e = 59988.0).
Latency: 20 ms each leg.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

import pytest

from bot.adapters.simulated.latency import ConstantLatency
from bot.adapters.simulated.sim import SimExchange
from bot.analysis.signals import Signal
from bot.clock import LoopClock
from bot.events import BookSnapshot, Trade
from bot.execution.executor import Executor
from bot.execution.positions import PositionRecord, PositionState, Protection
from bot.execution.rate_limit import OrderRateLimiter
from bot.execution.trade_log import TradeLog
from bot.instruments import InstrumentRegistry
from bot.ports import ERR_REDUCE_ONLY
from bot.risk import RiskManager
from bot.storage import DataStorage
from replay.virtual_loop import run_virtual, virtual_clock
from settings import Settings

EPOCH = 1_765_200_000.0
T0 = 1.0   # scenario time 0 = EPOCH + T0: Executor.start() (REST round trips) completes before it
SYM = "BTCUSDT"
REG = InstrumentRegistry.bundled()
MAKER, TAKER = D("0.0002"), D("0.00055")
_uid = iter(range(1, 1_000_000))
_tid = iter(range(1, 1_000_000))


def book(t: float, bid: float, ask: float, bid_sizes: tuple[float, ...] = (2.0,) * 5,
         ask_sizes: tuple[float, ...] = (2.0,) * 5) -> BookSnapshot:
    bids = [(round(bid - 0.1 * i, 1), s) for i, s in enumerate(bid_sizes)]
    asks = [(round(ask + 0.1 * i, 1), s) for i, s in enumerate(ask_sizes)]
    return BookSnapshot(SYM, EPOCH + T0 + t, bids, asks, next(_uid))


def trade(t: float, price: float, size: float, side: str) -> Trade:
    return Trade(SYM, EPOCH + T0 + t, price, size, side, str(next(_tid)))  # type: ignore[arg-type]


def signal(t: float, direction: int, range_pct: float = 0.0, atr_pct: float = 0.0, std_pct: float = 1.0) -> Signal:
    action = "BUY" if direction > 0 else "SELL"
    return Signal(symbol=SYM, ts=EPOCH + T0 + t, action=action, strength=4, raw_action=action, raw_strength=4,
                  dir=direction, composite=0.5 * direction, ema=0.5 * direction, threshold=0.4, reason="test",
                  cooldown_active=False, cooldown_until=0.0, ohara_score=5, effective_imbalance=30.0 * direction,
                  momentum_score=60.0 * direction, factors={}, spread_bps=0.02, volatility=1.0,
                  frequency_regime="NORMAL", volume_z=0.0, acceleration=0.0, spike=False, confirmation="",
                  confirmation_direction=0, bayesian_signal="", bayesian_p=0.5, informed_direction="",
                  range_pct=range_pct, atr_pct=atr_pct, std_pct=std_pct)


class Harness:
    """One executor + sim exchange + storage on the running virtual loop."""

    def __init__(self, **settings_kw: Any) -> None:
        kw = {"trading": {"trade_pairs": [SYM]}, **settings_kw}
        self.s = Settings(**kw)
        self.clock: LoopClock = virtual_clock(EPOCH)
        self.sim = SimExchange(self.s, self.clock, REG, seed=7, latency=ConstantLatency(20, 20, cancel_ms=20),
                               initial_balance=D(1000))
        self.storage = DataStorage(self.s, self.clock, [SYM])
        self.risk = RiskManager(self.s, REG)
        self.log = TradeLog(None)
        self.closed: list[PositionRecord] = []
        self.exe = Executor(self.s, self.clock, self.sim, self.storage, self.risk, REG, self.log,
                            on_closed=self.closed.append)

    async def start(self, first_book: BookSnapshot | None = None) -> Harness:
        self.push(first_book or book(-T0, 60000.0, 60000.1))
        await self.exe.start()
        await self.at(0.0)
        return self

    async def at(self, t: float) -> None:
        await asyncio.sleep(max(0.0, EPOCH + T0 + t - self.clock.now()))

    def push(self, *events: Any, storage: bool = True, exchange: bool = True) -> None:
        batch = list(events)
        if storage:
            self.storage.apply_batch(batch)
        if exchange:
            self.sim.on_market(batch)

    async def market(self, t: float, *events: Any, **kw: bool) -> None:
        await self.at(t)
        self.push(*events, **kw)

    def rec(self) -> PositionRecord:
        r = self.exe.record(SYM)
        assert r is not None, "no live record"
        return r

    async def stop(self) -> None:
        await self.exe.stop()
        assert self.exe.task_errors == []


def run(body: Callable[[], Any]) -> Any:
    return run_virtual(body())


async def opened_long(h: Harness, fill_size: float = 0.016) -> PositionRecord:
    """BUY at P0 = 59988.0, filled by a Sell trade through our price at t=1."""
    assert h.exe.open(SYM, 1, signal(0, 1))
    await h.market(1.0, trade(1.0, 59987.9, fill_size, "Sell"))
    await h.at(2.0)
    return h.rec()


def fee(q: str, p: str, rate: D) -> D:
    return D(q) * D(p) * rate


# ---------------------------------------------------------------------------------------------------- entries
def test_full_limit_fill_opens_with_protection() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        assert rec.state is PositionState.OPEN and rec.entry_reason == "LIMIT"
        assert rec.qty == D("0.016") and rec.avg_entry == D("59988.0")
        assert (rec.sl, rec.tp) == (D("59868.0"), D("60587.9"))
        assert rec.protection is Protection.SET
        assert h.sim.protection(SYM) == (D("60587.9"), D("59868.0"))          # exchange-side (tp, sl)
        assert rec.entry_fills[0].is_maker and rec.entry_fills[0].fee == fee("0.016", "59988.0", MAKER)
        (row,) = h.log.rows
        assert row["event"] == "OPEN" and row["reason"] == "LIMIT" and row["price"] == "59988.0"
        assert row["qty"] == "0.016" and row["sl"] == "59868.0" and row["tp"] == "60587.9"
        assert row["signal"].startswith("BUY4 imb=30.0")
        await h.stop()
    run(body)


def test_partial_fill_accepted_and_remainder_cancelled() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h, fill_size=0.013)       # 0.013 ≥ 0.8·0.016
        assert rec.state is PositionState.OPEN and rec.entry_reason == "LIMIT_PARTIAL" and rec.qty == D("0.013")
        link = rec.order_links[0]
        o = await h.sim.get_order(SYM, link)
        assert o is not None and o.status == "Cancelled" and o.cum_exec_qty == D("0.013")
        assert h.sim.position(SYM)[0] == D("0.013")
        # a later trade through the old price fills nothing more: the remainder is really gone
        await h.market(3.0, trade(3.0, 59980.0, 1.0, "Sell"))
        await h.at(4.0)
        assert h.sim.position(SYM)[0] == D("0.013") and rec.qty == D("0.013")
        await h.stop()
    run(body)


def test_below_acceptance_waits_for_more() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(1.0, trade(1.0, 59987.9, 0.010, "Sell"))   # 62 % < 80 %: keep working
        await h.at(2.0)
        assert h.rec().state is PositionState.OPENING and h.rec().qty == D("0.010")
        await h.market(2.5, trade(2.5, 59987.9, 0.005, "Sell"))   # 94 % → accept, cancel the last 0.001
        await h.at(3.0)
        rec = h.rec()
        assert rec.state is PositionState.OPEN and rec.qty == D("0.015") and rec.entry_reason == "LIMIT_PARTIAL"
        await h.stop()
    run(body)


def test_chase_by_amend_stays_passive_then_fills() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(2.5, book(2.5, 60005.0, 60005.1))
        # t≈3.04: P' = floor_tick(59988·1.0005) = 60017.9, capped at best_ask − tick = 60005.0
        await h.at(3.5)
        rec = h.rec()
        o = await h.sim.get_order(SYM, rec.order_links[0])
        assert o is not None and o.price == D("60005.0")
        # t≈6.04: 60005·1.0005 = 60035.0 → capped again at 60005.0: no move toward the market, no amend
        await h.at(7.0)
        assert h.exe.requests["amend"] == 1
        await h.market(7.5, trade(7.5, 60004.9, 1.0, "Sell"))
        await h.at(8.0)
        assert rec.state is PositionState.OPEN and rec.entry_reason == "LIMIT" and rec.avg_entry == D("60005.0")
        assert rec.meta["amends"] == "1"
        await h.stop()
    run(body)


def test_chase_stops_after_max_reprice_attempts() -> None:
    async def body() -> None:
        h = await Harness(execution={"max_reprice_attempts": 2}).start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(0.5, book(0.5, 61000.0, 61000.1))          # the market runs away
        await h.at(20.0)
        assert h.exe.requests["amend"] == 2
        o = await h.sim.get_order(SYM, h.rec().order_links[0])
        # 59988.0 → 60017.9 → 60047.9
        assert o is not None and o.price == D("60047.9")
        await h.stop()
    run(body)


def test_fallback_to_market_with_slippage_from_book() -> None:
    async def body() -> None:
        # thin ask: 0.010 at 60000.1, then 2.0 at 60000.2 → the 0.016 market buy walks two levels
        h = await Harness().start(book(-T0, 60000.0, 60000.1, ask_sizes=(0.010, 2.0, 2.0, 2.0, 2.0)))
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.at(29.0)
        assert h.rec().state is PositionState.OPENING and h.exe.requests["place_fallback"] == 0
        await h.at(31.0)
        rec = h.rec()
        assert rec.state is PositionState.OPEN and rec.entry_reason == "MARKET_FALLBACK"
        assert [(f.qty, f.price, f.is_maker) for f in rec.entry_fills] == [
            (D("0.010"), D("60000.1"), False), (D("0.006"), D("60000.2"), False)]
        assert rec.avg_entry == (D("0.010") * D("60000.1") + D("0.006") * D("60000.2")) / D("0.016")
        limit = await h.sim.get_order(SYM, rec.order_links[0])
        assert limit is not None and limit.status == "Cancelled"
        assert rec.fees is None and sum(f.fee for f in rec.entry_fills) == (
            fee("0.010", "60000.1", TAKER) + fee("0.006", "60000.2", TAKER))
        await h.stop()
    run(body)


def test_partial_then_market_remainder_is_vwap_of_all_fills() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(1.0, trade(1.0, 59987.9, 0.005, "Sell"))   # 31 %: below acceptance
        await h.at(31.0)
        rec = h.rec()
        assert rec.entry_reason == "LIMIT_PLUS_MARKET" and rec.qty == D("0.016")
        mkt = [f for f in rec.entry_fills if not f.is_maker]
        assert sum(f.qty for f in mkt) == D("0.011")                # floor_step(0.016 − 0.005), remainder only
        assert rec.avg_entry == (D("0.005") * D("59988.0") + D("0.011") * D("60000.1")) / D("0.016")
        assert h.sim.position(SYM)[0] == D("0.016")
        await h.stop()
    run(body)


def test_cancel_loses_race_with_fill() -> None:
    async def body() -> None:
        h = await Harness().start()
        h.sim._lat = ConstantLatency(20, 20, cancel_ms=300)   # a slow cancel leg widens the race window
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.at(30.1)   # fallback fired at ≈30.04; the cancel reaches the engine at ≈30.34
        await h.market(30.2, trade(30.2, 59987.9, 1.0, "Sell"))   # the fill wins the race
        await h.at(32.0)
        rec = h.rec()
        assert rec.state is PositionState.OPEN and rec.entry_reason == "LIMIT" and rec.qty == D("0.016")
        assert h.exe.requests["cancel"] == 1 and h.exe.requests["place_fallback"] == 0
        assert h.sim.position(SYM)[0] == D("0.016")
        await h.stop()
    run(body)


def test_fallback_cancel_mode_unfilled_is_dropped() -> None:
    async def body() -> None:
        h = await Harness(execution={"fallback_mode": "cancel"}).start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.at(31.0)
        assert h.exe.record(SYM) is None and h.exe.live_count() == 0
        (d,) = h.exe.dropped
        assert d.drop_reason == "entry_unfilled" and h.log.rows == []
        await h.stop()
    run(body)


def test_open_preconditions() -> None:
    async def body() -> None:
        h = await Harness(risk={"max_open_positions": 1}).start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        assert not h.exe.open(SYM, -1, signal(0, -1))                  # one record per symbol
        assert h.exe.live_count() == 1
        assert h.exe.refusals[-1][2] == "position_exists"
        assert not h.exe.open("ETHUSDT", 1, signal(0, 1))               # the OPENING record holds the only slot
        assert h.exe.refusals[-1][2] == "max_open_positions"
        await h.at(15.0)
        await h.stop()
        # stop() cancelled the unfilled working entry and dropped it
        assert h.exe.record(SYM) is None and h.exe.dropped[-1].drop_reason == "entry_unfilled"
    run(body)


def test_stale_book_and_sizing_refusals() -> None:
    async def body() -> None:
        h = await Harness().start()
        await h.at(11.0)                                               # book_stale_sec = 10
        assert not h.exe.open(SYM, 1, signal(11, 1)) and h.exe.refusals[-1][2] == "book_invalid"
        h.push(book(11, 60000.0, 60000.1))
        h.exe.available = D(1)                                          # margin short
        assert not h.exe.open(SYM, 1, signal(11, 1))
        assert h.exe.refusals[-1][2] == "sizing:insufficient_margin"
        await h.stop()
    run(body)


# ---------------------------------------------------------------------------------------------------- exits
def test_tp_hit_on_exchange_and_pnl_reconciles_with_ledger() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        await h.market(10.0, book(10.0, 60590.0, 60590.1), trade(10.0, 60590.0, 0.5, "Buy"))
        await h.at(11.0)
        assert h.exe.record(SYM) is None
        (c,) = h.exe.closed
        assert c is rec and c.close_reason == "TP_HIT" and c.close_source == "evidence"
        assert c.exit_price == D("60590.0") and h.closed == [c]
        gross = (D("60590.0") - D("59988.0")) * D("0.016")
        fees = fee("0.016", "59988.0", MAKER) + fee("0.016", "60590.0", TAKER)
        assert (c.gross_pnl, c.fees, c.net_pnl) == (gross, fees, gross - fees)
        # the exchange ledger agrees to the last decimal (same fee model), and re-derives from its fills
        assert h.sim.ledger.realised_pnl - h.sim.ledger.fees == c.net_pnl
        assert h.sim.ledger.reconcile()
        assert h.sim.position(SYM)[0] == 0
        close_row = h.log.rows[-1]
        assert close_row["event"] == "CLOSE" and close_row["reason"] == "TP_HIT"
        assert close_row["net_pnl"] == f"{gross - fees:.6f}" and "exch_fee=" in close_row["meta"]
        assert h.risk.history(SYM)[0].reason == "TP_HIT"
        await h.stop()
    run(body)


def test_sl_hit_with_slippage() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        # a gap down: the first trade at/below the SL (59868.0) is 59800.0 and the bid is 59790.0
        await h.market(10.0, book(10.0, 59790.0, 59790.1), trade(10.0, 59800.0, 0.5, "Sell"))
        await h.at(11.0)
        assert rec.state is PositionState.CLOSED and rec.close_reason == "SL_HIT"
        assert rec.exit_price == D("59790.0") and rec.exit_price < rec.sl  # type: ignore[operator]
        assert rec.exit_fills[0].stop_order_type == "StopLoss"
        assert rec.net_pnl == (D("59790.0") - D("59988.0")) * D("0.016") - (
            fee("0.016", "59988.0", MAKER) + fee("0.016", "59790.0", TAKER))
        await h.stop()
    run(body)


def test_time_exit_by_monitor() -> None:
    async def body() -> None:
        h = await Harness(risk={"base_position_lifetime_minutes": 5, "enable_adaptive_lifetime": False}).start()
        rec = await opened_long(h)
        assert rec.max_lifetime_sec == 300.0
        await h.at(300.0)
        assert rec.state is PositionState.OPEN                  # opened_at = 1.0: not yet 300 s old
        await h.at(310.0)                                       # next monitor tick (5 s period)
        assert rec.state is PositionState.CLOSED and rec.close_reason == "TIME_EXIT"
        assert rec.exit_fills[0].order_link_id.endswith("-C1-TIME_EXIT") and not rec.exit_fills[0].is_maker
        assert rec.exit_price == D("60000.0")
        assert 300.0 <= rec.closed_at - rec.opened_at < 306.0  # type: ignore[operator]
        await h.stop()
    run(body)


def test_opposite_signal_close_only_from_open() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        assert not h.exe.close(SYM, "OPPOSITE_SIGNAL")            # OPENING: refused
        await h.market(1.0, trade(1.0, 59987.9, 0.016, "Sell"))
        await h.at(40.0)
        assert h.exe.close(SYM, "OPPOSITE_SIGNAL")
        assert not h.exe.close(SYM, "OPPOSITE_SIGNAL")            # already CLOSING
        with pytest.raises(ValueError, match="close reason"):
            h.exe.close(SYM, "BECAUSE")
        await h.at(41.0)
        (c,) = h.exe.closed
        assert c.close_reason == "OPPOSITE_SIGNAL" and h.sim.position(SYM)[0] == 0
        await h.stop()
    run(body)


def test_reverse_reenters_other_side_once_flat() -> None:
    async def body() -> None:
        h = await Harness().start()
        first = await opened_long(h)
        await h.market(40.0, book(40.0, 60010.0, 60010.1))
        assert h.exe.close(SYM, "REVERSE", reenter_signal=signal(40.0, -1))
        await h.at(41.0)
        assert first.close_reason == "REVERSE"
        second = h.rec()
        assert second.side == -1 and second.position_id != first.position_id
        assert second.state is PositionState.OPENING
        o = await h.sim.get_order(SYM, second.order_links[0])
        # SELL P0 = ceil_tick(60010.1·(1 + 2 bps) = 60022.102) = 60022.2
        assert o is not None and o.side == "Sell" and o.price == D("60022.2")
        assert h.sim.position(SYM)[0] == 0                      # flat between the legs, never short by accident
        await h.stop()
    run(body)


def test_reduce_only_close_after_exchange_tp_never_opens_opposite() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        await h.at(40.0)
        h.push(book(40.0, 60590.0, 60590.1))
        assert h.exe.close(SYM, "OPPOSITE_SIGNAL")               # sent at 40.0, reaches the engine at 40.02
        await h.market(40.01, trade(40.01, 60590.0, 0.5, "Buy"))  # the exchange TP fires first
        await h.at(42.0)
        assert rec.state is PositionState.CLOSED
        assert rec.close_reason == "TP_HIT" and rec.meta["intent"] == "OPPOSITE_SIGNAL"
        assert h.sim.position(SYM)[0] == 0                      # the reduce-only close was refused (110017)
        assert len(h.sim.fills) == 2 and len(rec.exit_fills) == 1
        rejected = [o for o in await h.sim.get_open_orders(SYM)]
        assert rejected == []
        assert ERR_REDUCE_ONLY == 110017
        await h.stop()
    run(body)


# ---------------------------------------------------------------------------------------------------- protection
def test_wrong_side_sl_rejected_then_breached_closes_sl_hit() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(1.0, trade(1.0, 59987.9, 0.016, "Sell"))
        # the exchange's last trade drops below our SL before the trading-stop arrives: wrong side → rejected
        await h.market(1.03, trade(1.03, 59860.0, 0.001, "Sell"), storage=False)
        await h.at(1.3)
        assert h.exe.requests["trading_stop"] == 1
        h.push(trade(1.3, 59860.0, 0.001, "Sell"), exchange=False)   # now the bot sees it too
        await h.at(3.0)
        (c,) = h.exe.closed
        assert c.close_reason == "SL_HIT" and c.protection is not Protection.SET
        assert c.exit_fills[0].order_link_id.endswith("-C1-SL_HIT")
        assert h.sim.position(SYM)[0] == 0
        await h.stop()
    run(body)


def test_persistent_rejection_retries_then_protection_failed() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(1.0, trade(1.0, 59987.9, 0.016, "Sell"))
        await h.market(1.03, trade(1.03, 59860.0, 0.001, "Sell"), storage=False)  # only the exchange sees it
        await h.at(5.0)
        (c,) = h.exe.closed
        assert h.exe.requests["trading_stop"] == 1 + 3                # first try + sltp_max_retries
        assert c.protection is Protection.FAILED and c.close_reason == "PROTECTION_FAILED"
        assert h.sim.position(SYM)[0] == 0
        await h.stop()
    run(body)


def test_tp_already_reached_at_protection_closes_tp_hit() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        # fill and, in the same instant, the bot sees a print above the TP (60587.9)
        await h.market(1.0, trade(1.0, 59987.9, 0.016, "Sell"))
        h.push(trade(1.0, 60600.0, 0.001, "Buy"), exchange=False)
        await h.at(2.0)
        (c,) = h.exe.closed
        assert c.close_reason == "TP_HIT" and h.exe.requests["trading_stop"] == 0
        assert c.exit_fills[0].order_link_id.endswith("-C1-TP_HIT")
        await h.stop()
    run(body)


def test_protection_reapplied_when_exchange_values_differ() -> None:
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        # someone changes the TP on the exchange (e.g. from the UI)
        await h.sim.set_trading_stop(SYM, take_profit=D("61000.0"), stop_loss=D("59868.0"))
        await h.at(3.0)
        assert h.sim.protection(SYM) == (D("60587.9"), D("59868.0"))
        assert h.exe.requests["trading_stop"] == 2 and rec.protection is Protection.SET
        await h.stop()
    run(body)


# ---------------------------------------------------------------------------------------------------- plumbing
def test_reconcile_adopts_unknown_exchange_position() -> None:
    async def body() -> None:
        s = Settings(trading={"trade_pairs": [SYM]})
        clock = virtual_clock(EPOCH)
        sim = SimExchange(s, clock, REG, seed=1, latency=ConstantLatency(20, 20), initial_balance=D(1000))
        storage = DataStorage(s, clock, [SYM])
        b = book(0, 60000.0, 60000.1)
        storage.apply_batch([b])
        sim.on_market([b])
        from bot.ports import OrderRequest

        await sim.place_order(OrderRequest(SYM, "Buy", "Market", D("0.010"), "manual-1"))
        # a bot entry order left working by a previous run (no live record after a restart)
        await sim.place_order(OrderRequest(SYM, "Buy", "Limit", D("0.001"), "nap-zzzzzzzz00-E1-BUY", D("59000.0")))
        await asyncio.sleep(0.1)
        log = TradeLog(None)
        exe = Executor(s, clock, sim, storage, RiskManager(s, REG), REG, log)
        await exe.start()
        await asyncio.sleep(1.0)
        rec = exe.record(SYM)
        assert rec is not None and rec.meta["adopted"] == "1" and rec.qty == D("0.010")
        assert rec.avg_entry == D("60000.1") and rec.state is PositionState.OPEN
        assert rec.protection is Protection.SET and sim.protection(SYM) == (rec.tp, rec.sl)
        assert log.rows[0]["reason"] == "ADOPTED"
        stale = await sim.get_order(SYM, "nap-zzzzzzzz00-E1-BUY")
        assert stale is not None and stale.status == "Cancelled"
        await exe.stop()
    run(body)


def test_token_bucket_throttles_on_virtual_time() -> None:
    async def body() -> None:
        clock = virtual_clock(EPOCH)
        lim = OrderRateLimiter(clock, per_second=5, per_minute=8)
        stamps = []
        for _ in range(10):
            await lim.acquire()
            stamps.append(round(clock.now() - EPOCH, 6))
        # 5 immediately; then 1 per 0.2 s (per-second bucket) until the minute bucket (8) is empty: 7.5 s per token
        assert stamps[:5] == [0.0] * 5
        assert stamps[5:8] == pytest.approx([0.2, 0.4, 0.6])
        assert stamps[8] == pytest.approx(7.5) and stamps[9] == pytest.approx(15.0)
    run(body)


def test_stop_cancels_working_entry_and_protects_partial_fill() -> None:
    async def body() -> None:
        h = await Harness().start()
        assert h.exe.open(SYM, 1, signal(0, 1))
        await h.market(1.0, trade(1.0, 59987.9, 0.005, "Sell"))   # below acceptance: still OPENING
        await h.at(2.0)
        await h.stop()
        rec = h.exe.record(SYM)
        assert rec is not None and rec.state is PositionState.OPEN and rec.entry_reason == "LIMIT_PARTIAL"
        assert rec.qty == D("0.005") and rec.protection is Protection.SET
        assert h.sim.protection(SYM) == (rec.tp, rec.sl)           # left on its exchange-side TP/SL
        assert await h.sim.get_open_orders(SYM) == []             # the remainder was cancelled
        assert not h.exe.open(SYM, -1, signal(2, -1))              # stopped: no new entries
    run(body)


# ---------------------------------------------------------------------------------------------------- races
def _assert_reconciles_with_ledger(h: Harness) -> None:
    """Σ net PnL over CLOSE rows + funding == ledger balance − start, to the cent; one CLOSE per position."""
    closes = [r for r in h.log.rows if r["event"] == "CLOSE"]
    assert len(closes) == len({r["position_id"] for r in closes})
    assert not [r for r in h.log.rows if r["reason"] in ("ADOPTED", "EXTERNAL")]
    funding = sum((c.funding for c in h.exe.closed), D(0))
    net = sum((D(r["net_pnl"]) for r in closes), D(0))
    assert abs(net + (-funding) - (h.sim.ledger.balance - D(1000))) < D("0.01")
    exits = [f.exec_id for c in h.exe.closed for f in c.exit_fills]
    assert len(exits) == len(set(exits))                         # each exit fill belongs to exactly one position


def test_reconcile_snapshot_older_than_close_fill_never_adopts() -> None:
    """The REST position snapshot (LONG) is taken before the close fill, the REST executions after it: the record
    closes inside the reconciliation and the stale snapshot must not be adopted as an unknown position."""
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        await h.at(40.0)
        task = asyncio.create_task(h.exe.reconcile())            # get_positions reaches the engine at 40.02
        await h.at(40.01)
        assert h.exe.close(SYM, "OPPOSITE_SIGNAL")               # the close fills at 40.03 (between the snapshots)
        await task
        assert rec.state is PositionState.CLOSED and rec.close_reason == "OPPOSITE_SIGNAL"
        assert h.exe.record(SYM) is None                         # no phantom adopted from the stale snapshot
        await h.at(60.0)                                         # past close_confirm_timeout_sec: nothing follows
        assert h.exe.closed == [rec] and h.exe.record(SYM) is None and h.sim.position(SYM)[0] == 0
        assert [r["event"] for r in h.log.rows] == ["OPEN", "CLOSE"]
        _assert_reconciles_with_ledger(h)
        await h.stop()
    run(body)


def test_periodic_reconcile_overlapping_exchange_tp_never_adopts() -> None:
    """The monitor's periodic reconciliation takes its position snapshot (LONG), the exchange TP fills, then the
    REST executions close the record: the record closes once, TP_HIT, and nothing is adopted or force-flattened."""
    async def body() -> None:
        h = await Harness().start()
        rec = await opened_long(h)
        first = h.exe._last_reconcile
        await h.at(50.0)
        while h.exe._last_reconcile == first:                     # the periodic reconciliation starts (≈60 s)
            await asyncio.sleep(0.005)
        t_rec = h.exe._last_reconcile - EPOCH - T0
        # snapshot at t_rec+0.02, executions fetched at t_rec+0.06: the TP (60587.9) fills at t_rec+0.03
        await h.market(t_rec + 0.03, book(t_rec + 0.03, 60590.0, 60590.1), trade(t_rec + 0.03, 60590.0, 0.5, "Buy"))
        await h.at(t_rec + 30.0)
        assert h.exe.closed == [rec] and rec.close_reason == "TP_HIT" and h.exe.record(SYM) is None
        assert [r["event"] for r in h.log.rows] == ["OPEN", "CLOSE"] and h.exe.orphans == []
        _assert_reconciles_with_ledger(h)
        await h.stop()
    run(body)


def test_stale_events_neither_flatten_nor_attach_to_a_newer_position() -> None:
    """A flat position event older than the record's fills is ignored; an exchange-side exit fill (no link of ours)
    older than the record's first fill belongs to an earlier position and is an orphan, never this record's exit."""
    async def body() -> None:
        from bot.ports import Execution, PositionUpdate

        h = await Harness().start()
        rec = await opened_long(h)
        before = rec.exchange_position
        h.exe.apply_event(PositionUpdate(SYM, "", D(0), D(0), ts=EPOCH + T0 + 0.5))
        assert rec.exchange_position is before
        late = Execution(symbol=SYM, exec_id="late-exit-1", order_id="x", order_link_id="", side="Sell",
                         exec_price=D("60000.0"), exec_qty=D("0.016"), exec_fee=D(0), fee_rate=TAKER, is_maker=False,
                         ts=EPOCH + T0 + 0.5, create_type="CreateByTakeProfit", stop_order_type="TakeProfit")
        h.exe.apply_event(late)
        h.exe.apply_event(late)                                   # a REST copy of the same fill: deduplicated
        assert rec.state is PositionState.OPEN and rec.qty == D("0.016") and rec.exit_fills == []
        assert [o.exec_id for o in h.exe.orphans] == ["late-exit-1"]
        await h.at(20.0)
        assert rec.state is PositionState.OPEN and h.exe.closed == []
        await h.stop()
    run(body)


def test_start_uses_the_symbols_the_bot_was_built_with() -> None:
    """Leverage and the instrument check cover the constructor's ``symbols``, not every configured trade pair."""
    async def body() -> None:
        s = Settings(trading={"trade_pairs": [SYM, "NOSUCHUSDT"]})
        clock = virtual_clock(EPOCH)
        sim = SimExchange(s, clock, REG, seed=1, latency=ConstantLatency(20, 20), initial_balance=D(1000))
        storage = DataStorage(s, clock, [SYM])
        risk = RiskManager(s, REG)
        with pytest.raises(RuntimeError, match="NOSUCHUSDT"):
            await Executor(s, clock, sim, storage, risk, REG, TradeLog(None)).start()
        exe = Executor(s, clock, sim, storage, risk, REG, TradeLog(None), symbols=[SYM])
        await exe.start()
        assert exe.symbols == (SYM,)
        await exe.stop()
    run(body)


def test_entry_whose_answer_timed_out_is_tracked_not_orphaned() -> None:
    """The place request reached the exchange but its answer was lost: the retry's 110072 means "yours", not failure."""
    async def body() -> None:
        h = await Harness().start()
        real = h.sim.place_order
        lost: list[str] = []

        async def place_answer_lost_once(req: Any) -> Any:
            ack = await real(req)
            if not lost:
                lost.append(req.order_link_id)
                raise TimeoutError("place_order: no answer within 10.0s")
            return ack

        h.sim.place_order = place_answer_lost_once  # type: ignore[method-assign]
        rec = await opened_long(h)
        assert lost == [rec.order_links[0]]
        assert rec.state is PositionState.OPEN and rec.qty == D("0.016") and rec.protection is Protection.SET
        assert h.sim.position(SYM)[0] == D("0.016")
        assert [o for o in await h.sim.get_open_orders(SYM) if o.order_link_id in rec.order_links] == []
        assert len(rec.entry_fills) == 1                                  # one order placed, not two
        assert h.sim.ledger.balance - D(1000) == -sum(f.fee for f in rec.entry_fills)  # the ledger saw that fee only
        assert not [r for r in h.log.rows if r["reason"] in ("ADOPTED", "EXTERNAL")]
        await h.stop()
    run(body)
