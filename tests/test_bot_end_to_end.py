"""The whole bot, assembled by ``build_bot``, against the real simulated exchange on the virtual-time loop.

A scripted market (a strongly bid book with mostly-buy flow, then a move or a quiet spell) goes through the real
pipeline: feed → queue → storage → analyzers → signal → orchestrator → executor → SimExchange → private events →
position book → trades.csv. The logged trades must reconcile with the exchange ledger to the cent, and a run is
byte-for-byte reproducible for a given seed.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.adapters.simulated import SimExchange
from bot.app import BOT_LOG, SIGNALS_CSV, TRADES_CSV, Bot, build_bot
from bot.events import BookDelta, BookSnapshot, EventBatch, Trade, TradeBatch, latest_ts
from bot.instruments import InstrumentRegistry
from replay.virtual_loop import run_virtual, virtual_clock
from settings import Settings

SYM = "BTCUSDT"
TICK = 0.1
REGISTRY = InstrumentRegistry.bundled()
# Entry thresholds (OPTIMIZABLE) lowered a little so the scripted market clears them with margin.
EASY_ENTRY: dict[str, Any] = {
    "signals": {"min_ohara_for_entry": 2, "max_momentum_for_entry": 95.0},
    "ohara": {"min_ohara_score_for_trade": 2},
}

Phase = tuple[int, int, float, float, float, str]
"""(start s, end s, best bid, size per bid level, size per ask level, flow 'buy' | 'balanced')."""


def _book(best_bid: float, bid_size: float, ask_size: float, n: int = 50) -> tuple[list, list]:
    bids = [(round(best_bid - i * TICK, 1), bid_size) for i in range(n)]
    asks = [(round(best_bid + (i + 1) * TICK, 1), ask_size) for i in range(n)]
    return bids, asks


def script(t0: float, phases: list[Phase]) -> list[EventBatch]:
    """One book batch per second (a snapshot when a phase starts, else a one-level delta) and one trade 0.5 s later.

    'buy' flow: 7 of 8 trades are buys at the ask, every 5th second a 3× larger print; 'balanced': alternating equal
    buys and sells. Phase changes re-snapshot the book (update ids stay contiguous).
    """
    out: list[EventBatch] = []
    uid = tid = 0
    for start, end, bid, bsz, asz, flow in phases:
        for s in range(start, end):
            uid += 1
            ts = t0 + s
            if s == start:
                bids, asks = _book(bid, bsz, asz)
                out.append([BookSnapshot(SYM, ts, bids, asks, uid)])
            else:
                out.append([BookDelta(SYM, ts, [(bid, bsz + 0.001 * (s % 2))], [], uid)])
            tid += 1
            if flow == "buy":
                buy = s % 8 != 0
                size = 0.6 if buy and s % 5 == 0 else 0.2
            else:
                buy = s % 2 == 0
                size = 0.2
            price = round(bid + TICK, 1) if buy else bid
            out.append([Trade(SYM, ts + 0.5, price, size, "Buy" if buy else "Sell", f"t{tid}")])
    return out


def as_trade_batches(batches: list[EventBatch]) -> list[EventBatch]:
    """The same script with each batch's ``Trade``s as one ``TradeBatch`` (int64 ids, as a synthetic feed sends)."""
    out: list[EventBatch] = []
    for batch in batches:
        trades = [e for e in batch if isinstance(e, Trade)]
        rest: EventBatch = [e for e in batch if not isinstance(e, Trade)]
        if trades:
            rest.append(TradeBatch(SYM, np.array([t.ts for t in trades]), np.array([t.price for t in trades]),
                                   np.array([t.size for t in trades]), np.array([t.side == "Buy" for t in trades]),
                                   np.array([int(t.trade_id[1:]) for t in trades], dtype=np.int64)))
        out.append(rest)
    return out


class ScriptedFeed:
    """A ``MarketFeed`` releasing scripted batches when the clock reaches their last ts, teed into extra sinks
    (the simulated exchange's ``on_market``) before the bot's queue, as a paper/replay harness does."""

    def __init__(self, clock: Any, batches: list[EventBatch], tee: list[Callable[[EventBatch], None]]) -> None:
        self.clock = clock
        self.batches = batches
        self.tee = tee
        self.released = 0

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None:
        for batch in self.batches:
            delay = latest_ts(batch[-1]) - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            for sink in self.tee:
                sink(batch)
            await queue.put(batch)
            self.released += 1


def run_scenario(log_dir: Path, start: datetime, phases: list[Phase], *, seed: int = 42,
                 until_s: float | None = None, trade_batches: bool = False,
                 **overrides: Any) -> tuple[Bot, SimExchange, ScriptedFeed]:
    t0 = start.timestamp() + 0.3  # deliberately off the 2 s grid: the first tick must align to :02

    async def main() -> tuple[Bot, SimExchange, ScriptedFeed]:
        clock = virtual_clock(t0)
        kw = {**EASY_ENTRY, **overrides}
        trading = {"trade_pairs": [SYM], **kw.pop("trading", {})}
        settings = Settings(trading=trading, backtest={"seed": seed}, **kw)
        ex = SimExchange(settings, clock, REGISTRY, seed=seed)
        bot = build_bot(settings, clock, ex, instruments=REGISTRY, log_dir=log_dir)
        batches = script(t0, phases)
        feed = ScriptedFeed(clock, as_trade_batches(batches) if trade_batches else batches, [ex.on_market])
        await bot.run(feed, until=None if until_s is None else t0 + until_s)
        return bot, ex, feed

    return run_virtual(main())


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_reconciles(rows: list[dict[str, str]], ex: SimExchange) -> None:
    """Σ net PnL (our own fills) − funding paid = ledger balance − start; Σ fees = ledger fees; to the cent."""
    closes = [r for r in rows if r["event"] == "CLOSE"]
    net = sum((Decimal(r["net_pnl"]) for r in closes), Decimal(0))
    fees = sum((Decimal(r["fees"]) for r in closes), Decimal(0))
    led = ex.ledger
    assert led.reconcile(), "exchange ledger does not re-derive from its own fills"
    assert abs(net - led.funding - (led.balance - led.start)) < Decimal("0.01"), (net, led.funding, led.balance)
    assert abs(fees - led.fees) < Decimal("0.01"), (fees, led.fees)
    gross = sum((Decimal(r["gross_pnl"]) for r in closes), Decimal(0))
    assert abs(gross - led.realised_pnl) < Decimal("0.01"), (gross, led.realised_pnl)


# strongly bid at 50 000 for 4 min (funding at 08:00 falls inside), then the market jumps 1.2 % and goes quiet
TP_START = datetime(2026, 1, 1, 7, 57, tzinfo=UTC)
TP_PHASES: list[Phase] = [(0, 240, 50_000.0, 5.0, 0.5, "buy"), (240, 400, 50_600.0, 2.0, 2.0, "balanced")]
# strongly bid for 2.5 min, then quiet at the same price; a 60–90 s lifetime must end the position
TE_START = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
TE_PHASES: list[Phase] = [(0, 150, 50_000.0, 5.0, 0.5, "buy"), (150, 330, 50_000.0, 2.0, 2.0, "balanced")]
SHORT_LIFE: dict[str, Any] = {"risk": {"base_position_lifetime_minutes": 1, "min_lifetime_sec": 60.0}}


def test_buy_signal_opens_then_take_profit_closes_and_trades_reconcile_with_ledger(tmp_path: Path) -> None:
    bot, ex, feed = run_scenario(tmp_path, TP_START, TP_PHASES)
    assert feed.released == len(script(0.0, TP_PHASES))
    assert bot.stop_reason == "feed exhausted"
    rows = read_rows(tmp_path / TRADES_CSV)
    assert [(r["event"], r["side"]) for r in rows] == [("OPEN", "LONG"), ("CLOSE", "LONG")]
    opened, closed = rows
    assert opened["position_id"] == closed["position_id"]
    assert closed["reason"] == "TP_HIT"
    assert Decimal(closed["price"]) >= Decimal(closed["tp"]) > Decimal(opened["price"])
    assert Decimal(closed["net_pnl"]) > 0
    assert opened["signal"].startswith("BUY")
    # the position was open across 08:00 UTC: funding was charged, and is kept out of the strategy PnL
    assert ex.ledger.funding > 0
    assert_reconciles(rows, ex)
    # every exchange fill belongs to the logged position, and the book is flat and empty at the end
    assert len(bot.executor.closed) == 1 and bot.executor.live_count() == 0
    assert ex.position(SYM)[0] == 0
    # the signal that opened it is in signals.csv at its tick, marked accepted
    sigs = read_rows(tmp_path / SIGNALS_CSV)
    assert len(sigs) == bot.orchestrator.ticks - bot.orchestrator.outcomes.get("book_invalid", 0)
    opening = [s for s in sigs if s["ts"] == closed["signal_ts"]]
    assert len(opening) == 1 and opening[0]["action"] == "BUY" and opening[0]["accepted"] == "YES"
    # bot.log lines carry virtual (2026) timestamps, never the machine's clock
    log = (tmp_path / BOT_LOG).read_text()
    assert "CLOSED" in log and all(line.startswith("2026-01-01T") for line in log.splitlines() if line[:2] == "20")


def test_time_exit_closes_a_position_the_market_never_resolves(tmp_path: Path) -> None:
    bot, ex, _ = run_scenario(tmp_path, TE_START, TE_PHASES, **SHORT_LIFE)
    rows = read_rows(tmp_path / TRADES_CSV)
    closes = [r for r in rows if r["event"] == "CLOSE"]
    assert len(closes) == 1 and closes[0]["reason"] == "TIME_EXIT"
    life = float(closes[0]["max_lifetime_sec"])
    assert 60.0 <= life <= 90.0
    # the monitor (5 s period) closes it within one period (+ latency) of the lifetime
    assert life <= float(closes[0]["hold_sec"]) <= life + 5.0 + 1.0
    assert Decimal(closes[0]["net_pnl"]) < 0  # flat market: spread and fees
    assert ex.ledger.funding == 0
    assert_reconciles(rows, ex)
    assert bot.orchestrator.outcomes.get("opened") == 1


def test_same_seed_gives_identical_logs_and_another_seed_does_not(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        run_scenario(tmp_path / name, TP_START, TP_PHASES, seed=seed)
        outs.append(((tmp_path / name / TRADES_CSV).read_bytes(), (tmp_path / name / SIGNALS_CSV).read_bytes()))
    assert outs[0][0].count(b"\n") == 3  # header, OPEN, CLOSE
    assert outs[0] == outs[1]
    # the seed drives the simulated latency, so fill times (and the rows) move with it
    assert outs[0][0] != outs[2][0]


def test_trades_as_batches_give_the_same_run(tmp_path: Path) -> None:
    """The whole pipeline (storage, analyzers, signals, executor, simulated exchange) sees the same prints whether
    they arrive as ``Trade`` events or as ``TradeBatch``es: byte-identical trades and signals, same ledger."""
    runs = []
    for name, batched in (("trades", False), ("batches", True)):
        _, ex, _ = run_scenario(tmp_path / name, TP_START, TP_PHASES, trade_batches=batched)
        runs.append(((tmp_path / name / TRADES_CSV).read_bytes(), (tmp_path / name / SIGNALS_CSV).read_bytes(),
                     ex.fills, ex.ledger.entries))
    assert runs[0][0].count(b"\n") == 3  # header, OPEN, CLOSE: there is something to compare
    assert runs[0] == runs[1]


def test_until_stops_the_bot_cleanly_with_the_position_left_on_its_exchange_tp_sl(tmp_path: Path) -> None:
    bot, ex, feed = run_scenario(tmp_path, TP_START, TP_PHASES, until_s=120.0)
    assert bot.stop_reason == "until reached"
    assert feed.released < len(script(0.0, TP_PHASES))
    rows = read_rows(tmp_path / TRADES_CSV)
    assert [r["event"] for r in rows] == ["OPEN"]
    # stop() leaves OPEN positions on their exchange-side protection (§8.8)
    size, _ = ex.position(SYM)
    assert size > 0
    tp, sl = ex.protection(SYM)
    assert tp == Decimal(rows[0]["tp"]) and sl == Decimal(rows[0]["sl"])
    assert bot.orchestrator.t0 is not None and bot.orchestrator.t0 % 2.0 == 0.0


@pytest.mark.parametrize("interval", [60.0])
def test_strict_mode_cadence_is_settings_only_ticks_on_candle_opens(tmp_path: Path, interval: float) -> None:
    """decision_interval_sec = 60 puts every decision on a minute (candle) open: no code path differs."""
    bot, _, _ = run_scenario(tmp_path, TP_START, TP_PHASES, trading={"decision_interval_sec": interval})
    sigs = read_rows(tmp_path / SIGNALS_CSV)
    assert sigs, "no evaluation ran"
    assert all(s["ts"].endswith(":00.000Z") for s in sigs), [s["ts"] for s in sigs[:5]]
    assert bot.orchestrator.ticks == 6  # 07:58 .. 08:03 inside the 400 s script starting 07:57:00.3


# ------------------------------------------------------------------------------------------------ lifecycle
class FailingFeed(ScriptedFeed):
    """Releases ``n`` batches, then breaks like a feed with a decoding bug."""

    def __init__(self, clock: Any, batches: list[EventBatch], n: int) -> None:
        super().__init__(clock, batches[:n], [])

    async def run(self, queue: asyncio.Queue[EventBatch]) -> None:
        await super().run(queue)
        raise RuntimeError("feed broke")


def _bot(clock: Any, log_dir: Path | None, sinks: list[Callable[[EventBatch], None]] = (), *,
         tee_exchange: bool = False) -> tuple[Bot, SimExchange]:
    """A one-symbol bot; ``tee_exchange`` wires the paper-trading way: the consumer tees batches into the exchange."""
    settings = Settings(trading={"trade_pairs": [SYM]})
    ex = SimExchange(settings, clock, REGISTRY, seed=1)
    sinks = [*sinks, ex.on_market] if tee_exchange else list(sinks)
    return build_bot(settings, clock, ex, instruments=REGISTRY, log_dir=log_dir, sinks=sinks), ex


def test_a_failing_feed_stops_the_bot_cleanly_and_re_raises(tmp_path: Path) -> None:
    t0 = TP_START.timestamp() + 0.3

    async def main() -> Bot:
        clock = virtual_clock(t0)
        bot, _ = _bot(clock, tmp_path)
        with pytest.raises(RuntimeError, match="feed broke"):
            await bot.run(FailingFeed(clock, script(t0, TP_PHASES), 40))
        return bot

    bot = run_virtual(main())
    assert bot.stop_reason == "market-feed failed"
    assert bot.consumer.applied == 40  # everything released before the failure was applied
    assert bot.signal_log.rows == bot.orchestrator.ticks > 0  # the log was flushed and closed
    assert (tmp_path / SIGNALS_CSV).read_text().count("\n") == bot.signal_log.rows + 1
    assert "bot stopped (market-feed failed)" in (tmp_path / BOT_LOG).read_text()


def test_stop_ends_run_and_extra_sinks_see_every_batch_after_storage(tmp_path: Path) -> None:
    t0 = TP_START.timestamp() + 0.3
    seen: list[tuple[int, int]] = []

    async def main() -> tuple[Bot, SimExchange]:
        clock = virtual_clock(t0)
        holder: list[Bot] = []

        def sink(batch: EventBatch) -> None:  # storage already holds the batch when a sink gets it
            seen.append((len(batch), holder[0].storage.last_seq(SYM)))

        bot, ex = _bot(clock, None, [sink], tee_exchange=True)
        holder.append(bot)

        async def stopper() -> None:
            await asyncio.sleep(29.75)
            await bot.stop()

        task = asyncio.create_task(stopper())
        await bot.run(ScriptedFeed(clock, script(t0, TP_PHASES), []))  # the feed itself tees nothing
        await task
        assert clock.now() - t0 == pytest.approx(29.75, abs=0.1)
        return bot, ex

    bot, ex = run_virtual(main())
    assert bot.stop_reason == "stop requested"
    # one book batch (at s) and one trade batch (at s + 0.5) per second: 60 batches in 29.75 s, each trade batch
    # already in storage when the sinks see it
    assert len(seen) == bot.consumer.applied == 60
    assert [seq for _, seq in seen[1::2]] == list(range(1, 31))
    # the exchange got the same market through the consumer (paper trading wiring)
    assert ex.last_price(SYM) == bot.storage.last_price(SYM) is not None
    assert bot.executor.refusals == [] and bot.orchestrator.outcomes.get("opened") == 1
