"""Several isolated symbols' progress bars each keep their own terminal line (issue 13, defect 5).

The replay runs in a real pseudo-terminal (bars are drawn only when stderr is a terminal) and its output is played back
through a minimal terminal model: carriage return, newline, cursor up/down, printable text. Each time a bar is drawn
the model notes the row it lands on; two symbols on one row means one bar overwrote the other.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections import defaultdict
from pathlib import Path

BAR = re.compile(r"replay (\w+): *(\d+)%")
CSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def _run_in_terminal(args: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")} | {"TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "replay", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def bar_rows(output: str) -> tuple[dict[int, set[str]], dict[int, str]]:
    """Rows on which each symbol's bar was drawn, and the final screen (row → text)."""
    screen: dict[int, list[str]] = defaultdict(list)
    drawn: dict[int, set[str]] = defaultdict(set)
    row = col = 0
    i = 0
    while i < len(output):
        c = output[i]
        if c == "\x1b":
            m = CSI.match(output, i)
            if m:
                n = int(m.group(1) or 1)
                row += {"A": -n, "B": n}.get(m.group(2), 0)
                if m.group(2) == "K":
                    del screen[row][col:]
                i = m.end()
                continue
        if c == "\r":
            col = 0
        elif c == "\n":  # the terminal's ONLCR turns it into CR LF
            row, col = row + 1, 0
        elif c >= " ":
            if col == 0 and (m := BAR.match(output, i)):
                drawn[row].add(m.group(1))
            line = screen[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = c
            col += 1
        i += 1
    return drawn, {r: "".join(t).rstrip() for r, t in screen.items()}


def test_bar_rows_sees_an_overwrite() -> None:
    """The model itself: two bars drawn on one line are caught; tqdm's move-down/up keeps them apart."""
    same = "\rreplay A:  10%|\rreplay B:  20%|"
    apart = "\rreplay A:  10%|\n\rreplay B:  20%|\x1b[A\rreplay A:  30%|"
    assert bar_rows(same)[0] == {0: {"A", "B"}}
    drawn, screen = bar_rows(apart)
    assert drawn == {0: {"A"}, 1: {"B"}} and screen == {0: "replay A:  30%|", 1: "replay B:  20%|"}


def test_each_symbol_bar_has_its_own_line(tmp_path: Path) -> None:
    code, out = _run_in_terminal(["--symbols", "BTCUSDT,ETHUSDT", "--isolated", "--start", "2025-06-20",
                                  "--end", "2025-06-20T08:00", "--report-path", str(tmp_path / "bt")], tmp_path)
    assert code == 0, out
    drawn, screen = bar_rows(out)
    assert {s for syms in drawn.values() for s in syms} == {"BTCUSDT", "ETHUSDT"}, out
    shared = {r: s for r, s in drawn.items() if len(s) > 1}
    assert not shared, f"bars overwrote each other on rows {shared}"
    assert any(line.startswith("strict no-repaint") for line in screen.values()), f"summary not at column 0: {screen}"
    assert any(line.strip().startswith("BTCUSDT") for line in screen.values())
    assert any(line.strip().startswith("ETHUSDT") for line in screen.values())
    assert any(line.startswith("run folder: ") for line in screen.values()), screen


def test_a_single_bar_stays_when_done(tmp_path: Path) -> None:
    code, out = _run_in_terminal(["--symbol", "BTCUSDT", "--start", "2025-06-20", "--end", "2025-06-20T12:00",
                                  "--report-path", str(tmp_path / "bt")], tmp_path)
    assert code == 0, out
    _, screen = bar_rows(out)
    assert any(BAR.match(line) and "100%" in line for line in screen.values()), screen
