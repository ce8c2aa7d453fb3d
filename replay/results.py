"""What a replay produces, as data and as files: round trips from the bot's trades.csv, and the per-symbol artifacts.

Everything written here is byte-stable for the same data, settings and seed (ARCHITECTURE.md §7).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.timefmt import iso_utc
from replay.artifacts import write_csv, write_json
from replay.metrics import NORMALISED_NOTIONAL_USDT, ClosedTrade, EquityPoint

TRADE_COLUMNS = ("position_id", "symbol", "side", "qty", "entry_price", "exit_price", "opened_at", "closed_at",
                 "hold_sec", "reason", "sl", "tp", "maker_qty", "taker_qty", "fees", "gross_pnl", "net_pnl",
                 "pnl_bps", "norm_pnl_usdt")


def _f(x: str) -> float:
    return float(x) if x not in ("", None) else 0.0


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def read_closed_trades(path: Path) -> list[ClosedTrade]:
    """Round trips from the bot's own trades.csv (OPEN row + CLOSE row per position_id)."""
    if not path.exists():
        return []
    opens: dict[str, dict[str, str]] = {}
    out: list[ClosedTrade] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["event"] == "OPEN":
                opens[row["position_id"]] = row
                continue
            if row["event"] != "CLOSE":
                continue
            o = opens.get(row["position_id"], row)
            entry = _f(row["entry_price"])
            closed = _ts(row["ts"])
            hold = _f(row["hold_sec"])
            out.append(ClosedTrade(
                position_id=row["position_id"], symbol=row["symbol"], side=row["side"], qty=_f(row["qty"]),
                entry_price=entry, exit_price=_f(row["price"]), opened_ts=closed - hold, closed_ts=closed,
                reason=row["reason"], fees=_f(row["fees"]), gross_pnl=_f(row["gross_pnl"]), net_pnl=_f(row["net_pnl"]),
                maker_qty=_f(row["maker_qty"]), taker_qty=_f(row["taker_qty"]), sl=_f(o.get("sl", "") or row["sl"]),
                tp=_f(o.get("tp", "") or row["tp"])))
    return out


def with_entry_slippage(trades: list[ClosedTrade], records: Sequence[Any]) -> list[ClosedTrade]:
    """Attach each trade's entry slippage: average entry vs the book mid when the entry was decided, in bps, signed
    so that positive is worse for the trade."""
    mids = {r.position_id: r.decision_mid for r in records if getattr(r, "decision_mid", None)}
    out = []
    for t in trades:
        mid = mids.get(t.position_id)
        if mid:
            sign = 1.0 if t.side in ("LONG", "Buy") else -1.0
            t = dataclasses.replace(t, entry_slippage_bps=sign * (t.entry_price - mid) / mid * 1e4)
        out.append(t)
    return out


def trade_row(t: ClosedTrade) -> list[str]:
    return [t.position_id, t.symbol, t.side, f"{t.qty:.10g}", f"{t.entry_price:.10g}", f"{t.exit_price:.10g}",
            iso_utc(t.opened_ts), iso_utc(t.closed_ts), f"{t.closed_ts - t.opened_ts:.3f}", t.reason, f"{t.sl:.10g}",
            f"{t.tp:.10g}", f"{t.maker_qty:.10g}", f"{t.taker_qty:.10g}", f"{t.fees:.8f}", f"{t.gross_pnl:.8f}",
            f"{t.net_pnl:.8f}", f"{t.pnl_bps:.4f}", f"{t.pnl_bps * NORMALISED_NOTIONAL_USDT / 1e4:.6f}"]


def write_equity(path: Path, equity: Sequence[EquityPoint]) -> None:
    write_csv(path, ("ts", "equity"), ((iso_utc(p.ts), f"{p.equity:.8f}") for p in equity))


def write_symbol_artifacts(run_dir: Path, result: Any, settings: Any) -> None:
    """trades_{S}.csv, equity_{S}.csv, metrics_{S}.json: byte-stable for the same data, settings and seed."""
    bt = settings.backtest
    if bt.save_trade_log:
        write_csv(run_dir / f"trades_{result.symbol}.csv", TRADE_COLUMNS, (trade_row(t) for t in result.trades))
    if bt.save_equity_curve:
        write_equity(run_dir / f"equity_{result.symbol}.csv", result.equity)
    write_json(run_dir / f"metrics_{result.symbol}.json", result.metrics)
