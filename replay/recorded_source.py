"""Recorded WebSocket sessions as a market feed: the real frames, through the live collector's own core.

A recording is gzip (or plain) NDJSON, one ``{"recv_ts": <epoch s>, "msg": <raw Bybit frame>}`` per line: the bundled
capture ``data/ws/bybit-v5-public-linear-*.ndjson.gz`` and what ``python -m calibration record`` writes.

Every frame goes through :class:`bot.adapters.bybit.public_session.PublicSession`, the sans-I/O core of the live
collector (:class:`bot.adapters.bybit.public_ws.BybitPublicFeed`), at its recorded receive time: the same decoder
(``decode_frame``), the same forwarding policy (deltas before a symbol's first snapshot, duplicates, out-of-order and
gapped deltas dropped until the next snapshot) and one batch per market frame, exactly what the collector puts on the
bot's queue. Frames of symbols not replayed are skipped before the session, as an unsubscribed topic never arrives
live; control frames (acks, pongs) and other topics (tickers, klines) decode to nothing and are dropped.

Time (ARCHITECTURE.md §3-4): the events keep Bybit's **exchange** timestamps (the decoder's ``ts``/``T``), which is
what storage, the analyzers and the simulated exchange read. A batch is *released* to the bot at its frame's recorded
**receive** time, when the live collector put it on the queue, so the bot sees the recorded feed lag. Two guards keep
the feed's contract (an event is never observable before its own ``ts``; releases never go back in time): the release
time is ``max(recv_ts, newest event ts in the frame, previous release)``. In the bundled capture receive − exchange
time is 0.11-2.26 s and receive times only grow, so neither guard ever moves a release there.

Simplifications (documented in the README): a recording cannot resubscribe, so after a gap the book stays as the last
good one until the next snapshot in the recording (live, the collector also invalidates the book at once, and its
resubscribe's snapshot is what the recorder wrote next); storage still marks it stale after ``book_stale_sec``.

Bad input: a line that is not a recording line, or a frame the decoder refuses, raises :class:`RecordingError` naming
``file:line``. The one exception is a *truncated tail* (a crash while the recorder was writing): an unterminated last
line, or a gzip stream that ends without its end marker, is dropped with a warning (``RecordingInfo.truncated_tail``)
and the recording plays up to the last complete line.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec
from loguru import logger

from bot.adapters.bybit.public_decoder import FrameError, decode_frame
from bot.adapters.bybit.public_session import PublicSession
from bot.events import EventBatch, latest_ts

__all__ = [
    "RecordedFrame",
    "RecordingError",
    "RecordingInfo",
    "iter_recording",
    "recorded_batches",
    "release_time",
    "scan_recording",
]

_TOPIC = re.compile(r"^(?:orderbook\.(\d+)|publicTrade)\.([A-Z0-9]+)$")
_CHUNK = 1 << 20


class RecordingError(ValueError):
    """A recording that cannot be played: the message names the file and line."""


class _Line(msgspec.Struct):
    recv_ts: float
    msg: msgspec.Raw


class _Topic(msgspec.Struct):
    topic: str = ""


_line_decoder = msgspec.json.Decoder(_Line)
_topic_decoder = msgspec.json.Decoder(_Topic)


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recording line: its 1-based line number, receive time, raw frame bytes and market topic's symbol (or
    ``""`` for control frames and topics the bot does not use)."""

    lineno: int
    recv_ts: float
    raw: bytes
    symbol: str
    depth: int | None  # orderbook depth of a book frame, else None


@dataclass(slots=True)
class RecordingInfo:
    """What :func:`scan_recording` found: symbols in order of first appearance, book depth and time span per symbol,
    line counts and the file's sha256 (the run's data identity)."""

    path: Path
    sha256: str
    symbols: list[str] = field(default_factory=list)
    depths: dict[str, int] = field(default_factory=dict)
    lines: int = 0
    market_frames: int = 0
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # symbol → first, last receive time
    truncated_tail: str | None = None  # why the tail was dropped, if it was

    def span(self, symbols: Sequence[str]) -> tuple[float, float]:
        """First and last receive time of any frame of ``symbols``."""
        return min(self.spans[s][0] for s in symbols), max(self.spans[s][1] for s in symbols)

    @property
    def depth(self) -> int | None:
        """The book depth all symbols were recorded at (None: no book frames)."""
        found = set(self.depths.values())
        return found.pop() if len(found) == 1 else None


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _lines(path: Path, tail: list[str]) -> Iterator[tuple[int, bytes]]:
    """Complete lines of ``path`` with their numbers; a truncated tail is reported in ``tail`` and not yielded."""
    with _open(path) as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                if lineno == 0:
                    raise RecordingError(f"{path}: not a readable gzip recording ({exc})") from None
                tail.append(
                    f"{path.name}:{lineno + 1}: compressed stream ends early ({exc}); last partial line dropped"
                )
                return
            if not line:
                return
            lineno += 1
            if not line.endswith(b"\n"):
                try:
                    _line_decoder.decode(line)
                except msgspec.DecodeError:
                    tail.append(f"{path.name}:{lineno}: unterminated last line dropped (recording cut while writing)")
                    return
            yield lineno, line


def iter_recording(
    path: str | Path, symbols: Sequence[str] | None = None, tail: list[str] | None = None
) -> Iterator[RecordedFrame]:
    """Every recording line as a :class:`RecordedFrame`; with ``symbols``, market frames of other symbols are left
    out. ``tail`` (if given) receives the reason a truncated tail was dropped."""
    path = Path(path)
    keep = None if symbols is None else frozenset(symbols)
    dropped: list[str] = tail if tail is not None else []
    for lineno, line in _lines(path, dropped):
        if not line.strip():
            continue
        try:
            rec = _line_decoder.decode(line)
            topic = _topic_decoder.decode(rec.msg).topic
        except msgspec.DecodeError as exc:
            raise RecordingError(
                f'{path}:{lineno}: not a recording line {{"recv_ts": <epoch s>, "msg": <frame>}}: {exc}'
            ) from None
        if not math.isfinite(rec.recv_ts):
            raise RecordingError(f"{path}:{lineno}: recv_ts is {rec.recv_ts}, not a time")
        m = _TOPIC.match(topic)
        sym, depth = (m.group(2), int(m.group(1)) if m.group(1) else None) if m else ("", None)
        if keep is not None and sym and sym not in keep:
            continue
        yield RecordedFrame(lineno, rec.recv_ts, bytes(rec.msg), sym, depth)
    if dropped and tail is None:
        logger.warning("{}", dropped[0])


def scan_recording(path: str | Path) -> RecordingInfo:
    """One pass over a recording: symbols, depths, span, counts, sha256 (errors name ``file:line``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recording {path}: no such file")
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    info = RecordingInfo(path, h.hexdigest())
    tail: list[str] = []
    for fr in iter_recording(path, tail=tail):
        info.lines = fr.lineno
        if not fr.symbol:
            continue
        info.market_frames += 1
        if fr.symbol not in info.symbols:
            info.symbols.append(fr.symbol)
        if fr.depth is not None:
            seen = info.depths.setdefault(fr.symbol, fr.depth)
            if seen != fr.depth:
                raise RecordingError(
                    f"{path}:{fr.lineno}: {fr.symbol} recorded at two book depths ({seen} and "
                    f"{fr.depth}); one orderbook topic per symbol expected"
                )
        first = info.spans.get(fr.symbol, (fr.recv_ts,))[0]
        info.spans[fr.symbol] = (first, fr.recv_ts)
    info.truncated_tail = tail[0] if tail else None
    if info.truncated_tail:
        logger.warning("{}", info.truncated_tail)
    if not info.symbols:
        raise RecordingError(f"{path}: no orderbook or publicTrade frame in {info.lines} line(s)")
    return info


def _refusal(raw: bytes) -> str:
    """Why the live decoder refuses a frame (only called on the error path)."""
    try:
        decode_frame(raw)
    except FrameError as exc:
        return exc.reason
    return "the live decoder refused this frame"


def release_time(recv_ts: float, batch: EventBatch, previous: float) -> float:
    """When a recorded batch reaches the bot: its receive time, never before its newest event's exchange ``ts`` and
    never before the previous release (see the module docstring)."""
    return max(recv_ts, max(latest_ts(ev) for ev in batch), previous)


def recorded_batches(
    path: str | Path, symbols: Sequence[str], depth: int, *, session: PublicSession | None = None
) -> Iterator[tuple[float, EventBatch]]:
    """``(release time, batch)`` per forwarded market frame of ``symbols``, through the live collector's session.

    A frame the live decoder refuses is an error here (live drops it and counts it as malformed; a recording is
    expected to hold what Bybit sent, so a bad frame means a corrupt file)."""
    path = Path(path)
    sess = session if session is not None else PublicSession(symbols, depth, stale_sec=float("inf"))
    started = False
    previous = -float("inf")
    for fr in iter_recording(path, symbols, tail=[]):  # scan_recording already warned of a cut tail
        if not started:
            sess.on_connected(fr.recv_ts)  # the recording starts at the subscribe: every book awaits its snapshot
            started = True
        if not fr.symbol:
            continue
        before = sess.stats.counters["malformed"]
        events, _requests = sess.on_frame(fr.raw, fr.recv_ts)  # the requests: a recording cannot resubscribe
        if sess.stats.counters["malformed"] != before:
            raise RecordingError(f"{path}:{fr.lineno}: {_refusal(fr.raw)}")
        sess.lost.clear()
        if events:
            previous = release_time(fr.recv_ts, events, previous)
            yield previous, events
