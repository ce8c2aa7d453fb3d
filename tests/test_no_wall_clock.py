"""Invariants of ``bot/`` (ARCHITECTURE.md §2–§3): it never reads the wall clock except in ``bot/clock.py``, and it
never imports ``replay`` or ``calibration``.

Replay drives the unmodified bot on a virtual-time loop; a single stray ``time.time()`` would make a decision depend on
the machine's clock instead of market time, silently breaking determinism, and an import of the harness would let bot
code know it is being replayed. So every ``.py`` under ``bot/`` is scanned twice: as text (catches any spelling of a
call, whitespace included) and as a syntax tree with import aliases resolved (catches ``from time import time``,
``import time as t; t.time()``, ``from datetime import datetime as dt; dt.now()`` and imports of the harness).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
ALLOWED = {BOT / "clock.py"}
FORBIDDEN = ("time.time(", "time.time_ns(", "datetime.now(", "datetime.utcnow(", "datetime.today(", "date.today(",
             "time.monotonic(", "time.monotonic_ns(", "time.perf_counter(", "time.perf_counter_ns(")
# Whitespace between the name and "(" would dodge a plain substring search; normalise it away.
_PATTERN = re.compile("|".join(re.escape(f[:-1]) + r"\s*\(" for f in FORBIDDEN))
# Fully qualified wall-clock readers (what the syntax scan resolves names to).
CLOCK_READS = frozenset({"time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
                         "time.perf_counter_ns", "time.process_time", "time.thread_time", "datetime.datetime.now",
                         "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today"})
# Readers of "now" only when called without an explicit time argument.
CLOCK_READS_WITHOUT_ARGS = frozenset({"time.gmtime", "time.localtime", "time.ctime", "time.asctime"})
HARNESS = ("replay", "calibration")


def wall_clock_reads(root: Path) -> list[str]:
    """``path:line: text`` for every forbidden call in ``root``'s .py files, outside the allowed clock module."""
    hits: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if path in ALLOWED:
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _PATTERN.search(line):
                hits.append(f"{path.relative_to(root.parent)}:{lineno}: {line.strip()}")
        hits.extend(f"{path.relative_to(root.parent)}:{n}: {what}" for n, what in _syntax_hits(path))
    return hits


def _syntax_hits(path: Path) -> list[tuple[int, str]]:
    """Wall-clock reads found in the syntax tree, with ``import x as y`` / ``from x import y as z`` resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    alias: dict[str, str] = {}
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                alias[a.asname or a.name] = full
                if full in CLOCK_READS:
                    hits.append((node.lineno, f"imports the wall-clock reader {full}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = alias.get(head, head) + (f".{rest}" if rest else "")
        if full in CLOCK_READS or (full in CLOCK_READS_WITHOUT_ARGS and not node.args and not node.keywords):
            hits.append((node.lineno, f"calls {full}()"))
    return hits


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def harness_imports(root: Path) -> list[str]:
    """``path:line: module`` for every import of ``replay`` or ``calibration`` (also via importlib / __import__)."""
    hits: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            elif isinstance(node, ast.Call) and _dotted(node.func) in ("importlib.import_module", "import_module",
                                                                        "__import__"):
                mods = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for m in mods:
                if m.split(".")[0] in HARNESS:
                    hits.append(f"{path.relative_to(root.parent)}:{node.lineno}: {m}")
    return hits


def test_bot_never_reads_the_wall_clock() -> None:
    assert BOT.is_dir(), f"bot package not found at {BOT}"
    assert any(BOT.rglob("*.py")), "no bot sources scanned"
    hits = wall_clock_reads(BOT)
    assert not hits, "wall-clock reads in bot/ (use the injected Clock):\n" + "\n".join(hits)


def test_bot_never_imports_the_harness() -> None:
    hits = harness_imports(BOT)
    assert not hits, "bot/ imports replay or calibration (the dependency rule is settings ← bot ← replay):\n" + \
        "\n".join(hits)


def test_the_scan_catches_every_forbidden_form(tmp_path: Path) -> None:
    """The detectors themselves must fire, or the invariants above prove nothing."""
    pkg = tmp_path / "bot"
    pkg.mkdir()
    lines = ["import time, datetime", *[f"x = {f})" for f in FORBIDDEN], "y = time.time ()", "z = clock.now()"]
    (pkg / "bad.py").write_text("\n".join(lines) + "\n")
    (pkg / "clock.py").write_text("import time\nnow = time.time()\n")  # not the allowed module of the real tree
    hits = wall_clock_reads(pkg)
    bad = [h for h in hits if h.startswith("bot/bad.py")]
    assert len({h.split(":")[1] for h in bad}) == len(FORBIDDEN) + 1, hits  # every line caught
    assert not any("clock.now()" in h for h in hits)
    assert any(h.startswith("bot/clock.py") for h in hits)
    # aliases and from-imports only the syntax scan can see
    (pkg / "sly.py").write_text("from time import time\nfrom time import time_ns as ns\nimport time as t\n"
                                "from datetime import datetime as dt, date\nimport datetime as d2\n"
                                "a = time()\nb = ns()\nc = t.monotonic()\ne = dt.today()\nf = date.today()\n"
                                "g = d2.datetime.now()\nh = t.gmtime()\nok1 = t.gmtime(0)\nok2 = dt.fromtimestamp(0)\n"
                                "ok3 = t.strftime('%Y', t.gmtime(5))\n")
    sly = [h for h in wall_clock_reads(pkg) if h.startswith("bot/sly.py")]
    lines_hit = {int(h.split(":")[1]) for h in sly}
    assert lines_hit == {1, 2, 6, 7, 8, 9, 10, 11, 12}, sly


def test_the_import_scan_catches_the_harness(tmp_path: Path) -> None:
    pkg = tmp_path / "bot"
    pkg.mkdir()
    (pkg / "bad.py").write_text("\n".join([
        "import replay", "from replay.engine import run_symbol", "import calibration.recordings as r",
        "import importlib", "m = importlib.import_module('replay.feed')", "n = __import__('calibration')",
        "from settings import Settings", "import replaying", "from . import replay"]) + "\n")
    hits = harness_imports(pkg)
    assert [int(h.split(":")[1]) for h in hits] == [1, 2, 3, 5, 6], hits
