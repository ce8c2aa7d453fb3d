"""Aggregates → ``calibration.json`` (``python -m calibration stats``, issue 12 part 3).

Reads every aggregate under the calibration folder (``sessions/*/aggregate.json`` from ``record``,
``ingested/*.json`` from ``ingest``) and writes one file: per symbol its time span and each source's figures
(:mod:`calibration.reduce`), and a ``generator`` block, the coefficients fitted on the sources that could be fitted,
pooled with their trade counts as weights (probability vectors stay normalised). ``replay --calibration`` and
``GeneratorParams.calibrate_from_ws_stats`` read that block. Sorted keys and rounded floats: the same aggregates always
give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from calibration.reduce import rounded

FORMAT_VERSION = 1


class CalibrationError(ValueError):
    """No aggregates, or an aggregate file that cannot be read (the message names it)."""


def aggregate_paths(root: Path) -> list[Path]:
    return sorted(root.glob("sessions/*/aggregate.json")) + sorted(root.glob("ingested/*.json"))


def load_aggregates(paths: list[Path]) -> list[dict[str, Any]]:
    docs = []
    for p in paths:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT_VERSION or not isinstance(doc.get("symbols"), list):
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT_VERSION}")
        except (OSError, ValueError, AttributeError) as exc:
            raise CalibrationError(f"{p}: not a calibration aggregate ({exc})") from None
        docs.append(doc)
    return docs


def pool_generator(blocks: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """Weighted mean of each coefficient over the fitted sources (lists elementwise; a list summing to 1 stays so)."""
    out: dict[str, Any] = {}
    names = sorted({k for b, _ in blocks for k in b})
    for k in names:
        vals = [(b[k], w) for b, w in blocks if k in b and b[k] is not None]
        w = np.array([v[1] for v in vals], float)
        arr = np.array([v[0] for v in vals], float)
        m = np.average(arr, axis=0, weights=w)
        if arr.ndim == 2 and np.allclose(arr.sum(1), 1.0, atol=1e-4):
            m = m / m.sum()
        out[k] = m.tolist() if arr.ndim == 2 else float(m)
    return out


def build(docs: list[dict[str, Any]]) -> dict[str, Any]:
    if not docs:
        raise CalibrationError("no aggregates: run `python -m calibration record` or `ingest FILE...` first")
    symbols: dict[str, dict[str, Any]] = {}
    fitted: list[tuple[dict[str, Any], float]] = []
    fitted_on: list[str] = []
    sources = []
    for doc in sorted(docs, key=lambda d: (d["file"], d["sha256"])):
        sources.append(
            {
                "file": doc["file"],
                "sha256": doc["sha256"],
                "bytes": doc.get("bytes"),
                "symbols": sorted(s["symbol"] for s in doc["symbols"]),
            }
        )
        for s in doc["symbols"]:
            entry = symbols.setdefault(s["symbol"], {"sources": []})
            entry["sources"].append({k: v for k, v in s.items() if k != "generator"})
            if s.get("generator"):
                fitted.append((s["generator"], float(s.get("trades", {}).get("count", 1))))
                fitted_on.append(f"{s['source']}:{s['symbol']}")
    for entry in symbols.values():
        entry["sources"].sort(key=lambda x: (x["span"]["start"], x["source"]))
        spans = [x["span"] for x in entry["sources"]]
        entry["span"] = {
            "start": min(s["start"] for s in spans),
            "end": max(s["end"] for s in spans),
            "seconds": sum(s["seconds"] for s in spans),
        }
    out: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "_doc": "Real-market statistics per symbol and the generator coefficients fitted on them; written by "
        "`python -m calibration stats` (calibration/calibfile.py documents every block).",
        "sources": sources,
        "symbols": symbols,
    }
    if fitted:
        out["generator"] = pool_generator(fitted)
        out["_generator_fitted_on"] = sorted(fitted_on)
    return rounded(out)


def reduce_unfinished_sessions(root: Path) -> list[Path]:
    """Sessions with raw frames but no aggregate (the recorder was killed) are reduced now; returns their aggregates."""
    from calibration.record import AGGREGATE, FRAMES, finish_session

    done = []
    for frames in sorted(root.glob(f"sessions/*/{FRAMES}")):
        if not (frames.parent / AGGREGATE).exists() and (agg := finish_session(frames.parent)) is not None:
            done.append(agg)
    return done


def write_calibration(root: Path, out: Path) -> dict[str, Any]:
    from calibration.ingest import write_json_atomic

    reduce_unfinished_sessions(root)
    doc = build(load_aggregates(aggregate_paths(root)))
    write_json_atomic(out, doc)
    return doc


def generator_block(doc: dict[str, Any], name: str = "calibration file") -> dict[str, Any]:
    """The coefficients of a calibration file (``calibration.json`` or a ``fit`` output)."""
    gen = doc.get("generator") if isinstance(doc, dict) else None
    if not isinstance(gen, dict) or not gen:
        raise CalibrationError(
            f"{name}: no 'generator' block (no source with trades, a book and a complete minute was aggregated)"
        )
    return gen
