"""Runs started in the same second are ordered by completion, not by label (``…-s7`` sorts after ``…-s42``)."""

from __future__ import annotations

import os
from pathlib import Path

from replay.artifacts import rotate_runs
from replay.runs import list_runs, resolve


def _run(runs: Path, name: str, done_ns: int) -> None:
    d = runs / name
    d.mkdir(parents=True)
    marker = d / "manifest.json"
    marker.write_text(f'{{"run_id": "{name}"}}')
    os.utime(marker, ns=(done_ns, done_ns))


def test_same_second_runs_order_by_completion(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = 1_700_000_000_000_000_000
    _run(runs, "20250101T000000Z-BTCUSDT-s1", base)
    _run(runs, "20250101T000001Z-BTCUSDT-s7", base + 1_000)  # started first in this second, finished first
    _run(runs, "20250101T000001Z-BTCUSDT-s42", base + 2_000)
    assert [r.run_id for r in list_runs(tmp_path)] == [
        "20250101T000000Z-BTCUSDT-s1", "20250101T000001Z-BTCUSDT-s7", "20250101T000001Z-BTCUSDT-s42"]
    assert resolve(tmp_path, "latest").run_id == "20250101T000001Z-BTCUSDT-s42"
    removed = rotate_runs(tmp_path, keep_last_n=1)
    assert sorted(p.name for p in removed) == ["20250101T000000Z-BTCUSDT-s1", "20250101T000001Z-BTCUSDT-s7"]
    assert [p.name for p in runs.iterdir()] == ["20250101T000001Z-BTCUSDT-s42"]


def test_the_start_second_outranks_completion(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = 1_700_000_000_000_000_000
    _run(runs, "20250101T000002Z-a", base)  # a later start that finished before an earlier, longer run
    _run(runs, "20250101T000001Z-b", base + 5_000)
    assert resolve(tmp_path, "latest").run_id == "20250101T000002Z-a"
