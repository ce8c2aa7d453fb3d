"""Golden-run regression: short bundled windows' trade lists, signal logs and key metrics are pinned.

Three windows, all in strict no-repaint mode at the live cadence (every symbol evaluated every 8 s, actions at candle
closes): 12 h of BTCUSDT alone, 6 h of a BTCUSDT+ETHUSDT portfolio (one bot, one account), and 12 h of BTCUSDT with
settings that make the bot trade often and exit every way the strategy can (REVERSE on, fixed tight TP/SL, short
lifetimes): at least 30 trades and every strategy close reason (TP_HIT, SL_HIT, TIME_EXIT, OPPOSITE_SIGNAL, REVERSE;
PROTECTION_FAILED, LIQUIDATION and MANUAL are pinned by the executor scenario tests). When behaviour changes
on purpose, regenerate with ``NAPORRR_UPDATE_GOLDEN=1 pytest tests/test_golden_replay.py`` and review the diff of
``tests/golden/*.json`` in the commit.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path

import pytest

from replay.engine import TRADE_COLUMNS, PortfolioJob, SymbolJob, _trade_row, run_account
from settings import Settings
from settings.search import with_overrides

GOLDEN = Path(__file__).resolve().parent / "golden"
KEY_METRICS = ("total_trades", "win_rate", "profit_factor", "total_pnl_usdt", "total_pnl_bps", "fees_paid_usdt",
               "max_drawdown_pct", "maker_share", "close_reasons", "open_positions_at_end", "ledger_reconciles")
BUSY: dict[str, object] = {
    "trading.reverse_on_opposite": True, "trading.close_on_opposite_strength": 3,
    "trading.min_position_hold_time_sec": 60, "risk.enable_dynamic_tpsl": False,
    "risk.enable_dynamic_tpsl_ratio": False, "risk.min_sl_pct": 0.0015, "risk.min_tp_pct": 0.002,
    "risk.base_position_lifetime_minutes": 15, "risk.min_lifetime_sec": 300,
}
WINDOWS: dict[str, tuple[tuple[str, ...], str, str, dict[str, object]]] = {
    "replay_btcusdt_12h.json": (("BTCUSDT",), "2025-06-20T00:00", "2025-06-20T12:00", {}),
    "replay_portfolio_btc_eth_6h.json": (("BTCUSDT", "ETHUSDT"), "2025-06-20T00:00", "2025-06-20T06:00", {}),
    "replay_btcusdt_close_reasons_12h.json": (("BTCUSDT",), "2025-06-20T00:00", "2025-06-20T12:00", BUSY),
}
STRATEGY_CLOSE_REASONS = {"TP_HIT", "SL_HIT", "TIME_EXIT", "OPPOSITE_SIGNAL", "REVERSE"}


def _current(tmp: Path, symbols: tuple[str, ...], start: str, end: str, overrides: dict[str, object]
             ) -> dict[str, object]:
    settings = with_overrides(Settings(), overrides) if overrides else Settings()
    common = {"settings_json": settings.model_dump_json(), "out_dir": str(tmp), "seed": 42, "start": start,
              "end": end}
    job = SymbolJob(symbol=symbols[0], **common) if len(symbols) == 1 else PortfolioJob(symbols=symbols, **common)
    result = run_account(job)
    trades = [t for s in result.symbols.values() for t in s.trades]
    trades.sort(key=lambda t: (t.closed_ts, t.symbol, t.position_id))
    rows = [",".join(TRADE_COLUMNS)] + [",".join(_trade_row(t)) for t in trades]
    signals = (tmp / f"bot_{'-'.join(symbols)}" / "signals.csv").read_bytes()
    out: dict[str, object] = {
        "window": f"{'+'.join(symbols)} {start}Z → {end[11:]}Z, seed 42, "
                  f"{'settings ' + json.dumps(overrides, sort_keys=True) if overrides else 'default settings'} "
                  "(strict no-repaint, live cadence, one account)",
        "trades": rows,
        "trades_sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
        "signals_sha256": hashlib.sha256(signals).hexdigest(),
        "signal_rows": signals.count(b"\n") - 1,
        "events": result.events,
        "metrics": {k: result.metrics[k] for k in KEY_METRICS},
    }
    if len(symbols) > 1:
        out["symbol_metrics"] = {s: {k: r.metrics[k] for k in KEY_METRICS} for s, r in result.symbols.items()}
    return out


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_golden_replay_window(name: str, tmp_path: Path) -> None:
    current = _current(tmp_path, *WINDOWS[name])
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    path = GOLDEN / name
    if os.environ.get("NAPORRR_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    golden = path.read_text(encoding="utf-8")
    if golden != text:
        diff = "".join(difflib.unified_diff(golden.splitlines(True), text.splitlines(True), "golden", "current"))
        raise AssertionError("replay behaviour changed against the golden run "
                             "(NAPORRR_UPDATE_GOLDEN=1 regenerates it if the change is intended):\n" + diff)
    assert len(current["trades"]) > 1, "the golden window must trade"  # type: ignore[arg-type]
    if WINDOWS[name][3] is BUSY:
        metrics = current["metrics"]
        assert metrics["total_trades"] >= 30  # type: ignore[index]
        assert set(metrics["close_reasons"]) >= STRATEGY_CLOSE_REASONS  # type: ignore[index]
