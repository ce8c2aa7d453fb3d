"""The simulated Bybit fed ``TradeBatch``es: the same prints as ``Trade`` events or as one or several batches per
``on_market`` call give identical fills, positions, ledger and private events (hypothesis), plus the row selection
of :mod:`bot.adapters.simulated.tape_scan` on hand-made cases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import EPOCH0, INSTRUMENTS, ScriptedMarket

from bot.adapters.simulated import ConstantLatency, LogNormalLatency
from bot.adapters.simulated.tape_scan import Watch, rows_to_check, watch_of
from bot.events import BookSnapshot, MarketEvent, Trade, TradeBatch
from bot.ports import ExchangeError, OrderRequest
from replay.virtual_loop import run_virtual

SYM = "BTCUSDT"
INST = INSTRUMENTS[SYM]
TICK = INST.tick_size
STEP = INST.qty_step
SIZES = [0.001, 0.002, 0.005, 0.01, 0.05, 0.5]
INF = float("inf")

side_st = st.sampled_from(["Buy", "Sell"])
wide_print = st.tuples(st.integers(-12, 12), st.sampled_from(SIZES), side_st)
near_print = st.tuples(st.integers(-3, 3), st.sampled_from(SIZES), side_st)  # at resting prices: queue consumption
step_st = st.one_of(
    st.tuples(st.just("book"), st.integers(-40, 40), st.integers(1, 4),
              st.lists(st.sampled_from(SIZES), min_size=5, max_size=5),
              st.lists(st.sampled_from(SIZES), min_size=5, max_size=5)),
    st.tuples(st.just("burst"), st.lists(wide_print, min_size=1, max_size=40)),
    st.tuples(st.just("burst"), st.lists(near_print, min_size=1, max_size=60)),
    st.tuples(st.just("mixed"), st.lists(wide_print, min_size=1, max_size=15), st.integers(-6, 6),
              st.lists(near_print, min_size=1, max_size=15)),
    st.tuples(st.just("jump"), st.sampled_from([-4000, -700, 700, 4000])),
    st.tuples(st.just("limit"), side_st, st.integers(-8, 8), st.integers(1, 20), st.booleans(),
              st.sampled_from(["GTC", "GTC", "GTC", "PostOnly", "IOC"])),
    st.tuples(st.just("limit"), side_st, st.integers(0, 2), st.integers(1, 20), st.booleans(), st.just("GTC")),
    st.tuples(st.just("market"), side_st, st.integers(1, 30), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("amend"), st.integers(0, 50), st.integers(-8, 8)),
    st.tuples(st.just("tpsl"), st.integers(3, 60), st.integers(3, 60)),
    st.tuples(st.just("lev"), st.sampled_from([5, 10, 50, 100])),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.005, 0.02, 0.3, 4.0])),
)


def _batches(trades: list[Trade], cuts: list[int], first_id: int) -> list[MarketEvent]:
    """``trades`` (consecutive, one symbol) as TradeBatches split at ``cuts``; int64 ids from ``first_id``."""
    out: list[MarketEvent] = []
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < len(trades)), len(trades)]
    for a, b in itertools.pairwise(bounds):
        part = trades[a:b]
        out.append(TradeBatch(SYM, np.array([t.ts for t in part]), np.array([t.price for t in part]),
                              np.array([t.size for t in part]), np.array([t.side == "Buy" for t in part]),
                              np.arange(first_id + a, first_id + b, dtype=np.int64)))
    return out


class _Delivery:
    """Turns each ``on_market`` event list into the form under test: runs of consecutive ``Trade``s kept as they are
    (``"trades"``), or each run as one ``TradeBatch`` (``"one"``), or as several (``"split"``, cut points from
    ``rng``)."""

    def __init__(self, mode: str, rng: random.Random) -> None:
        self.mode = mode
        self.rng = rng
        self.next_id = 1
        self.batched_prints = 0

    def __call__(self, events: list[MarketEvent]) -> list[MarketEvent]:
        if self.mode == "trades":
            return events
        out: list[MarketEvent] = []
        run: list[Trade] = []
        for ev in [*events, None]:
            if isinstance(ev, Trade):
                run.append(ev)
                continue
            if run:
                n = len(run)
                cuts = [self.rng.randint(0, n) for _ in range(self.rng.randint(1, 4))] if self.mode == "split" else []
                out.extend(_batches(run, cuts, self.next_id))
                self.next_id += n
                self.batched_prints += n
                run = []
            if ev is not None:
                out.append(ev)
        return out


async def _drive(steps: list[tuple[Any, ...]], seed: int, deliver: _Delivery) -> ScriptedMarket:
    lat = LogNormalLatency(25, 0.8, random.Random(seed))
    m = ScriptedMarket.create(latency=lat, seed=seed, backtest={"funding_interval_hours": 0.002})
    tasks: list[asyncio.Future[Any]] = []
    links: list[str] = []
    mid = 600_000
    t = 0.0
    gaps = random.Random(seed + 1)

    def px(ticks: int) -> float:
        return float(Decimal(ticks) * TICK)

    def book(drift: int, spread: int, bsz: list[float], asz: list[float]) -> BookSnapshot:
        return m.book([(px(mid - spread - 2 * i), s) for i, s in enumerate(bsz)],
                      [(px(mid + spread + 2 * i), s) for i, s in enumerate(asz)])

    def prints(spec: list[tuple[int, float, str]]) -> list[Trade]:
        base = EPOCH0 + m.now
        return [Trade(SYM, base - 1e-3 * (len(spec) - i), px(mid + off), size, side, "")  # type: ignore[arg-type]
                for i, (off, size, side) in enumerate(spec)]

    def feed(events: list[MarketEvent]) -> None:
        m.ex.on_market(deliver(events))

    async def swallow(coro: Any) -> None:
        with contextlib.suppress(ExchangeError):
            await coro

    def send(coro: Any) -> None:
        tasks.append(asyncio.ensure_future(swallow(coro)))

    feed([book(0, 1, [0.5] * 5, [0.5] * 5), *prints([(0, 0.001, "Sell")])])
    for s in steps:
        t += gaps.choice([0.0, 0.01, 0.05, 0.5])
        await m.until(t)
        kind = s[0]
        if kind == "book":
            mid += s[1]
            feed([book(*s[1:])])
        elif kind == "burst":
            feed(prints(s[1]))
        elif kind == "mixed":  # prints, a new book, more prints: one call, book events between batches
            first = prints(s[1])
            mid += s[2]
            feed([*first, book(0, 1, [0.05] * 5, [0.05] * 5), *prints(s[3])])
        elif kind == "jump":  # a gap: new book, then prints along the way to the new mid
            path = [mid + s[1] * k // 8 for k in range(1, 9)]
            mid += s[1]
            feed([book(0, 1, [0.05] * 5, [0.05] * 5)])
            side = "Buy" if s[1] > 0 else "Sell"
            feed(prints([(p - mid, 0.01, side) for p in path]))
        elif kind == "limit":
            _, side, off, units, ro, tif = s
            link = f"o{len(links)}"
            links.append(link)
            price = Decimal(mid + (off if side == "Buy" else -off)) * TICK
            send(m.ex.place_order(OrderRequest(SYM, side, "Limit", units * STEP, link, price=price,
                                               time_in_force=tif, reduce_only=ro)))
        elif kind == "market":
            _, side, units, ro = s
            link = f"o{len(links)}"
            links.append(link)
            send(m.ex.place_order(OrderRequest(SYM, side, "Market", units * STEP, link, reduce_only=ro)))
        elif kind == "cancel" and links:
            send(m.ex.cancel_order(SYM, links[s[1] % len(links)]))
        elif kind == "amend" and links:
            send(m.ex.amend_order(SYM, links[s[1] % len(links)], price=Decimal(mid + s[2]) * TICK))
        elif kind == "tpsl":
            size, _ = m.ex.position(SYM)
            d = 1 if size >= 0 else -1
            send(m.ex.set_trading_stop(SYM, take_profit=Decimal(mid + d * s[1]) * TICK,
                                       stop_loss=Decimal(mid - d * s[2]) * TICK))
        elif kind == "lev":
            send(m.ex.set_leverage(SYM, s[1]))
        elif kind == "wait":
            t += s[1]
    await asyncio.gather(*tasks)
    await m.settle(1.0)
    return m


def _outcome(m: ScriptedMarket) -> tuple[Any, ...]:
    ex = m.ex
    return (ex.fills, ex.funding, ex.ledger.entries, ex.ledger.balance, m.received, ex.position(SYM),
            ex.protection(SYM), ex.liq_price(SYM), ex.last_price(SYM), ex.equity())


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step_st, min_size=20, max_size=90), seed=st.integers(0, 2**16),
       mode=st.sampled_from(["one", "split"]))
def test_batches_and_trade_events_give_identical_exchange_outcomes(steps: list[tuple[Any, ...]], seed: int,
                                                                  mode: str) -> None:
    ref = run_virtual(_drive(steps, seed, _Delivery("trades", random.Random(0))))
    deliver = _Delivery(mode, random.Random(seed))
    got = run_virtual(_drive(steps, seed, deliver))
    assert deliver.batched_prints > 0
    expected = _outcome(ref)
    outcome = _outcome(got)
    for name, a, b in zip(("fills", "funding", "ledger", "balance", "events", "position", "protection", "liq",
                           "last", "equity"), expected, outcome, strict=True):
        assert a == b, name


def test_the_busy_script_exercises_fills_triggers_and_liquidation_through_batches() -> None:
    """A fixed script through batches: the equivalence above is not vacuous (maker fills from batched prints, a
    TP/SL trigger, a liquidation) and still matches the Trade-event run."""
    rng = random.Random(99)
    steps: list[tuple[Any, ...]] = [("lev", 100)]
    for _ in range(250):
        r = rng.random()
        if r < 0.35:
            steps.append(("burst", [(rng.randint(-4, 4), rng.choice(SIZES), rng.choice(["Buy", "Sell"]))
                                    for _ in range(rng.randint(5, 60))]))
        elif r < 0.45:
            steps.append(("book", rng.randint(-10, 10), 1, [0.05] * 5, [0.05] * 5))
        elif r < 0.7:
            steps.append(("limit", rng.choice(["Buy", "Sell"]), rng.randint(0, 3), rng.randint(1, 10), False, "GTC"))
        elif r < 0.78:
            steps.append(("tpsl", rng.randint(3, 20), rng.randint(3, 20)))
        elif r < 0.84:
            steps.append(("jump", rng.choice([-4000, 4000])))
        elif r < 0.92:
            steps.append(("cancel", rng.randint(0, 50)))
        else:
            steps.append(("market", rng.choice(["Buy", "Sell"]), rng.randint(1, 10), False))
    ref = run_virtual(_drive(steps, 5, _Delivery("trades", random.Random(0))))
    got = run_virtual(_drive(steps, 5, _Delivery("split", random.Random(5))))
    assert _outcome(got) == _outcome(ref)
    fills = got.ex.fills
    assert sum(e.is_maker for e in fills) >= 10
    assert any(e.stop_order_type in ("TakeProfit", "StopLoss") for e in fills)
    assert any(e.exec_type == "BustTrade" for e in fills)


def _fill_then_liquidation(mode: str) -> ScriptedMarket:
    async def run() -> ScriptedMarket:
        m = ScriptedMarket.create(latency=ConstantLatency(0, 0))
        await m.at(0.0, m.book([(59995.0, 1.0)], [(60000.0, 1.0)]))
        await m.ex.set_leverage(SYM, 100)
        await m.ex.place_order(OrderRequest(SYM, "Buy", "Limit", Decimal("0.010"), "b1", price=Decimal("59990.0")))
        await m.until(1.0)
        tape = [m.trade(59995.0 - 5.0 * i, 0.02, "Sell") for i in range(200)]  # down to 59000: through liq 59690
        m.ex.on_market(_Delivery(mode, random.Random(3))(list(tape)))
        await m.settle()
        return m
    return run_virtual(run())


def test_a_fill_inside_a_batch_is_seen_by_the_rest_of_it() -> None:
    """One batch sweeps down through a resting buy (filled: a 100x long opens) and on through that position's
    liquidation price: both happen inside the batch, at the same prints as when delivered one by one."""
    ref = _fill_then_liquidation("trades")
    assert [(e.exec_type, e.side, str(e.exec_price), e.is_maker) for e in ref.ex.fills] == [
        ("Trade", "Buy", "59990.0", True), ("BustTrade", "Sell", "59390.1", False)]
    for mode in ("one", "split"):
        assert _outcome(_fill_then_liquidation(mode)) == _outcome(ref)


def _leverage_moves_liquidation(mode: str) -> ScriptedMarket:
    async def run() -> ScriptedMarket:
        m = ScriptedMarket.create(latency=ConstantLatency(0, 0))
        await m.at(0.0, m.book([(59995.0, 1.0)], [(60000.0, 1.0)]))
        await m.ex.set_leverage(SYM, 5)
        await m.ex.place_order(OrderRequest(SYM, "Buy", "Market", Decimal("0.010"), "b1"))
        await m.until(1.0)
        deliver = _Delivery(mode, random.Random(3))
        m.ex.on_market(deliver([m.trade(59900.0 - 10.0 * i, 0.02, "Sell") for i in range(5)]))  # far above liq
        await m.ex.set_leverage(SYM, 100)  # liquidation price moves up to ~59690
        await m.until(2.0)
        m.ex.on_market(deliver([m.trade(59800.0 - 50.0 * i, 0.02, "Sell") for i in range(5)]))  # 59600: through it
        await m.settle()
        return m
    return run_virtual(run())


def test_a_leverage_change_between_batches_moves_the_liquidation_the_batch_path_watches() -> None:
    """The exchange reuses a symbol's watch between batches until its state changes: a leverage change (which moves
    only the liquidation price) must be seen by the next batch, as by the same prints delivered one by one."""
    ref = _leverage_moves_liquidation("trades")
    assert [e.exec_type for e in ref.ex.fills] == ["Trade", "BustTrade"]
    for mode in ("one", "split"):
        assert _outcome(_leverage_moves_liquidation(mode)) == _outcome(ref)


# --- row selection ---------------------------------------------------------------------------------------------------


def _rows(prices: list[float], buys: list[bool], w: Watch, start: int = 0, inv_tick: float | None = 10.0) -> list[int]:
    return rows_to_check(np.array(prices), np.array(buys), start, w, inv_tick, 0.1).tolist()


def test_resting_orders_select_through_prints_and_hits_at_their_price() -> None:
    prices = [100.2, 100.1, 100.1, 100.0, 100.3, 100.4, 100.4, 100.5]
    buys = [False, True, False, False, True, True, False, True]
    # a buy resting at 100.1 (1001 ticks): the Sell print at 100.1 and the through print at 100.0, not the Buy at 100.1
    assert _rows(prices, buys, watch_of([(1, 1001), (1, 990)], 0, 0, 0, 0)) == [2, 3]
    # a sell resting at 100.4: the Buy print at 100.4 and the one above, not the Sell at 100.4
    assert _rows(prices, buys, watch_of([(-1, 1004)], 0, 0, 0, 0)) == [5, 7]
    assert _rows(prices, buys, watch_of([(-1, 1004), (1, 1001)], 0, 0, 0, 0), start=4) == [5, 7]
    assert _rows(prices, buys, watch_of([(1, 1001)], 0, 0, 0, 0), inv_tick=None) == [2, 3]  # no book: price / tick
    assert _rows(prices, buys, watch_of([], 0, 0, 0, 0)) == []


def test_position_selects_prints_at_or_beyond_its_triggers() -> None:
    prices = [100.0, 101.0, 99.0, 98.0, 102.0]
    buys = [True] * 5
    long = watch_of([], 0.5, 101.0, 99.0, 95.0)  # TP 101, SL 99, liq 95
    assert (long.up, long.down) == (101.0, 99.0)
    assert _rows(prices, buys, long) == [1, 2, 3, 4]
    assert _rows(prices, buys, watch_of([], 0.5, 0, 0, 98.5)) == [3]  # no TP/SL: liquidation only
    short = watch_of([], -0.5, 99.0, 0, 101.5)  # TP 99, no SL, liq 101.5
    assert (short.up, short.down) == (101.5, 99.0)
    assert _rows(prices, buys, short) == [2, 3, 4]
    assert watch_of([], -0.5, 0, 101.0, 101.5).up == 101.0  # SL before liquidation
    assert _rows(prices, buys, Watch(-INF, INF, INF, -INF)) == []


def test_half_tick_prints_round_half_to_even_as_the_exchange_book_does() -> None:
    """Prints exactly half a tick off the grid: the selection (and its early exit on the batch's min/max) rounds
    them as ``SimBook.ticks`` (Python ``round``) does."""
    assert (round(100.25 * 10.0), round(100.75 * 10.0)) == (1002, 1008)
    assert _rows([100.25], [False], watch_of([(1, 1002)], 0, 0, 0, 0)) == [0]  # 1002.5 → 1002: at our bid
    assert _rows([100.75], [False], watch_of([(1, 1007)], 0, 0, 0, 0)) == []  # 1007.5 → 1008: above our bid
    assert _rows([100.75], [True], watch_of([(-1, 1008)], 0, 0, 0, 0)) == [0]  # at our ask, lifted by a buyer
    assert _rows([100.25, 100.3], [True, True], watch_of([(-1, 1003)], 0, 0, 0, 0)) == [1]
