"""trades.csv (STRATEGY.md §11): one OPEN row when a position reaches OPEN, exactly one CLOSE row per position_id.

Append-only with the header written once; timestamps UTC ISO-8601 with milliseconds and ``Z`` from the injected
clock; prices and quantities with the instrument's tick/step decimals; money with 6 decimals. The rows are also kept
in memory (``rows``) so replay and tests can read them without a file.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from bot.execution.positions import PositionRecord
from bot.instruments import Instrument
from bot.timefmt import iso_utc

COLUMNS = ("ts", "event", "position_id", "symbol", "side", "qty", "price", "entry_price", "sl", "tp", "reason",
           "maker_qty", "taker_qty", "fees", "gross_pnl", "net_pnl", "hold_sec", "max_lifetime_sec", "signal_ts",
           "signal", "meta")
# ADOPTED: a position found on the exchange at start with no OPEN row (reconciliation §8.7)
ENTRY_REASONS = ("LIMIT", "LIMIT_PARTIAL", "LIMIT_PLUS_MARKET", "MARKET_FALLBACK", "ADOPTED")


def _money(x: Decimal | None) -> str:
    return "" if x is None else f"{x:.6f}"


def format_meta(meta: Mapping[str, str]) -> str:
    return ";".join(f"{k}={v}" for k, v in meta.items())


class TradeLog:
    """Writer of trades.csv; ``path=None`` keeps rows in memory only."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.rows: list[dict[str, str]] = []
        self._closed_ids: set[str] = set()
        self._existing: list[dict[str, str]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists() or self.path.stat().st_size == 0:
                with self.path.open("w", newline="") as f:
                    csv.writer(f).writerow(COLUMNS)
            else:
                with self.path.open(newline="") as f:
                    reader = csv.DictReader(f)
                    if tuple(reader.fieldnames or ()) != COLUMNS:
                        raise ValueError(f"{self.path}: existing file has columns {reader.fieldnames}, "
                                         f"expected the trades.csv header {COLUMNS}")
                    self._existing = list(reader)
                    self._closed_ids = {r["position_id"] for r in self._existing if r["event"] == "CLOSE"}

    def _append(self, row: dict[str, str]) -> None:
        self.rows.append(row)
        if self.path is not None:
            with self.path.open("a", newline="") as f:
                csv.writer(f).writerow([row[c] for c in COLUMNS])

    @staticmethod
    def _maker_taker(fills_qty: list[tuple[bool, Decimal]]) -> tuple[Decimal, Decimal]:
        maker = sum((q for m, q in fills_qty if m), Decimal(0))
        taker = sum((q for m, q in fills_qty if not m), Decimal(0))
        return maker, taker

    def _common(self, rec: PositionRecord, inst: Instrument) -> dict[str, str]:
        fp = inst.fmt_price
        return {
            "position_id": rec.position_id, "symbol": rec.symbol, "side": rec.side_name,
            "entry_price": fp(rec.avg_entry) if rec.avg_entry is not None else "",
            "sl": fp(rec.sl) if rec.sl is not None else "", "tp": fp(rec.tp) if rec.tp is not None else "",
            "max_lifetime_sec": f"{rec.max_lifetime_sec:.3f}",
            "signal_ts": iso_utc(rec.signal_ts) if rec.signal_ts is not None else "",
            "signal": rec.signal_summary,
        }

    def write_open(self, rec: PositionRecord, inst: Instrument, ts: float) -> None:
        if rec.avg_entry is None:
            raise ValueError(f"{rec.position_id}: OPEN row without an average entry")
        if rec.entry_reason not in ENTRY_REASONS:
            raise ValueError(f"{rec.position_id}: entry reason {rec.entry_reason!r} not in {ENTRY_REASONS}")
        maker, taker = self._maker_taker([(f.is_maker, f.qty) for f in rec.entry_fills])
        meta = {"orders": ",".join(rec.order_links)}
        meta.update({k: v for k, v in rec.meta.items() if k in ("adopted", "note")})
        row = {
            "ts": iso_utc(ts), "event": "OPEN", **self._common(rec, inst),
            "qty": inst.fmt_qty(rec.entry_qty()), "price": inst.fmt_price(rec.avg_entry),
            "reason": rec.entry_reason, "maker_qty": inst.fmt_qty(maker), "taker_qty": inst.fmt_qty(taker),
            "fees": _money(sum((f.fee for f in rec.entry_fills), Decimal(0))),
            "gross_pnl": "", "net_pnl": "", "hold_sec": "", "meta": format_meta(meta),
        }
        self._append(row)

    def write_close(self, rec: PositionRecord, inst: Instrument) -> None:
        if rec.position_id in self._closed_ids:
            raise ValueError(f"{rec.position_id}: a CLOSE row was already written (exactly one per position)")
        if rec.closed_at is None or rec.close_reason is None or rec.exit_price is None:
            raise ValueError(f"{rec.position_id}: CLOSE row for a record that is not closed")
        maker, taker = self._maker_taker([(f.is_maker, f.qty) for f in rec.entry_fills + rec.exit_fills])
        hold = rec.closed_at - rec.opened_at if rec.opened_at is not None else 0.0
        row = {
            "ts": iso_utc(rec.closed_at), "event": "CLOSE", **self._common(rec, inst),
            "qty": inst.fmt_qty(rec.exit_qty()), "price": inst.fmt_price(rec.exit_price),
            "reason": rec.close_reason, "maker_qty": inst.fmt_qty(maker), "taker_qty": inst.fmt_qty(taker),
            "fees": _money(rec.fees), "gross_pnl": _money(rec.gross_pnl), "net_pnl": _money(rec.net_pnl),
            "hold_sec": f"{hold:.3f}", "meta": format_meta(rec.meta),
        }
        self._closed_ids.add(rec.position_id)
        self._append(row)

    def find_open_row(self, symbol: str) -> dict[str, str] | None:
        """The last OPEN row of ``symbol`` whose position has no CLOSE row (for adopting a position at start)."""
        rows = self._existing + self.rows
        for r in reversed(rows):
            if r["symbol"] == symbol and r["event"] == "OPEN" and r["position_id"] not in self._closed_ids:
                return r
        return None
