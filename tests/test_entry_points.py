"""``python -m bot`` answers with one clear line until the live bot exists (issue 13, defect 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          check=False)


@pytest.mark.parametrize("args", [(), ("--symbol", "BTCUSDT"), ("live",)])
def test_python_m_bot_says_it_is_not_built_and_what_to_run(args: tuple[str, ...], tmp_path: Path) -> None:
    out = _run("bot", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1, out.stderr
    assert "not built yet" in err[0] and "python -m replay --symbol BTCUSDT" in err[0]
    assert "Traceback" not in out.stderr and "No module named" not in out.stderr
    assert out.stdout == ""


def test_python_m_bot_help(tmp_path: Path) -> None:
    out = _run("bot", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m bot")
    assert "Not built yet" in out.stdout and "python -m replay" in out.stdout
