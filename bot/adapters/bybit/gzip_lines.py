"""Lines of a gzip (or plain) file that may have been cut off mid-write: the reader of crash-safe recordings.

The calibration recorder writes one gzip member per file and flushes it (``Z_SYNC_FLUSH``) after every frame, so a
killed recorder leaves a member without its trailer and perhaps half a line. ``gzip.open`` raises ``EOFError`` on such
a file; this reader instead yields every complete line and drops only the unfinished tail. Several concatenated
members (``cat a.gz b.gz``) are read in order, as gzip does.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["iter_lines"]

CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"


def iter_lines(path: str | Path) -> Iterator[bytes]:
    """Every line of ``path`` (with its ``\\n``), gzip detected by its magic bytes.

    A truncated gzip member ends the file: the lines fully inside it are yielded, an unfinished last line is dropped.
    Corrupt compressed data (not just a cut) raises ``zlib.error`` naming nothing: callers add the file name.
    """
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head != _GZIP_MAGIC:
            yield from fh
            return
        pending = b""
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        complete = True
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            while chunk:
                out = d.decompress(chunk)
                complete = d.eof
                chunk = d.unused_data if d.eof else b""
                if d.eof:
                    d = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    complete = not chunk  # a new member starts in the rest of the chunk
                if out:
                    pending += out
                    *lines, pending = pending.split(b"\n")
                    for ln in lines:
                        yield ln + b"\n"
        if pending and complete:
            yield pending  # a last line without its newline in a finished file is still a line
