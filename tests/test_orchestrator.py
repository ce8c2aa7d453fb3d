"""Orchestrator (STRATEGY.md §10): cadence, batching, overruns, and the maybe_open / maybe_close gates.

Everything runs on the virtual-time loop with the real storage, analyzers, signal generator, risk manager, executor and
simulated exchange. Gate tests hand the orchestrator real ``Signal`` objects whose decision fields are set by the test
(the gates are the unit under test; the signal pipeline itself is exercised end to end elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bot import orchestrator as O
from bot.adapters.simulated import ConstantLatency, SimExchange
from bot.app import SIGNALS_CSV, Bot, build_bot
from bot.events import BookDelta, BookSnapshot, EventBatch, Trade, latest_ts
from bot.execution.positions import PositionState
from bot.instruments import InstrumentRegistry
from bot.orchestrator import Orchestrator, batches_of, first_tick_time
from replay.virtual_loop import run_virtual, virtual_clock
from settings import Settings

REGISTRY = InstrumentRegistry.bundled()
T0 = 1_767_261_600.3  # 2026-01-01T10:00:00.3Z: off the decision grid on purpose
PAIRS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "TRXUSDT", "AAVEUSDT",
         "STRKUSDT"]


def book_batch(sym: str, ts: float, uid: int) -> EventBatch:
    """A valid, tick-aligned 20-level book around 10 000 ticks (snapshot first, then a one-level delta)."""
    inst = REGISTRY[sym]
    tick = inst.tick
    bid = round(10_000 * tick, inst.price_decimals)
    if uid == 1:
        bids = [(round(bid - i * tick, inst.price_decimals), 50.0) for i in range(20)]
        asks = [(round(bid + (i + 1) * tick, inst.price_decimals), 50.0) for i in range(20)]
        return [BookSnapshot(sym, ts, bids, asks, uid)]
    return [BookDelta(sym, ts, [(bid, 50.0 + 0.001 * (uid % 2))], [], uid)]


class BookFeed:
    """A ``MarketFeed``: fresh books for ``symbols`` every second (plus optional extra batches), teed into sinks."""

    def __init__(self, clock: Any, symbols: list[str], seconds: int, tee: list[Callable[[EventBatch], None]],
                 extra: list[EventBatch] = ()) -> None:
        self.clock = clock
        self.tee = tee
        batches = [book_batch(sym, T0 + s, s + 1) for s in range(seconds) for sym in symbols]
        self.batches = sorted([*batches, *extra], key=lambda b: latest_ts(b[-1]))

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None:
        for batch in self.batches:
            delay = latest_ts(batch[-1]) - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            for sink in self.tee:
                sink(batch)
            await queue.put(batch)


def make_settings(**overrides: Any) -> Settings:
    trading = {"trade_pairs": PAIRS, **overrides.pop("trading", {})}
    return Settings(trading=trading, **overrides)


def signal_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="") as f:
        return [(r["ts"], r["symbol"]) for r in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------------ pure helpers
def test_batches_split_trade_pairs_in_order() -> None:
    assert batches_of(PAIRS, 3) == [("BTCUSDT", "ETHUSDT", "BNBUSDT"), ("SOLUSDT", "ADAUSDT", "DOGEUSDT"),
                                    ("AVAXUSDT", "TRXUSDT", "AAVEUSDT"), ("STRKUSDT",)]
    assert batches_of(["A"], 3) == [("A",)]
    with pytest.raises(ValueError):
        batches_of(PAIRS, 0)
    with pytest.raises(ValueError):
        batches_of([], 3)


def test_first_tick_is_the_next_multiple_of_the_interval_in_epoch_time() -> None:
    assert first_tick_time(T0, 2.0) == 1_767_261_602.0
    assert first_tick_time(1_767_261_602.0, 2.0) == 1_767_261_602.0  # already on the grid: now
    assert first_tick_time(T0, 60.0) == 1_767_261_660.0  # a 60 s interval lands on the next candle open
    with pytest.raises(ValueError):
        first_tick_time(T0, 0.0)


# ------------------------------------------------------------------------------------------------ cadence
def test_ticks_every_interval_on_the_grid_rotating_batches_symbols_in_order(tmp_path: Path) -> None:
    async def main() -> Bot:
        clock = virtual_clock(T0)
        s = make_settings()
        ex = SimExchange(s, clock, REGISTRY, seed=1)
        bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=tmp_path)
        bot.orchestrator.tick_times = []
        await bot.run(BookFeed(clock, PAIRS, 30, [ex.on_market]), until=T0 + 17.0)
        return bot

    bot = run_virtual(main())
    o = bot.orchestrator
    t0 = 1_767_261_602.0
    assert o.t0 == t0
    assert o.tick_times == [t0 + 2 * k for k in range(8)]  # ..., t0+14 <= until = t0+15.3 < t0+16
    assert bot.stop_reason == "until reached"
    assert (o.overruns, o.missed_ticks) == (0, 0)
    rows = signal_rows(tmp_path / SIGNALS_CSV)
    expected = []
    for k, t in enumerate(o.tick_times):
        expected += [(t, sym) for sym in batches_of(PAIRS, 3)[k % 4]]
    stamp = {t: f"2026-01-01T10:00:{t - 1_767_261_600.0:06.3f}Z" for t in o.tick_times}
    assert rows == [(stamp[t], sym) for t, sym in expected]


def test_overrun_runs_the_next_tick_at_once_and_skips_missed_grid_ticks(tmp_path: Path) -> None:
    """A tick that takes 5 s (here: the feed catch-up it awaits) overruns two 2 s grid points."""
    calls = 0

    async def main() -> Orchestrator:
        nonlocal calls
        clock = virtual_clock(T0)
        s = make_settings(trading={"trade_pairs": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "symbol_batch_size": 1})
        ex = SimExchange(s, clock, REGISTRY, seed=1)
        bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=tmp_path)

        async def slow_sync() -> None:
            nonlocal calls
            calls += 1
            await bot.consumer.caught_up()
            if calls == 3:
                await asyncio.sleep(5.0)

        orch = Orchestrator(s, clock, bot.storage, bot.volume, bot.imbalance, bot.signals, bot.executor,
                            signal_log=bot.signal_log, sync=slow_sync)
        orch.tick_times = []
        consumer = asyncio.create_task(bot.consumer.run())
        feed = asyncio.create_task(BookFeed(clock, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], 30, []).run(bot.queue))
        await orch.run(until=T0 + 15.0)
        for t in (consumer, feed):
            t.cancel()
        bot.signal_log.close()
        return orch

    orch = run_virtual(main())
    t0 = 1_767_261_602.0
    # t0+4 ends at t0+9: t0+6 and t0+8 are missed, a late tick runs at t0+9, then the grid resumes at t0+10
    assert orch.tick_times == pytest.approx([t0, t0 + 2, t0 + 4, t0 + 9, t0 + 10, t0 + 12], abs=1e-3)
    assert (orch.overruns, orch.missed_ticks) == (1, 2)
    rows = signal_rows(tmp_path / SIGNALS_CSV)
    # rotation advances once per tick actually run: no batch is starved by the overrun
    assert [sym for _, sym in rows] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_a_tick_sees_exactly_the_events_with_ts_up_to_its_time(tmp_path: Path) -> None:
    """Trades stamped exactly on a tick time are in storage at that tick; trades 1 ms later are not."""
    seen: list[tuple[float, float | None]] = []

    class Probe:
        def __init__(self, bot: Bot) -> None:
            self.bot = bot

        def append(self, sig: Any) -> None:
            seen.append((sig.ts, self.bot.storage.last_price(sig.symbol)))

    async def main() -> None:
        clock = virtual_clock(T0)
        s = make_settings(trading={"trade_pairs": ["BTCUSDT"]})
        ex = SimExchange(s, clock, REGISTRY, seed=1)
        bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=None)
        bot.orchestrator.signal_log = Probe(bot)
        t0 = 1_767_261_602.0
        trades = []
        for k in range(6):
            trades.append([Trade("BTCUSDT", t0 + 2 * k, 1000.0 + k, 0.01, "Buy", f"on{k}")])
            trades.append([Trade("BTCUSDT", t0 + 2 * k + 0.001, 2000.0 + k, 0.01, "Buy", f"after{k}")])
        await bot.run(BookFeed(clock, ["BTCUSDT"], 14, [ex.on_market], extra=trades), until=t0 + 10.5)

    run_virtual(main())
    assert [p for _, p in seen] == [1000.0 + k for k in range(6)]


# ------------------------------------------------------------------------------------------------ gate harness
class Harness:
    def __init__(self, bot: Bot, ex: SimExchange, clock: Any) -> None:
        self.bot = bot
        self.ex = ex
        self.clock = clock
        self.orch = bot.orchestrator

    def signal(self, sym: str, action: str, strength: int, *, raw_action: str | None = None,
               raw_strength: int | None = None, ohara: int = 6) -> Any:
        """A real Signal with the decision fields set (as the generator would after its own gates)."""
        base = self.bot.signals.insufficient(sym, self.clock.now())
        raw = raw_action or action
        return msgspec.structs.replace(
            base, action=action, strength=strength, raw_action=raw,
            raw_strength=strength if raw_strength is None else raw_strength,
            dir={"BUY": 1, "SELL": -1}.get(raw, 0), ohara_score=ohara,
            reason="confirmed" if action != "HOLD" else "cooldown", cooldown_active=action == "HOLD",
            range_pct=0.1, atr_pct=0.05, std_pct=0.1)

    async def until(self, cond: Callable[[], bool], limit: float = 120.0) -> None:
        end = self.clock.now() + limit
        while not cond():
            assert self.clock.now() < end, "condition not reached in virtual time"
            await asyncio.sleep(0.25)

    async def open_long(self, sym: str) -> Any:
        assert self.orch.maybe_open(sym, self.signal(sym, "BUY", 4), self.clock.now()) == O.OPENED
        await self.until(lambda: (r := self.bot.executor.record(sym)) is not None and r.state is PositionState.OPEN)
        return self.bot.executor.record(sym)


@contextlib.asynccontextmanager
async def harness(symbols: list[str], books: list[str] | None = None, **overrides: Any) -> AsyncIterator[Harness]:
    """Executor started on a SimExchange; books for ``books`` refreshed every second in storage and exchange."""
    clock = virtual_clock(T0)
    s = make_settings(**overrides)
    ex = SimExchange(s, clock, REGISTRY, seed=1, latency=ConstantLatency(20.0, 20.0))
    bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=None, symbols=symbols)

    async def refresh() -> None:
        uid = 0
        while True:
            uid += 1
            for sym in books if books is not None else symbols:
                batch = book_batch(sym, clock.now(), uid)
                bot.storage.apply_batch(batch)
                ex.on_market(batch)
            await asyncio.sleep(1.0)

    task = asyncio.create_task(refresh())
    await asyncio.sleep(0)
    await bot.executor.start()
    try:
        yield Harness(bot, ex, clock)
    finally:
        await bot.executor.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def virtual(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body on the virtual-time loop."""

    def wrapper(*args: Any, **kw: Any) -> None:
        run_virtual(fn(*args, **kw))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# ------------------------------------------------------------------------------------------------ maybe_open
@virtual
async def test_maybe_open_applies_the_five_checks_in_order() -> None:
    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
    async with harness(syms, books=["BTCUSDT", "ETHUSDT", "SOLUSDT"], risk={"max_open_positions": 2}) as h:
        o, ex = h.orch, h.bot.executor
        now = h.clock.now()
        assert o.maybe_open("ETHUSDT", h.signal("ETHUSDT", "BUY", 3, ohara=4), now) == O.OPENED  # 1 of 2 slots
        assert o.last_open_attempt["ETHUSDT"] == now
        # an attempt the executor refuses (DOGE has no book) still counts as an attempt: the gap starts
        assert o.maybe_open("DOGEUSDT", h.signal("DOGEUSDT", "BUY", 5), now) == O.OPEN_REFUSED
        assert o.last_open_attempt["DOGEUSDT"] == now and ex.record("DOGEUSDT") is None
        assert o.maybe_open("DOGEUSDT", h.signal("DOGEUSDT", "BUY", 5), now + 14.0) == O.WAIT_OPEN_GAP

        sym = "BTCUSDT"
        hold = h.signal(sym, "HOLD", 0, ohara=0)
        o.last_open_attempt[sym] = now - 14.9
        o.last_close[sym] = now - 9.9
        assert o.maybe_open(sym, hold, now) == O.WAIT_OPEN_GAP          # (1) though 2-4 fail too
        o.last_open_attempt[sym] = now - 15.0
        assert o.maybe_open(sym, hold, now) == O.WAIT_REOPEN            # (2) though 3-4 fail too
        o.last_close[sym] = now - 10.0
        assert o.maybe_open(sym, hold, now) == O.NOT_ACTIONABLE         # (3) HOLD
        assert o.maybe_open(sym, h.signal(sym, "BUY", 2, ohara=0), now) == O.NOT_ACTIONABLE  # (3) too weak
        assert o.maybe_open(sym, h.signal(sym, "SELL", 3, ohara=3), now) == O.OHARA_LOW     # (4)
        assert o.last_open_attempt[sym] == now - 15.0  # no attempt was made: the gap clock is untouched
        assert ex.record(sym) is None
        assert o.maybe_open(sym, h.signal(sym, "SELL", 3, ohara=4), now) == O.OPENED
        rec = ex.record(sym)
        assert rec is not None and rec.side == -1 and rec.state is PositionState.OPENING

        assert o.maybe_open("SOLUSDT", h.signal("SOLUSDT", "BUY", 5), now) == O.NO_SLOT   # (5) 2 of 2 used
        assert "SOLUSDT" not in o.last_open_attempt and ex.record("SOLUSDT") is None



@virtual
async def test_process_symbol_skips_stale_books_and_routes_by_position_state() -> None:
    async with harness(["BTCUSDT", "ETHUSDT"], books=["BTCUSDT"]) as h:
        o = h.orch
        # ETH never had a book: skipped, nothing evaluated or logged
        assert o.process_symbol("ETHUSDT", h.clock.now()) is None
        assert o.outcomes[O.SKIP_BOOK] == 1 and "ETHUSDT" not in o.last_signal
        # BTC has a live book but no trades: evaluated (HOLD insufficient_data), then maybe_open refuses it
        sig = o.process_symbol("BTCUSDT", h.clock.now())
        assert sig is not None and sig.action == "HOLD" and sig.reason == "insufficient_data"
        assert o.outcomes[O.NOT_ACTIONABLE] == 1
        rec = await h.open_long("BTCUSDT")
        before = dict(o.outcomes)
        o.process_symbol("BTCUSDT", h.clock.now())  # OPEN → maybe_close (too young), never maybe_open
        assert o.outcomes[O.HOLD_TOO_SHORT] == before.get(O.HOLD_TOO_SHORT, 0) + 1
        assert o.outcomes[O.NOT_ACTIONABLE] == before[O.NOT_ACTIONABLE]
        assert rec.state is PositionState.OPEN


# ------------------------------------------------------------------------------------------------ maybe_close
@virtual
async def test_maybe_close_min_hold_strength_and_pre_cooldown_opposite() -> None:
    async with harness(["BTCUSDT"]) as h:
        o, ex = h.orch, h.bot.executor
        rec = await h.open_long("BTCUSDT")
        strong_sell = h.signal("BTCUSDT", "SELL", 5)
        assert o.maybe_close("BTCUSDT", strong_sell, rec, rec.opened_at + 29.9) == O.HOLD_TOO_SHORT
        await h.until(lambda: h.clock.now() - rec.opened_at >= 30.0)
        now = h.clock.now()
        assert o.maybe_close("BTCUSDT", h.signal("BTCUSDT", "SELL", 4), rec, now) == O.NO_EXIT   # below 5
        assert o.maybe_close("BTCUSDT", h.signal("BTCUSDT", "BUY", 5), rec, now) == O.NO_EXIT    # same side
        assert rec.state is PositionState.OPEN
        # suppressed by the cooldown (action HOLD) but raw SELL 5: the pre-cooldown values close it
        muted = h.signal("BTCUSDT", "HOLD", 0, raw_action="SELL", raw_strength=5)
        assert o.maybe_close("BTCUSDT", muted, rec, now) == O.OPPOSITE_SIGNAL
        assert rec.state is PositionState.CLOSING and rec.close_intent == "OPPOSITE_SIGNAL"
        assert o.maybe_close("BTCUSDT", strong_sell, rec, now) == O.HAS_INTENT
        await h.until(lambda: ex.record("BTCUSDT") is None)
        assert ex.closed[-1].close_reason == "OPPOSITE_SIGNAL"
        # the executor's on_closed callback started the reopen cooldown
        closed_at = o.last_close["BTCUSDT"]
        assert now < closed_at <= h.clock.now()
        assert o.maybe_open("BTCUSDT", h.signal("BTCUSDT", "BUY", 5), closed_at + 9.0) == O.WAIT_REOPEN


@pytest.mark.parametrize(
    ("action", "strength", "ohara", "expected"),
    [
        ("SELL", 5, 6, O.REVERSE),            # opposite, actionable, checks 3-4 pass for the new side
        ("HOLD", 0, 6, O.OPPOSITE_SIGNAL),    # cooldown-suppressed: not actionable, so no re-entry
        ("SELL", 5, 1, O.OPPOSITE_SIGNAL),    # O'Hara score below min_ohara_score_for_trade
    ],
)
def test_reverse_only_when_the_re_entry_would_pass_the_entry_gates(action: str, strength: int, ohara: int,
                                                                  expected: str) -> None:
    async def body() -> None:
        async with harness(["BTCUSDT"], trading={"reverse_on_opposite": True}) as h:
            o, ex = h.orch, h.bot.executor
            rec = await h.open_long("BTCUSDT")
            await h.until(lambda: h.clock.now() - rec.opened_at >= 30.0)
            attempt = o.last_open_attempt["BTCUSDT"]
            sig = h.signal("BTCUSDT", action, strength, raw_action="SELL", raw_strength=5, ohara=ohara)
            assert o.maybe_close("BTCUSDT", sig, rec, h.clock.now()) == expected
            assert rec.close_intent == expected
            await h.until(lambda: rec.state is PositionState.CLOSED)
            assert ex.closed[-1] is rec and rec.close_reason == expected
            nxt = ex.record("BTCUSDT")
            if expected == O.REVERSE:
                # re-entered SHORT at once, bypassing min_time_between_trades and reopen_cooldown
                assert nxt is not None and nxt.side == -1 and nxt is not rec
                assert o.last_open_attempt["BTCUSDT"] == attempt
            else:
                assert nxt is None

    run_virtual(body())


# ------------------------------------------------------------------------------------------- act on closed candles
def test_acting_on_closed_candles_evaluates_every_tick_and_acts_only_at_closes(tmp_path: Path) -> None:
    """Evaluations (and signals.csv rows) keep the live tick cadence; each signal acts once, at the first candle
    close at or after its own time, with now = that close."""

    async def main() -> Bot:
        clock = virtual_clock(T0)
        s = make_settings(trading={"act_on_closed_candles": True, "candle_sec": 10.0})
        ex = SimExchange(s, clock, REGISTRY, seed=1)
        bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=tmp_path)
        bot.orchestrator.tick_times = []
        bot.orchestrator.decisions = []
        await bot.run(BookFeed(clock, PAIRS, 40, [ex.on_market]), until=T0 + 35.0)
        return bot

    bot = run_virtual(main())
    o = bot.orchestrator
    t0 = 1_767_261_602.0
    assert o.tick_times == [t0 + 2 * k for k in range(17)]  # the live cadence, unchanged
    rows = signal_rows(tmp_path / SIGNALS_CSV)
    assert len(rows) == sum(len(batches_of(PAIRS, 3)[k % 4]) for k in range(17))
    evaluated = [(t, sym) for k, t in enumerate(o.tick_times) for sym in batches_of(PAIRS, 3)[k % 4]]
    # every signal of a closed candle acted, once, in evaluation order; the open candle's signals still wait
    assert [(d.signal_ts, d.symbol) for d in o.decisions] == [e for e in evaluated if e[0] <= t0 + 28.0]
    assert [(s.ts, s.symbol) for s in o.pending] == [e for e in evaluated if e[0] > t0 + 28.0]
    for d in o.decisions:
        assert d.ts % 10.0 == 0 and d.ts - 10.0 < d.signal_ts <= d.ts, d
    assert {d.ts for d in o.decisions} == {t0 + 8.0, t0 + 18.0, t0 + 28.0}


def test_candle_must_be_a_whole_number_of_ticks() -> None:
    with pytest.raises(ValueError, match="candle_sec"):
        make_settings(trading={"act_on_closed_candles": True, "decision_interval_sec": 7.0})
    make_settings(trading={"act_on_closed_candles": False, "decision_interval_sec": 7.0})  # off: no constraint


@virtual
async def test_deferred_signals_of_two_symbols_share_max_open_positions() -> None:
    """Cap 1, two symbols signalling in the same candle: at its close the first in evaluation order opens, the other
    finds no free slot."""
    async with harness(["BTCUSDT", "ETHUSDT"], risk={"max_open_positions": 1},
                       trading={"act_on_closed_candles": True}) as h:
        o = h.orch
        o.decisions = []
        close = o.last_close_time(h.clock.now()) + 60.0
        for sym, dt in (("ETHUSDT", 10.0), ("BTCUSDT", 18.0)):
            o.pending.append(msgspec.structs.replace(h.signal(sym, "BUY", 4), ts=close - 60.0 + dt))
        assert o.act_on_closed_candles(close - 1.0) == 0  # the candle is still in progress: nothing acts
        assert o.act_on_closed_candles(close) == 2
        assert [(d.symbol, d.outcome) for d in o.decisions] == [("ETHUSDT", O.OPENED), ("BTCUSDT", O.NO_SLOT)]
        assert h.bot.executor.record("ETHUSDT") is not None and h.bot.executor.record("BTCUSDT") is None


def test_ticks_without_work_account_exactly_like_full_ticks(tmp_path: Path) -> None:
    """Only BTC/ETH/BNB have books: three ticks in four have nothing to do and run in their timer callback (or, when
    the feed says it serves only those three, pass without a timer at all). The cadence, the rotation, the signals
    and every counter equal a run where each tick wakes the loop task."""

    def run(mode: str, log: Path, stop_at: float | None = None) -> Orchestrator:
        async def main() -> Orchestrator:
            clock = virtual_clock(T0)
            s = make_settings(trading={"act_on_closed_candles": True, "candle_sec": 10.0})
            ex = SimExchange(s, clock, REGISTRY, seed=1)
            bot = build_bot(s, clock, ex, instruments=REGISTRY, log_dir=log)
            if mode == "full":
                bot.orchestrator._synced = None  # every tick takes the full path
            bot.orchestrator.tick_times = []
            bot.orchestrator.decisions = []
            feed = BookFeed(clock, PAIRS[:3], 45, [ex.on_market])
            if mode == "dark":
                feed.symbols = frozenset(PAIRS[:3])  # type: ignore[attr-defined]
            if stop_at is not None:
                asyncio.get_running_loop().call_later(stop_at - clock.now(), bot.orchestrator.stop)
            await bot.run(feed, until=T0 + 41.0)
            assert (bot.orchestrator._dark is not None) == (mode == "dark")
            return bot.orchestrator

        return run_virtual(main())

    fast, full = run("fast", tmp_path / "fast"), run("full", tmp_path / "full")
    dark = run("dark", tmp_path / "dark")
    assert fast.tick_times == full.tick_times == dark.tick_times == [1_767_261_602.0 + 2 * k for k in range(20)]
    assert (fast.ticks, fast.outcomes, fast.decisions) == (full.ticks, full.outcomes, full.decisions)
    assert (dark.ticks, dark.outcomes, dark.decisions, dark.idle_ticks) == (
        fast.ticks, fast.outcomes, fast.decisions, fast.idle_ticks)
    assert (tmp_path / "dark" / SIGNALS_CSV).read_bytes() == (tmp_path / "full" / SIGNALS_CSV).read_bytes()
    # a stop in the middle of a dark stretch accounts the dark ticks before it, and none after
    stop_at = 1_767_261_602.0 + 2 * 9 + 1.0  # between the dark ticks of grid 9 and 10
    fast_s, dark_s = run("fast", tmp_path / "fs", stop_at), run("dark", tmp_path / "ds", stop_at)
    assert dark_s.tick_times == fast_s.tick_times == fast.tick_times[:10] and dark_s.ticks == fast_s.ticks
    assert dark_s.outcomes == fast_s.outcomes and dark_s.idle_ticks == fast_s.idle_ticks
    assert fast.outcomes[O.SKIP_BOOK] == 15 + 15 + 5  # batches 2-4, five ticks each
    # 15 ticks have no book in their batch; the 3 of them on a candle close still act on deferred signals
    assert (fast.idle_ticks, full.idle_ticks) == (12, 0)  # only the fast run took the callback path
    assert (tmp_path / "fast" / SIGNALS_CSV).read_bytes() == (tmp_path / "full" / SIGNALS_CSV).read_bytes()
    assert {sym for _, sym in signal_rows(tmp_path / "fast" / SIGNALS_CSV)} == set(PAIRS[:3])
