"""SIGTERM stops ``python -m replay`` the way Ctrl-C does (issue 13, defect 2).

``kill``, ``timeout`` and a cancelled CI job send SIGTERM. The contract (ARCHITECTURE.md §7): a run folder is complete
(its manifest is written last) or absent. Each test starts a real 30-day replay on the bundled data, waits until the
bot is writing into the run folder, signals it, and checks the exit status, the message and that no folder is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _start(tmp_path: Path, symbols: str, **popen: object) -> tuple[subprocess.Popen[str], Path]:
    runs = tmp_path / "bt" / "runs"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")}
    proc = subprocess.Popen([sys.executable, "-m", "replay", "--symbols", symbols, "--isolated", "--days", "30",
                             "--no-progress",
                             "--report-path", str(tmp_path / "bt")], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]
    return proc, runs


def _wait_until_mid_run(proc: subprocess.Popen[str], runs: Path, symbols: str) -> None:
    """Until every symbol's bot has written decisions into the run folder (so a half-written folder exists)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"replay ended before the signal: {proc.returncode} {err}")
        found = [list(runs.glob(f"*/bot_{s}/signals.csv")) for s in symbols.split(",")]
        if all(f and f[0].stat().st_size > 200 for f in found):
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never started writing its folder")


def _children(pid: int) -> list[int]:
    kids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            kids.append(int(status.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]


def _assert_stopped_cleanly(proc: subprocess.Popen[str], runs: Path, signame: str, code: int) -> None:
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"replay did not stop within 30 s of {signame}")
    assert proc.returncode == code, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted") and "no run folder was kept" in lines[0], err
    assert signame in lines[0] or signame == "SIGINT", err
    assert "Traceback" not in err
    assert runs.is_dir() and not list(runs.iterdir()), f"left behind: {list(runs.rglob('*'))}"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_mid_run_leaves_no_run_folder(sigint: str, tmp_path: Path) -> None:
    """One symbol (replayed in-process). ``ignored``: how a shell starts a background job (``replay ... &``)."""
    preexec: Callable[[], None] | None = _ignore_sigint if sigint == "ignored" else None
    proc, runs = _start(tmp_path, "BTCUSDT", preexec_fn=preexec)
    _wait_until_mid_run(proc, runs, "BTCUSDT")
    proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(proc, runs, "SIGTERM", 128 + signal.SIGTERM)


def test_sigterm_to_the_parent_stops_the_symbol_workers_too(tmp_path: Path) -> None:
    """Two isolated symbols (a process pool); only the parent is signalled, as ``kill PID`` does."""
    proc, runs = _start(tmp_path, "BTCUSDT,ETHUSDT")
    _wait_until_mid_run(proc, runs, "BTCUSDT,ETHUSDT")
    workers = _children(proc.pid)
    assert workers, "a two-symbol run replays in worker processes"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(proc, runs, "SIGTERM", 128 + signal.SIGTERM)
    assert time.monotonic() - started < 15, "the parent must not wait for the workers to finish their replays"
    assert not [w for w in workers if _alive(w)], "worker processes outlived the run"


def test_sigterm_to_the_process_group(tmp_path: Path) -> None:
    """Two isolated symbols; the whole process group is signalled, as a cancelled CI job or ``timeout`` does."""
    proc, runs = _start(tmp_path, "BTCUSDT,ETHUSDT", start_new_session=True)
    _wait_until_mid_run(proc, runs, "BTCUSDT,ETHUSDT")
    os.killpg(proc.pid, signal.SIGTERM)
    _assert_stopped_cleanly(proc, runs, "SIGTERM", 128 + signal.SIGTERM)


def test_sigint_still_reports_130(tmp_path: Path) -> None:
    proc, runs = _start(tmp_path, "BTCUSDT")
    _wait_until_mid_run(proc, runs, "BTCUSDT")
    proc.send_signal(signal.SIGINT)
    _assert_stopped_cleanly(proc, runs, "SIGINT", 128 + signal.SIGINT)
