"""``python -m bot --help`` describes the modes and the replay (the runs themselves: tests/test_live_cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=False)


def test_python_m_bot_help(tmp_path: Path) -> None:
    out = _run("bot", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m bot")
    for text in ("--mode {paper,demo,live}", "--i-understand-live", "--ws-url", "--minutes", "python -m replay"):
        assert text in out.stdout
