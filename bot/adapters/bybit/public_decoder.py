"""Bybit v5 public-stream frames → :mod:`bot.events` (ARCHITECTURE.md §4, §9).

One decoder for every source of Bybit public frames: the live collector, the recorded capture
(``{"recv_ts", "msg"}`` ndjson.gz) and Bybit's order-book archive (ob200/ob500 ``.data`` zips), so replay
exercises exactly the parsing the live bot runs. Decoding is two-stage with msgspec (envelope → topic route →
typed payload, nautilus-style), numbers arrive as strings and are converted by msgspec's lax mode, and every
price/size is range-checked by the schema itself, so a bad frame fails loudly in C instead of in a Python loop.

Continuity is *checked* here (``PublicDecoder``) and only reported: applying or refusing updates is
``DataStorage``'s job (STRATEGY.md §3), which re-checks on its own state.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import numpy as np

from bot.adapters.bybit.gzip_lines import iter_lines
from bot.events import BookDelta, BookSnapshot, MarketEvent, TradeBatch, latest_ts

__all__ = [
    "Continuity",
    "FrameError",
    "PublicDecoder",
    "SequenceIssue",
    "decode_frame",
    "iter_archive",
    "iter_capture",
]


class FrameError(ValueError):
    """A frame that claims to be market data but cannot be decoded; ``reason`` says why."""

    def __init__(self, reason: str, raw: bytes | str | None = None) -> None:
        self.reason = reason
        snippet = ""
        if raw is not None:
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
            snippet = f" (frame starts: {text[:120]!r})"
        super().__init__(f"malformed Bybit frame: {reason}{snippet}")


# --- wire schemas -------------------------------------------------------------------------------------------------

_Price = Annotated[float, msgspec.Meta(gt=0.0, lt=1e15)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, lt=1e15)]
_TradeSize = Annotated[float, msgspec.Meta(gt=0.0, lt=1e15)]
_Ms = Annotated[int, msgspec.Meta(gt=0)]


_NO_DATA = msgspec.Raw(b"")


class _Envelope(msgspec.Struct):
    """Just enough to route: everything else stays raw until the topic is known."""

    topic: str | None = None
    type: str | None = None
    ts: int | None = None
    data: msgspec.Raw = _NO_DATA


class _BookData(msgspec.Struct):
    s: str
    b: list[tuple[_Price, _Size]]
    a: list[tuple[_Price, _Size]]
    u: Annotated[int, msgspec.Meta(ge=0)]
    seq: int | None = None


class _TradeData(msgspec.Struct):
    T: _Ms
    s: str
    S: Literal["Buy", "Sell"]
    v: _TradeSize
    p: _Price
    i: str


class _CaptureLine(msgspec.Struct):
    recv_ts: float
    msg: msgspec.Raw


_env_decoder = msgspec.json.Decoder(_Envelope)
_book_decoder = msgspec.json.Decoder(_BookData, strict=False)
_trades_decoder = msgspec.json.Decoder(list[_TradeData], strict=False)
_capture_decoder = msgspec.json.Decoder(_CaptureLine)

_IGNORED_PREFIXES = ("tickers.", "kline.", "liquidation.", "allLiquidation.", "lt.", "insurance.", "adl.")


def decode_frame(raw: bytes | str) -> list[MarketEvent]:
    """Decode one Bybit v5 public frame into market events.

    A book frame gives one ``BookSnapshot``/``BookDelta``; a ``publicTrade`` frame one ``TradeBatch`` (string ids as
    an object array). Acks, pongs and topics the bot does not consume (tickers, kline, ...) give ``[]``. A frame that
    is not JSON, or an ``orderbook``/``publicTrade`` frame with missing or invalid fields, raises :class:`FrameError`.
    A delta with ``u == 1`` becomes a :class:`BookSnapshot`: Bybit restarted its book service (STRATEGY.md §3).
    """
    try:
        env = _env_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass: wrong envelope types land here too
        raise FrameError(f"envelope: {exc}", raw) from None
    topic = env.topic
    if topic is None:
        return []  # subscribe ack, pong, auth reply: no market data
    if topic.startswith("orderbook."):
        return [_decode_book(env, topic, raw)]
    if topic.startswith("publicTrade."):
        return _decode_trades(env, topic, raw)
    return []  # tickers/kline/other topics are not consumed by the bot


def _topic_symbol(topic: str, raw: bytes | str) -> str:
    sym = topic.rpartition(".")[2]
    if not sym:
        raise FrameError(f"topic {topic!r} has no symbol", raw)
    return sym


def _decode_book(env: _Envelope, topic: str, raw: bytes | str) -> BookSnapshot | BookDelta:
    if not env.data or env.ts is None:
        raise FrameError(f"{topic}: missing 'data' or 'ts'", raw)
    if env.type not in ("snapshot", "delta"):
        raise FrameError(f"{topic}: type {env.type!r} is neither snapshot nor delta", raw)
    try:
        d = _book_decoder.decode(env.data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"{topic} data: {exc}", raw) from None
    sym = _topic_symbol(topic, raw)
    if d.s != sym:
        raise FrameError(f"{topic}: data.s {d.s!r} does not match the topic", raw)
    ts = env.ts / 1000.0
    if env.type == "snapshot" or d.u == 1:
        return BookSnapshot(sym, ts, d.b, d.a, d.u)
    return BookDelta(sym, ts, d.b, d.a, d.u)


def _decode_trades(env: _Envelope, topic: str, raw: bytes | str) -> list[MarketEvent]:
    """One ``TradeBatch`` per frame (storage and the simulated exchange ingest columns); ``[]`` for an empty frame."""
    if not env.data:
        raise FrameError(f"{topic}: missing 'data'", raw)
    try:
        rows = _trades_decoder.decode(env.data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"{topic} data: {exc}", raw) from None
    sym = _topic_symbol(topic, raw)
    if not rows:
        return []
    for r in rows:
        if r.s != sym:
            raise FrameError(f"{topic}: trade symbol {r.s!r} does not match the topic", raw)
    m = len(rows)
    ts = np.fromiter([r.T for r in rows], np.float64, m)
    ts /= 1000.0  # the same division as T / 1000.0 on a Python int below 2**53
    ids = np.empty(m, dtype=object)
    ids[:] = [r.i for r in rows]
    return [TradeBatch(sym, ts, np.fromiter([r.p for r in rows], np.float64, m),
                       np.fromiter([r.v for r in rows], np.float64, m),
                       np.fromiter([r.S == "Buy" for r in rows], bool, m), ids)]


# --- continuity ---------------------------------------------------------------------------------------------------

IssueKind = Literal["gap", "duplicate", "out_of_order"]


class SequenceIssue(msgspec.Struct, frozen=True):
    """A break in one symbol's book update-id chain. ``expected`` is ``-1`` when no snapshot was seen yet."""

    symbol: str
    kind: IssueKind
    expected: int
    got: int


@dataclass
class Continuity:
    """Per-symbol book ``u`` chain check: a snapshot resets, a delta must be last ``u`` + 1.

    It only observes. After a gap it follows the stream (last ``u`` = the delta's ``u``) so one lost frame is one
    issue, not one per following frame; duplicates and out-of-order frames do not move it.
    """

    last_u: dict[str, int] = field(default_factory=dict)
    issues: list[SequenceIssue] = field(default_factory=list)

    def check(self, ev: MarketEvent) -> SequenceIssue | None:
        if isinstance(ev, BookSnapshot):
            self.last_u[ev.symbol] = ev.update_id
            return None
        if not isinstance(ev, BookDelta):
            return None
        last = self.last_u.get(ev.symbol)
        u = ev.update_id
        issue: SequenceIssue | None = None
        if last is None:
            issue = SequenceIssue(ev.symbol, "gap", -1, u)
            self.last_u[ev.symbol] = u
        elif u == last + 1:
            self.last_u[ev.symbol] = u
        elif u == last:
            issue = SequenceIssue(ev.symbol, "duplicate", last + 1, u)
        elif u < last:
            issue = SequenceIssue(ev.symbol, "out_of_order", last + 1, u)
        else:
            issue = SequenceIssue(ev.symbol, "gap", last + 1, u)
            self.last_u[ev.symbol] = u
        if issue is not None:
            self.issues.append(issue)
        return issue


class PublicDecoder:
    """``decode_frame`` plus continuity bookkeeping for one connection's stream.

    ``issues`` holds every :class:`SequenceIssue` seen (the collector decides to resubscribe on a gap);
    ``last_issues`` those found in the most recent frame. Frames are still returned in full: storage re-checks.
    """

    def __init__(self) -> None:
        self.continuity = Continuity()
        self.last_issues: list[SequenceIssue] = []

    @property
    def issues(self) -> list[SequenceIssue]:
        return self.continuity.issues

    def decode(self, raw: bytes | str) -> list[MarketEvent]:
        events = decode_frame(raw)
        self.last_issues = []
        for ev in events:
            if ev.__class__ is not TradeBatch:
                issue = self.continuity.check(ev)
                if issue is not None:
                    self.last_issues.append(issue)
        return events

    def reset(self, symbol: str | None = None) -> None:
        """Forget the chain (after a reconnect, before the fresh snapshots arrive)."""
        if symbol is None:
            self.continuity.last_u.clear()
        else:
            self.continuity.last_u.pop(symbol, None)


# --- recorded sources ---------------------------------------------------------------------------------------------


def iter_capture(path: str | Path) -> Iterator[tuple[float, list[MarketEvent]]]:
    """Replay a recorded capture (one ``{"recv_ts": s, "msg": frame}`` per line, gzip or plain).

    Yields ``(recv_ts, events)`` for every line, including frames that decode to ``[]`` (callers see the full
    receive timeline). A malformed line raises :class:`FrameError` naming the line number. A recording whose writer
    was killed (gzip member without its trailer, half a last line) yields every complete line
    (:func:`~bot.adapters.bybit.gzip_lines.iter_lines`).
    """
    path = Path(path)
    lineno = 0
    try:
        for lineno, line in enumerate(iter_lines(path), 1):
            if not line.strip():
                continue
            try:
                rec = _capture_decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise FrameError(f"{path.name}:{lineno}: capture line: {exc}", line) from None
            try:
                events = decode_frame(rec.msg)
            except FrameError as exc:
                raise FrameError(f"{path.name}:{lineno}: {exc.reason}", line) from None
            yield rec.recv_ts, events
    except zlib.error as exc:
        raise FrameError(f"{path.name}:{lineno + 1}: corrupt gzip data ({exc})") from None


def iter_archive(path: str | Path) -> Iterator[tuple[float, list[MarketEvent]]]:
    """Replay a Bybit order-book archive (``YYYY-MM-DD_SYM_ob500.data``, zipped or plain NDJSON of WS frames).

    The archive has no receive time, so the yielded time is the frame's exchange ``ts`` in seconds.
    """
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise FrameError(f"{path.name}: expected one member in the archive zip, found {names}")
            with zf.open(names[0]) as member:
                yield from _iter_frames(io.BufferedReader(member), path.name)  # type: ignore[arg-type]
    else:
        with open(path, "rb") as fh:
            yield from _iter_frames(fh, path.name)


def _iter_frames(fh: io.BufferedIOBase, name: str) -> Iterator[tuple[float, list[MarketEvent]]]:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            events = decode_frame(line)
        except FrameError as exc:
            raise FrameError(f"{name}:{lineno}: {exc.reason}", line) from None
        if not events:
            continue
        yield latest_ts(events[0]), events
