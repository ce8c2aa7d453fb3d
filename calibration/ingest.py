"""Real market files → per-file aggregates (``python -m calibration ingest FILE...``, issue 12 part 2).

Formats, told apart by name and content:
- Bybit order-book archive (``*_ob200.data.zip`` / ``*_ob500.data.zip``, or the unzipped ``.data``): WS frames, read
  by the live decoder (:func:`bot.adapters.bybit.public_decoder.iter_archive`); book only.
- Bybit public trade archive CSV (public.bybit.com/trading layout, ``.csv`` or ``.csv.gz``):
  ``timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional`` with
  ``timestamp`` in epoch seconds (fractional); trades only. Rows are sorted by time here (the archive's order is not
  relied on).
- The capture format (``{"recv_ts", "msg"}`` gzip NDJSON: the bundled capture and every recorded session) and the
  Binance USD-M L2 recordings (:mod:`calibration.recordings`).

Each file gives one aggregate per symbol (:func:`calibration.reduce.reduce_recording`); a symbol with trades and a
book over at least one complete minute also gets its fitted generator coefficients (:func:`fit_generator`). The
result is written atomically (temporary file + rename), so a bad file leaves nothing behind: its error is one line
naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bot.adapters.bybit.public_decoder import FrameError, iter_archive
from calibration.recordings import Recording, RecordingError, bybit_recordings, grid_of, read_recording
from calibration.reduce import reduce_recording, rounded

TRADE_CSV_HEADER = (
    "timestamp",
    "symbol",
    "side",
    "size",
    "price",
    "tickDirection",
    "trdMatchID",
    "grossValue",
    "homeNotional",
    "foreignNotional",
)
FORMAT_VERSION = 1


def read_trade_csv(path: Path) -> list[Recording]:
    """A Bybit public trade archive CSV: one trades-only :class:`Recording` per symbol."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: dict[str, list[tuple[float, float, float, bool]]] = {}
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
            reader = csv.reader(fh)
            head = next(reader, None)
            if head is None or tuple(h.strip() for h in head[: len(TRADE_CSV_HEADER)]) != TRADE_CSV_HEADER:
                raise RecordingError(
                    f"{path.name}:1: not a Bybit trade archive header (expected {','.join(TRADE_CSV_HEADER)})"
                )
            for row in reader:
                lineno = reader.line_num
                if not row:
                    continue
                try:
                    ts, sym, side, size, price = float(row[0]), row[1], row[2], float(row[3]), float(row[4])
                except (ValueError, IndexError) as exc:
                    raise RecordingError(f"{path.name}:{lineno}: bad trade row ({exc})") from None
                if side not in ("Buy", "Sell") or not (size > 0 and price > 0 and ts > 0) or not sym:
                    raise RecordingError(
                        f"{path.name}:{lineno}: bad trade row (side {side!r}, size {row[3]!r}, price {row[4]!r})"
                    )
                rows.setdefault(sym, []).append((ts, price, size, side == "Buy"))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordingError(f"{path.name}: unreadable ({exc})") from None
    if not rows:
        raise RecordingError(f"{path.name}: no trades")
    out = []
    empty2 = np.empty((0, 50))
    for sym in sorted(rows):
        a = np.array(sorted(rows[sym], key=lambda r: r[0]), float)
        out.append(
            Recording(
                symbol=sym,
                venue="bybit-linear",
                source=path.name,
                tick=grid_of(a[:, 1]),
                step=grid_of(a[:, 2]),
                trade_ms=np.rint(a[:, 0] * 1000).astype(np.int64),
                trade_price=a[:, 1],
                trade_qty=a[:, 2],
                trade_is_buy=a[:, 3].astype(bool),
                book_ms=np.empty(0, np.int64),
                bid_px=empty2,
                bid_qty=empty2,
                ask_px=empty2,
                ask_qty=empty2,
                touch_ms=np.empty(0, np.int64),
                touch_bid=np.empty(0),
                touch_ask=np.empty(0),
            )
        )
    return out


def read_archive(path: Path) -> list[Recording]:
    """A Bybit order-book archive (book only): the same decoder and book rebuild as a capture."""
    try:
        return bybit_recordings(iter_archive(path), path.name, need=("book",))
    except (zipfile.BadZipFile, OSError) as exc:
        raise RecordingError(f"{path.name}: unreadable archive ({exc})") from None
    except FrameError as exc:
        raise RecordingError(str(exc)) from None


def read_any(path: Path) -> list[Recording]:
    """Every symbol's recording in ``path``, whatever its format."""
    if not path.is_file():
        raise RecordingError(f"{path}: no such file")
    name = path.name
    if name.endswith((".data.zip", ".data")):
        return read_archive(path)
    if name.endswith((".csv", ".csv.gz")):
        return read_trade_csv(path)
    return read_recording(path)


def fit_generator(rec: Recording) -> dict[str, Any] | None:
    """The generator coefficients fitted on one recording (levels and shapes, refined by simulation on its own
    candles, as ``compare --fit-on`` does), or None when it lacks trades, a book or a complete minute."""
    from calibration.fit import fit_levels, refine_by_simulation, values
    from calibration.synthetic_tape import complete_minutes
    from replay.synthetic import GeneratorParams

    if rec.n_trades < 100 or len(rec.book_ms) < 30:
        return None
    try:
        complete_minutes(rec)
    except ValueError:
        return None
    base = GeneratorParams.load_defaults()
    E = {k: getattr(base, k) for k in ("fill_notional_elasticity", "depth_density_elasticity")}
    fitted = values(fit_levels([rec], E))
    params = refine_by_simulation(base.calibrate_from_ws_stats(fitted), [rec])
    return {k: (list(v) if isinstance(v := getattr(params, k), tuple) else v) for k in sorted(fitted)}


def aggregate_file(path: Path, *, fit: bool = True) -> dict[str, Any]:
    """The aggregate document of one file: its identity and one reduced block per symbol."""
    recs = read_any(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    symbols = []
    for r in recs:
        symbols.append(reduce_recording(r, fit_generator(r) if fit else None))
    return rounded(
        {
            "format": FORMAT_VERSION,
            "file": path.name,
            "sha256": h.hexdigest(),
            "bytes": path.stat().st_size,
            "symbols": symbols,
        }
    )


def write_json_atomic(path: Path, doc: Any) -> None:
    """Sorted keys, no NaN; written to a temporary file and renamed (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def ingest(paths: list[Path], out_dir: Path, *, fit: bool = True, progress: bool = False) -> list[Path]:
    """Aggregate every file into ``out_dir/<file name>.<sha256 prefix>.json`` (two sessions' ``frames.ndjson.gz``
    do not collide). All files are read before anything is written: one bad
    file fails the command with nothing half-written."""
    it: Any = paths
    if progress:
        from tqdm import tqdm

        it = tqdm(paths, desc="ingest", unit="file", file=sys.stderr, leave=False)
    docs = [(p, aggregate_file(p, fit=fit)) for p in it]
    outs = []
    for p, doc in docs:
        out = out_dir / f"{p.name}.{doc['sha256'][:8]}.json"  # the same file again replaces its aggregate
        write_json_atomic(out, doc)
        outs.append(out)
    return outs
