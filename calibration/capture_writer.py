"""Append-only, crash-safe writer of the capture format: gzip NDJSON, one ``{"recv_ts": s, "msg": frame}`` a line.

Exactly the bundled capture's format (``data/ws/bybit-v5-public-linear-*.ndjson.gz``), so every reader of it
(:func:`bot.adapters.bybit.public_decoder.iter_capture`, :mod:`calibration.recordings`, the recorded feed) reads
recordings too. Every frame is compressed with ``Z_SYNC_FLUSH`` and handed to the OS at once: a killed process loses
at most the frame being written (the page cache survives the process; ``fsync`` would only guard against a power
cut and is not done per frame). The reader :func:`bot.adapters.bybit.gzip_lines.iter_lines` accepts the missing
trailer. ``close`` writes the trailer, making the file a normal gzip file.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from types import TracebackType

import msgspec

__all__ = ["CaptureWriter"]


class CaptureWriter:
    """Writes frames to ``path`` (created; an existing file is refused: a session never appends to another)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = open(self.path, "xb")  # noqa: SIM115 - lives as long as the writer
        self._z = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        self.frames = 0
        self.skipped = 0
        self.bytes_written = 0

    def write(self, recv_ts: float, raw: str | bytes) -> bool:
        """One frame; ``raw`` is the frame's JSON text as received, embedded verbatim (one line). A frame that is not
        JSON is not written (it would make the whole file unreadable as NDJSON; the live collector drops it too):
        counted in ``skipped``, returns False."""
        try:
            msgspec.json.decode(raw)
        except msgspec.DecodeError:
            self.skipped += 1
            return False
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if "\n" in text:  # pretty-printed JSON: one line per frame is the format
            text = msgspec.json.encode(msgspec.json.decode(text)).decode()
        line = f'{{"recv_ts":{json.dumps(float(recv_ts))},"msg":{text.strip()}}}\n'.encode()
        data = self._z.compress(line) + self._z.flush(zlib.Z_SYNC_FLUSH)
        self._fh.write(data)
        self._fh.flush()
        self.frames += 1
        self.bytes_written += len(data)
        return True

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.write(self._z.flush(zlib.Z_FINISH))
        self._fh.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
