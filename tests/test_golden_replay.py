"""Golden-run regression: a short bundled window's trade list and key metrics are pinned.

When behaviour changes on purpose, regenerate with ``NAPORRR_UPDATE_GOLDEN=1 pytest tests/test_golden_replay.py`` and
review the diff of ``tests/golden/replay_btcusdt_12h.json`` in the commit.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path

from replay.engine import TRADE_COLUMNS, SymbolJob, _trade_row, run_symbol
from settings import Settings

GOLDEN = Path(__file__).resolve().parent / "golden" / "replay_btcusdt_12h.json"
KEY_METRICS = ("total_trades", "win_rate", "profit_factor", "total_pnl_usdt", "total_pnl_bps", "fees_paid_usdt",
               "max_drawdown_pct", "maker_share", "close_reasons", "open_positions_at_end", "ledger_reconciles")


def _current(tmp: Path) -> dict[str, object]:
    job = SymbolJob(symbol="BTCUSDT", settings_json=Settings().model_dump_json(), out_dir=str(tmp), seed=42,
                    start="2025-06-20T00:00", end="2025-06-20T12:00")
    result = run_symbol(job)
    rows = [",".join(TRADE_COLUMNS)] + [",".join(_trade_row(t)) for t in result.trades]
    signals = (tmp / "bot_BTCUSDT" / "signals.csv").read_bytes()
    return {
        "window": "BTCUSDT 2025-06-20T00:00Z → 12:00Z, seed 42, default settings (strict no-repaint)",
        "trades": rows,
        "trades_sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
        "signals_sha256": hashlib.sha256(signals).hexdigest(),
        "events": result.events,
        "metrics": {k: result.metrics[k] for k in KEY_METRICS},
    }


def test_golden_replay_window(tmp_path: Path) -> None:
    current = _current(tmp_path)
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get("NAPORRR_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    golden = GOLDEN.read_text(encoding="utf-8")
    if golden != text:
        diff = "".join(difflib.unified_diff(golden.splitlines(True), text.splitlines(True), "golden", "current"))
        raise AssertionError("replay behaviour changed against the golden run "
                             "(NAPORRR_UPDATE_GOLDEN=1 regenerates it if the change is intended):\n" + diff)
    assert len(current["trades"]) > 1, "the golden window must trade"
