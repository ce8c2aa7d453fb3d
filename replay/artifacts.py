"""Run folders, manifests and rotation (ARCHITECTURE.md §7).

Everything written here that a run's results depend on is byte-stable: JSON with sorted keys and fixed float rounding,
CSV rows in event order. Only ``manifest.json`` carries wall-clock facts (creation time, versions, git commit), and
it is not part of the determinism contract.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_MARKER = "manifest.json"


def _json_default(o: Any) -> Any:
    if hasattr(o, "__float__"):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _finite(o: Any) -> Any:
    """JSON has no inf/nan: write them as strings so a reader sees them instead of a parse error."""
    if isinstance(o, float) and not math.isfinite(o):
        return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(_finite(data), sort_keys=True, indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for dist in ("naporrr", "numpy", "pandas", "msgspec", "pydantic", "pydantic-settings", "plotly", "pybit"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def array_hash(*arrays: Any) -> str:
    """sha256 over the raw bytes of numpy arrays: the identity of the market data a run used."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def new_run_dir(report_path: Path, label: str, *, now: datetime | None = None) -> Path:
    """``{report_path}/runs/{UTC time}-{label}``, made unique with a suffix if two runs start in the same second."""
    runs = report_path / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{label}"
    path, n = runs / base, 1
    while path.exists():
        n += 1
        path = runs / f"{base}-{n}"
    path.mkdir()
    return path


def run_order_key(path: Path) -> tuple[str, int, str]:
    """Runs sort by their start second (the id's stamp), then by completion (the manifest is written last).

    The name alone is not an order: two runs started in the same second would sort by label (``…-s7`` after
    ``…-s42``), so "latest" and rotation could pick the earlier run.
    """
    try:
        done = (path / RUN_MARKER).stat().st_mtime_ns
    except OSError:
        done = 0
    return path.name.split("-", 1)[0], done, path.name


def rotate_runs(report_path: Path, *, keep_last_n: int, max_age_days: float | None = None,
                now: datetime | None = None, protect: Path | None = None) -> list[Path]:
    """Delete completed run folders beyond the newest ``keep_last_n`` or older than ``max_age_days``.

    Only folders that hold a ``manifest.json`` are runs; anything else in ``runs/`` is left alone.
    """
    runs = report_path / "runs"
    if not runs.is_dir():
        return []
    found = sorted((p for p in runs.iterdir() if p.is_dir() and (p / RUN_MARKER).is_file()), key=run_order_key)
    now_ts = (now or datetime.now(UTC)).timestamp()
    doomed = found[:-keep_last_n] if keep_last_n > 0 else []
    if max_age_days is not None:
        doomed += [p for p in found if now_ts - (p / RUN_MARKER).stat().st_mtime > max_age_days * 86_400]
    removed = []
    for p in dict.fromkeys(doomed):
        if protect is not None and p.resolve() == protect.resolve():
            continue
        shutil.rmtree(p)
        removed.append(p)
    return removed
