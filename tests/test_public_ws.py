"""The live public collector against a real local WebSocket server replaying the real Bybit capture, with faults.

No mocks and no internet: :mod:`ws_capture_server` speaks Bybit's public protocol on 127.0.0.1. Every book the
storage holds is checked after every applied batch: never crossed and, while valid, equal to a book rebuilt
independently from the captured frames at the same update id. At the end each book equals the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable

from ws_capture_server import DEPTH, CaptureServer, Faults, Frame, RefBook, book_levels, digest_of, load_frames

from bot.adapters.bybit.backoff import backoff_delays
from bot.adapters.bybit.public_session import MAX_ARGS_PER_REQUEST, PublicSession
from bot.adapters.bybit.public_ws import BybitPublicFeed
from bot.clock import WallClock
from bot.events import BookDelta, BookSnapshot, EventBatch
from bot.feed_consumer import FeedConsumer, FeedQueue
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
FRAMES: list[Frame] = load_frames()


def _truth() -> dict[tuple[str, int], int]:
    """(symbol, u) → the book after that update, rebuilt from the captured frames with no bot code."""
    books: dict[str, RefBook] = {}
    out: dict[tuple[str, int], int] = {}
    for f in FRAMES:
        if f.kind == "trade":
            continue
        b = books.setdefault(f.symbol, RefBook(DEPTH))
        b.apply(f.msg)
        out[(f.symbol, b.u)] = b.digest()
    return out


TRUTH = _truth()


def _settings(**ws: float) -> Settings:
    base: dict[str, float] = {"subscription_depth": DEPTH, "ping_interval_sec": 0.2, "pong_timeout_sec": 1.0,
                              "reconnect_delay_seconds": 0.05, "reconnect_max_delay_sec": 0.2, "book_stale_sec": 5.0}
    base.update(ws)
    return Settings(websocket=base)


class BookChecker:
    """A feed-consumer sink: after each applied batch, the touched books are uncrossed and, if valid, true."""

    def __init__(self, storage: DataStorage) -> None:
        self.storage = storage
        self.checked = 0
        self.crossed = 0
        self.mismatches: list[tuple[str, int]] = []

    def __call__(self, batch: EventBatch) -> None:
        st = self.storage
        for ev in batch:
            if not isinstance(ev, BookSnapshot | BookDelta):
                continue
            top = st.best(ev.symbol)
            if top is None:
                continue
            if top.best_bid >= top.best_ask:
                self.crossed += 1
            if top.valid:
                self.checked += 1
                got = digest_of(st.book_top(ev.symbol, "bid", 10_000), st.book_top(ev.symbol, "ask", 10_000))
                if TRUTH.get((ev.symbol, top.update_id)) != got:
                    self.mismatches.append((ev.symbol, top.update_id))


class Rig:
    """Collector + feed consumer + storage on the test's loop, pointed at ``srv``."""

    def __init__(self, srv: CaptureServer, settings: Settings, symbols: tuple[str, ...] = SYMBOLS) -> None:
        clock = WallClock()
        self.srv = srv
        self.storage = DataStorage(settings, clock, symbols)
        self.checker = BookChecker(self.storage)
        self.queue = FeedQueue()
        self.consumer = FeedConsumer(self.queue, self.storage, [self.checker])
        self.feed = BybitPublicFeed(settings, clock, symbols, url=srv.url, resync_source=self.storage.resync_requested,
                                    on_books_lost=self.storage.invalidate, rng=random.Random(7))
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Rig:
        self._tasks = [asyncio.create_task(self.consumer.run()), asyncio.create_task(self.feed.run(self.queue))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def books_match_server(self) -> bool:
        for sym in SYMBOLS:
            top = self.storage.best(sym)
            ref = self.srv.books.get(sym)
            if top is None or ref is None or not top.valid or top.update_id != ref.u:
                return False
            got = (book_levels(self.storage.book_top(sym, "bid", 10_000)),
                   book_levels(self.storage.book_top(sym, "ask", 10_000)))
            if got != ref.levels():
                return False
        return True

    async def finish(self, timeout: float = 20.0) -> None:
        """Wait for the server to pass the whole capture and the books to converge to the server's."""
        await wait_for(self.srv.done.wait, timeout)
        await until(self.books_match_server, 5.0)
        assert self.checker.crossed == 0
        assert self.checker.mismatches == []
        assert self.checker.checked > 1000


async def wait_for(fn: Callable[[], Awaitable[object]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        await fn()


async def until(cond: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


def _delta(sym: str, nth: int) -> int:
    """Index in FRAMES of ``sym``'s ``nth`` (0-based) book delta."""
    return [i for i, f in enumerate(FRAMES) if f.symbol == sym and f.kind == "delta"][nth]


# ---------------------------------------------------------------------------------------------------------- tests
async def test_clean_stream_books_equal_the_rebuilt_books() -> None:
    async with CaptureServer(frames=list(FRAMES)) as srv, Rig(srv, _settings()) as rig:
        await rig.finish()
        st = rig.feed.stats
        assert st.connects == 1 and not st.resyncs and st.counters["gaps"] == 0
        assert srv.count("snapshot") == 0  # the capture's own snapshots were the first book frames
        assert st.latency.count > 1000
        subs = [e[1] for e in srv.log if e[0] == "subscribe"]
        assert subs == [tuple(rig.feed.session.topics())]


async def test_subscriptions_are_batched_within_bybits_limit() -> None:
    syms = tuple(s for s in InstrumentRegistry.bundled() if s.endswith("USDT"))[:13]
    topics = PublicSession(syms, DEPTH, stale_sec=10).topics()
    assert len(topics) == 26
    async with CaptureServer(frames=list(FRAMES)) as srv, Rig(srv, _settings(), syms) as rig:
        await until(lambda: srv.count("subscribe") >= 3, 5.0)
        await asyncio.sleep(0.1)
        sizes = [len(e[1]) for e in srv.log if e[0] == "subscribe"]
        assert sizes == [10, 10, 6]
        assert all(s <= MAX_ARGS_PER_REQUEST for s in rig.feed.stats.subscribe_sizes)
        assert {t for e in srv.log if e[0] == "subscribe" for t in e[1]} == set(topics)
        assert rig.feed.stats.counters["subscribe_errors"] == 0


async def test_gap_duplicate_out_of_order_malformed_and_disconnect() -> None:
    gap, dup, ooo, bad, drop = (_delta("BTCUSDT", 100), _delta("ETHUSDT", 120), _delta("SOLUSDT", 150),
                                _delta("DOGEUSDT", 60), _delta("SOLUSDT", 300))
    faults = Faults(gap_at={gap}, duplicate_at={dup}, resend_old_at={ooo: ooo - 5}, malformed_at={bad},
                    disconnect_at={drop})
    async with CaptureServer(frames=list(FRAMES), faults=faults) as srv, Rig(srv, _settings()) as rig:
        await rig.finish()
        st = rig.feed.stats
        c = st.counters
        assert {e[1] for e in srv.log if e[0] == "fault"} == {"gap", "duplicate", "out_of_order", "malformed",
                                                                "disconnect"}
        # gap ⇒ the collector resubscribed BTC's book and got a fresh snapshot
        assert c["gaps"] == 1 and st.resyncs["gap"] == 1
        assert ("unsubscribe", ("orderbook.200.BTCUSDT",)) in srv.log
        assert any(e[0] == "snapshot" and e[1] == "BTCUSDT" for e in srv.log)
        # duplicate / out-of-order deltas dropped before storage; malformed JSON counted, stream continues
        assert c["dropped_duplicate"] == 1 and c["dropped_out_of_order"] >= 1 and c["malformed"] == 1
        # disconnect ⇒ reconnect with every topic subscribed again and fresh snapshots
        assert st.connects == 2 and srv.connections == 2
        # the lost books were invalid until their fresh snapshots (all four at the disconnect, BTC at its gap)
        invalidated = [i for i in rig.storage.issues if i.kind == "invalidated"]
        assert sorted(i.symbol for i in invalidated) == sorted([*SYMBOLS, "BTCUSDT"])
        subs = [e[1] for e in srv.log if e[0] == "subscribe" and len(e[1]) > 1]
        assert subs == [tuple(rig.feed.session.topics())] * 2
        assert sum(st.disconnects.values()) == 1


async def test_crossed_delta_is_refused_by_storage_and_resynced() -> None:
    crossed = _delta("ETHUSDT", 100)
    async with CaptureServer(frames=list(FRAMES), speed=40.0, faults=Faults(crossed_at={crossed})) as srv, \
            Rig(srv, _settings()) as rig:
        await rig.finish()
        st = rig.feed.stats
        assert ("fault", "crossed", crossed) in srv.log
        # storage refused it (the analyzers never saw a crossed book) and asked for a resync; the collector did it
        assert rig.storage.counters["rejected"] == 1 and st.resyncs["storage"] == 1
        assert ("unsubscribe", ("orderbook.200.ETHUSDT",)) in srv.log
        assert st.connects == 1


async def test_stalled_socket_hits_the_pong_timeout_and_reconnects() -> None:
    stall = _delta("BTCUSDT", 200)
    settings = _settings(ping_interval_sec=0.1, pong_timeout_sec=0.5)
    async with CaptureServer(frames=list(FRAMES), faults=Faults(stall_at={stall})) as srv, Rig(srv, settings) as rig:
        await rig.finish()
        st = rig.feed.stats
        assert st.counters["pong_timeouts"] == 1 and st.disconnects["pong timeout"] == 1
        assert st.connects == 2


async def test_pong_that_never_comes_reconnects_while_data_flows() -> None:
    settings = _settings(ping_interval_sec=0.1, pong_timeout_sec=0.4)
    async with CaptureServer(frames=list(FRAMES), speed=40.0, faults=Faults(no_pong={1})) as srv, \
            Rig(srv, settings) as rig:
        await until(lambda: rig.feed.stats.connects >= 2, 5.0)
        assert rig.feed.stats.disconnects["pong timeout"] == 1
        assert rig.feed.stats.counters["frames"] > 50  # data was flowing on the pong-less socket
        await rig.finish()


async def test_stale_book_is_detected_and_resubscribed() -> None:
    mute = _delta("ETHUSDT", 50)
    settings = _settings(book_stale_sec=0.3)
    async with CaptureServer(frames=list(FRAMES), speed=40.0, faults=Faults(mute_at={mute: "ETHUSDT"})) as srv, \
            Rig(srv, settings) as rig:
        await rig.finish()
        st = rig.feed.stats
        assert st.counters["stale"] >= 1 and st.resyncs["stale"] >= 1
        assert any(r[1] == "ETHUSDT" and r[2] == "stale" for r in st.resync_log)
        assert any(e[0] == "snapshot" and e[1] == "ETHUSDT" for e in srv.log)


async def test_unreachable_server_keeps_retrying_with_backoff() -> None:
    async with CaptureServer(frames=list(FRAMES)) as srv:
        url = srv.url
    settings = _settings(reconnect_delay_seconds=0.02, reconnect_max_delay_sec=0.08)
    clock = WallClock()
    feed = BybitPublicFeed(settings, clock, SYMBOLS, url=url, rng=random.Random(1))
    task = asyncio.create_task(feed.run(FeedQueue()))
    await until(lambda: sum(feed.stats.disconnects.values()) >= 4, 5.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert feed.stats.connects == 0


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    gen = backoff_delays(5.0, 60.0, rng=random.Random(3))
    delays = [next(gen) for _ in range(8)]
    bases = [5, 10, 20, 40, 60, 60, 60, 60]
    assert all(0.5 * b <= d <= b for d, b in zip(delays, bases, strict=True))


def test_session_requests_respect_the_args_limit() -> None:
    s = PublicSession([f"S{i}USDT" for i in range(23)], 50, stale_sec=10.0)
    reqs = s.on_connected(0.0)
    assert [len(r["args"]) for r in reqs] == [10, 10, 10, 10, 6]
    assert all(r["op"] == "subscribe" for r in reqs)
    assert math.isclose(s.pong_at, 0.0)
