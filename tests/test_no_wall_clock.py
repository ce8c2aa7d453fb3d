"""Invariant: nothing in ``bot/`` reads the wall clock except ``bot/clock.py`` (ARCHITECTURE.md §3).

Replay drives the unmodified bot on a virtual-time loop; a single stray ``time.time()`` would make a decision depend on
the machine's clock instead of market time, silently breaking determinism. So every ``.py`` under ``bot/`` is scanned.
"""

from __future__ import annotations

import re
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
ALLOWED = {BOT / "clock.py"}
FORBIDDEN = ("time.time(", "datetime.now(", "datetime.utcnow(", "time.monotonic(", "time.perf_counter(")
# Whitespace between the name and "(" would dodge a plain substring search; normalise it away.
_PATTERN = re.compile("|".join(re.escape(f[:-1]) + r"\s*\(" for f in FORBIDDEN))


def wall_clock_reads(root: Path) -> list[str]:
    """``path:line: text`` for every forbidden call in ``root``'s .py files, outside the allowed clock module."""
    hits: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if path in ALLOWED:
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _PATTERN.search(line):
                hits.append(f"{path.relative_to(root.parent)}:{lineno}: {line.strip()}")
    return hits


def test_bot_never_reads_the_wall_clock() -> None:
    assert BOT.is_dir(), f"bot package not found at {BOT}"
    assert any(BOT.rglob("*.py")), "no bot sources scanned"
    hits = wall_clock_reads(BOT)
    assert not hits, "wall-clock reads in bot/ (use the injected Clock):\n" + "\n".join(hits)


def test_the_scan_catches_every_forbidden_form(tmp_path: Path) -> None:
    """The detector itself must fire, or the invariant above proves nothing."""
    pkg = tmp_path / "bot"
    pkg.mkdir()
    lines = ["import time, datetime", *[f"x = {f})" for f in FORBIDDEN], "y = time.time ()", "z = clock.now()"]
    (pkg / "bad.py").write_text("\n".join(lines) + "\n")
    (pkg / "clock.py").write_text("import time\nnow = time.time()\n")  # not the allowed module of the real tree
    hits = wall_clock_reads(pkg)
    bad = [h for h in hits if h.startswith("bot/bad.py")]
    assert len(bad) == len(FORBIDDEN) + 1, hits
    assert not any("clock.now()" in h for h in hits)
    assert any(h.startswith("bot/clock.py") for h in hits)
