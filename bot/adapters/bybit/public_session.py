"""The public collector's sans-I/O core: topics, subscribe requests, continuity policy, staleness and latency.

STYLE.md §4: the state machine is a plain object fed frames and times; :mod:`bot.adapters.bybit.public_ws` is the
thin asyncio shell around it, and tests drive this object directly as well as through a real socket.

Policy per symbol (ARCHITECTURE.md §9, STRATEGY.md §3):
- every (re)connect waits for a fresh snapshot per book topic; deltas before it are dropped;
- a delta that continues the ``u`` chain is forwarded; a duplicate or out-of-order delta is dropped (storage would
  refuse it too, and the simulated exchange in paper mode applies deltas blindly, so it must never see one);
- a gap drops the delta and every later one until a fresh snapshot, and resubscribes the topic; the symbol is listed
  in ``lost``, which the shell hands to storage (``DataStorage.invalidate``): the book is unusable until the snapshot,
  so no corrupted book reaches the analyzers. A dropped socket loses every book the same way;
- a crossed or otherwise refused update is caught by storage, which lists the symbol in ``resync_requested``; the
  shell polls that and resubscribes here the same way;
- a symbol whose book has not updated for ``book_stale_sec`` (receive time) is reported and resubscribed; a resync
  still unanswered after that long is requested again.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from loguru import logger

from bot.adapters.bybit.public_decoder import FrameError, PublicDecoder
from bot.events import BookDelta, BookSnapshot, MarketEvent, TradeBatch, latest_ts

__all__ = ["MAX_ARGS_PER_REQUEST", "FeedStats", "LatencyStats", "PublicSession", "book_topic", "trade_topic"]

MAX_ARGS_PER_REQUEST = 10
"""Bybit v5 public linear: at most 10 ``args`` per subscribe/unsubscribe request."""


def book_topic(depth: int, symbol: str) -> str:
    return f"orderbook.{depth}.{symbol}"


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{symbol}"


class _Control(msgspec.Struct):
    """Acks and pongs: ``{"success", "ret_msg", "op", "req_id", "conn_id"}``."""

    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""


_control_decoder = msgspec.json.Decoder(_Control)


@dataclass
class LatencyStats:
    """Receive time minus exchange time per market frame (seconds): the feed-lag figure of the status line."""

    count: int = 0
    total: float = 0.0
    max: float = 0.0
    last: float = 0.0
    ewma: float = 0.0

    def add(self, lag: float) -> None:
        self.count += 1
        self.total += lag
        self.last = lag
        self.max = lag if self.count == 1 else max(self.max, lag)
        self.ewma = lag if self.count == 1 else 0.98 * self.ewma + 0.02 * lag

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary(self) -> str:
        if not self.count:
            return "lag n/a"
        return f"lag last {self.last * 1e3:.0f}ms ewma {self.ewma * 1e3:.0f}ms max {self.max * 1e3:.0f}ms"


@dataclass
class FeedStats:
    """Counters a test or the status line reads; ``counters`` keys: frames, malformed, dropped_duplicate,
    dropped_out_of_order, dropped_awaiting_snapshot, gaps, snapshots, stale, subscribe_errors, pongs."""

    connects: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    resyncs: Counter[str] = field(default_factory=Counter)      # reason → count
    resync_log: list[tuple[float, str, str]] = field(default_factory=list)  # (time, symbol, reason), bounded
    subscribe_sizes: list[int] = field(default_factory=list)    # args per request sent, bounded
    latency: LatencyStats = field(default_factory=LatencyStats)
    last_frame_at: float | None = None


_BOUND = 10_000


@dataclass
class _SymState:
    awaiting_snapshot: bool = True
    resync_since: float | None = None   # a resync request not yet answered by a snapshot
    last_book_at: float = 0.0           # receive time of the last forwarded book event (or of the (re)subscribe)
    snapshot_at: float = float("-inf")  # receive time of the last snapshot


class PublicSession:
    """One collector's state across connections. Times are the injected clock's epoch seconds."""

    def __init__(self, symbols: Sequence[str], depth: int, *, stale_sec: float) -> None:
        self.symbols = tuple(symbols)
        self.depth = depth
        self.stale_sec = stale_sec
        self.decoder = PublicDecoder()
        self.stats = FeedStats()
        self._syms = {s: _SymState() for s in self.symbols}
        self._book_topic_sym = {book_topic(depth, s): s for s in self.symbols}
        self._req = itertools.count(1)
        self.pong_at = 0.0
        # storage may still list a symbol whose fresh snapshot is queued but not yet applied: ignore it that long
        self._grace = min(1.0, stale_sec / 2)
        self.lost: list[str] = []  # symbols whose book the stream just lost; the shell drains it (invalidate hook)

    # --- topics and requests --------------------------------------------------------------------------------------
    def topics(self) -> list[str]:
        """Every topic, book and trades per symbol, in symbol order."""
        return [t for s in self.symbols for t in (book_topic(self.depth, s), trade_topic(s))]

    def requests(self, op: str, topics: Sequence[str]) -> list[dict[str, Any]]:
        """``op`` requests for ``topics``, each within Bybit's per-request argument limit."""
        out = []
        for i in range(0, len(topics), MAX_ARGS_PER_REQUEST):
            args = list(topics[i:i + MAX_ARGS_PER_REQUEST])
            out.append({"req_id": f"{op[:5]}-{next(self._req)}", "op": op, "args": args})
            if op == "subscribe" and len(self.stats.subscribe_sizes) < _BOUND:
                self.stats.subscribe_sizes.append(len(args))
        return out

    def ping(self) -> dict[str, Any]:
        return {"req_id": f"ping-{next(self._req)}", "op": "ping"}

    # --- connection lifecycle -------------------------------------------------------------------------------------
    def on_connected(self, now: float) -> list[dict[str, Any]]:
        """A new socket: every book waits for its snapshot; returns the subscribe requests to send."""
        self.stats.connects += 1
        self.decoder.reset()
        self.pong_at = now
        for st in self._syms.values():
            st.awaiting_snapshot = True
            st.resync_since = None
            st.last_book_at = now
        return self.requests("subscribe", self.topics())

    def on_disconnected(self, reason: str) -> None:
        self.stats.disconnects[reason] += 1
        self.lost.extend(self.symbols)

    def resync(self, symbol: str, now: float, reason: str) -> list[dict[str, Any]]:
        """Drop ``symbol``'s book chain and return unsubscribe + subscribe requests for its book topic."""
        st = self._syms.get(symbol)
        if st is None:
            return []
        st.awaiting_snapshot = True
        st.resync_since = now
        st.last_book_at = now
        self.decoder.reset(symbol)
        self.lost.append(symbol)
        self.stats.resyncs[reason] += 1
        if len(self.stats.resync_log) < _BOUND:
            self.stats.resync_log.append((now, symbol, reason))
        logger.warning("public WS: resync {} ({}): resubscribing {}", symbol, reason, book_topic(self.depth, symbol))
        topic = [book_topic(self.depth, symbol)]
        return [*self.requests("unsubscribe", topic), *self.requests("subscribe", topic)]

    # --- frames ---------------------------------------------------------------------------------------------------
    def on_frame(self, raw: str | bytes, now: float) -> tuple[list[MarketEvent], list[dict[str, Any]]]:
        """Decode one frame received at ``now``: (events to forward as one batch, requests to send)."""
        c = self.stats.counters
        c["frames"] += 1
        self.stats.last_frame_at = now
        try:
            events = self.decoder.decode(raw)
        except FrameError as exc:
            c["malformed"] += 1
            logger.warning("public WS: {}", exc)
            return [], []
        if not events:
            self._control(raw, now)
            return [], []
        self.stats.latency.add(now - latest_ts(events[0]))
        ev = events[0]
        if ev.__class__ is TradeBatch or len(events) != 1:
            return events, []
        return self._book(ev, now)  # type: ignore[arg-type]

    def _book(self, ev: BookSnapshot | BookDelta, now: float) -> tuple[list[MarketEvent], list[dict[str, Any]]]:
        c = self.stats.counters
        st = self._syms.get(ev.symbol)
        if st is None:
            c["unknown_symbol"] += 1
            return [], []
        issues = self.decoder.last_issues
        if ev.__class__ is BookSnapshot:
            c["snapshots"] += 1
            st.awaiting_snapshot = False
            st.resync_since = None
            st.last_book_at = st.snapshot_at = now
            return [ev], []
        if st.awaiting_snapshot:
            c["dropped_awaiting_snapshot"] += 1
            return [], []
        if not issues:
            st.last_book_at = now
            return [ev], []
        kind = issues[0].kind
        if kind != "gap":
            c[f"dropped_{kind}"] += 1
            return [], []
        c["gaps"] += 1
        logger.warning("public WS: {} u gap (expected {}, got {})", ev.symbol, issues[0].expected, issues[0].got)
        return [], self.resync(ev.symbol, now, "gap")  # the shell has storage invalidate the book (``lost``)

    def _control(self, raw: str | bytes, now: float) -> None:
        try:
            msg = _control_decoder.decode(raw)
        except msgspec.DecodeError:
            return
        if msg.op in ("ping", "pong") and (msg.op == "pong" or msg.ret_msg == "pong"):
            self.pong_at = now
            self.stats.counters["pongs"] += 1
        elif msg.op in ("subscribe", "unsubscribe") and msg.success is False:
            self.stats.counters["subscribe_errors"] += 1
            logger.error("public WS: {} {} refused: {}", msg.op, msg.req_id, msg.ret_msg)

    # --- housekeeping ---------------------------------------------------------------------------------------------
    def housekeeping(self, now: float, requested: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Stale books and resyncs asked for by storage (``requested``) → resubscribe requests."""
        out: list[dict[str, Any]] = []
        asked = set(requested)
        for sym, st in self._syms.items():
            if st.resync_since is not None:
                if now - st.resync_since > self.stale_sec:
                    out += self.resync(sym, now, "resync_unanswered")
                continue
            if now - st.last_book_at > self.stale_sec:
                self.stats.counters["stale"] += 1
                logger.warning("public WS: {} book stale: no update for {:.1f}s", sym, now - st.last_book_at)
                out += self.resync(sym, now, "stale")
            elif sym in asked and not st.awaiting_snapshot and now - st.snapshot_at > self._grace:
                out += self.resync(sym, now, "storage")
        return out

    def is_resyncing(self, symbol: str) -> bool:
        st = self._syms.get(symbol)
        return st is not None and st.awaiting_snapshot
