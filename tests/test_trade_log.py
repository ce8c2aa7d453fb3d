"""trades.csv (§11): exact columns, UTC ms Z stamps, instrument decimals, one header, one CLOSE per position."""

from __future__ import annotations

import csv
from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.execution.fills import Fill
from bot.execution.positions import PositionRecord, PositionState, compute_pnl
from bot.execution.trade_log import COLUMNS, TradeLog
from bot.instruments import InstrumentRegistry
from bot.risk import RiskManager
from settings import Settings

REG = InstrumentRegistry.bundled()
T = 1_765_200_549.412  # 2025-12-08T13:29:09.412Z


def fill(i: str, q: str, p: str, maker: bool, ts: float, link: str = "", stop: str = "") -> Fill:
    rate = D("0.0002") if maker else D("0.00055")
    return Fill(exec_id=i, qty=D(q), price=D(p), is_maker=maker, fee=D(q) * D(p) * rate, ts=ts, order_link_id=link,
                stop_order_type=stop, exchange_fee=D("0.01"))


def closed_record(sym: str = "1000PEPEUSDT") -> PositionRecord:
    rec = PositionRecord(symbol=sym, position_id="mix6i59400", side=1, state=PositionState.OPEN,
                         target_qty=D(81000), created_at=T - 1, sl_pct=0.002, tp_pct=0.01, max_lifetime_sec=5400.0,
                         signal_ts=T - 2, signal_summary="BUY3 imb=31.4 mom=65.7 oh=5 S=0.634 th=0.40")
    rec.entry_fills = [fill("a", "50000", "0.012345", True, T, "nap-mix6i59400-E1-BUY"),
                       fill("b", "31000", "0.012347", False, T + 30, "nap-mix6i59400-F1-BUY")]
    rec.order_links = ["nap-mix6i59400-E1-BUY", "nap-mix6i59400-F1-BUY"]
    rec.qty = D(81000)
    rec.avg_entry = rec.entry_vwap()
    rec.opened_at = T
    rec.sl, rec.tp = D("0.012321"), D("0.012469")
    rec.entry_reason = "LIMIT_PLUS_MARKET"
    return rec


def close(rec: PositionRecord) -> None:
    rec.exit_fills = [fill("c", "81000", "0.012469", False, T + 600.5, stop="TakeProfit")]
    rec.qty = D(0)
    rec.state = PositionState.CLOSED
    rec.closed_at = T + 600.5
    rec.exit_price = rec.exit_vwap()
    rec.gross_pnl, rec.fees, rec.net_pnl = compute_pnl(rec)
    rec.close_reason = "TP_HIT"
    rec.meta = {"orders": ",".join(rec.order_links), "origins": "TP", "exch_fee": "0.03"}


def read(p: Path) -> list[dict[str, str]]:
    with p.open(newline="") as f:
        return list(csv.DictReader(f))


def test_open_and_close_rows(tmp_path: Path) -> None:
    p = tmp_path / "logs" / "trades.csv"
    log = TradeLog(p)
    rec = closed_record()
    inst = REG[rec.symbol]
    log.write_open(rec, inst, T + 30.0004)
    close(rec)
    log.write_close(rec, inst)
    assert p.read_text().splitlines()[0] == ",".join(COLUMNS)
    o, c = read(p)
    assert o["ts"] == "2025-12-08T13:29:39.412Z" and o["event"] == "OPEN" and o["side"] == "LONG"
    assert o["qty"] == "81000" and o["price"] == "0.012346" and o["entry_price"] == "0.012346"  # 6 tick decimals
    assert (o["sl"], o["tp"]) == ("0.012321", "0.012469")
    assert o["maker_qty"] == "50000" and o["taker_qty"] == "31000"
    assert o["gross_pnl"] == o["net_pnl"] == o["hold_sec"] == ""
    assert o["signal_ts"] == "2025-12-08T13:29:07.412Z" and o["signal"].startswith("BUY3 imb=31.4")
    assert o["max_lifetime_sec"] == "5400.000" and o["reason"] == "LIMIT_PLUS_MARKET"
    assert o["meta"] == "orders=nap-mix6i59400-E1-BUY,nap-mix6i59400-F1-BUY"
    entry_fees = D("50000") * D("0.012345") * D("0.0002") + D("31000") * D("0.012347") * D("0.00055")
    assert o["fees"] == f"{entry_fees:.6f}"
    assert c["ts"] == "2025-12-08T13:39:09.912Z" and c["reason"] == "TP_HIT" and c["price"] == "0.012469"
    assert c["maker_qty"] == "50000" and c["taker_qty"] == "112000"          # both legs
    assert c["hold_sec"] == "600.500"
    assert D(c["net_pnl"]) == (D(c["gross_pnl"]) - D(c["fees"])).quantize(D("0.000001"))
    assert c["meta"] == "orders=nap-mix6i59400-E1-BUY,nap-mix6i59400-F1-BUY;origins=TP;exch_fee=0.03"
    assert log.rows == [o, c]


def test_exactly_one_close_row_and_header_once(tmp_path: Path) -> None:
    p = tmp_path / "trades.csv"
    rec = closed_record("BTCUSDT")
    rec.entry_fills = [fill("a", "0.016", "59988.0", True, T)]
    rec.avg_entry = D("59988.0")
    TradeLog(p).write_open(rec, REG["BTCUSDT"], T)
    log2 = TradeLog(p)                                    # reopened: appends, no second header
    assert log2.find_open_row("BTCUSDT")["position_id"] == "mix6i59400"  # type: ignore[index]
    close(rec)
    rec.exit_fills = [fill("c", "0.016", "60590.0", False, T + 10)]
    rec.exit_price = D("60590.0")
    log2.write_close(rec, REG["BTCUSDT"])
    with pytest.raises(ValueError, match="already written"):
        log2.write_close(rec, REG["BTCUSDT"])
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("ts,event,position_id")
    assert [r["price"] for r in read(p)] == ["59988.0", "60590.0"]
    assert TradeLog(p).find_open_row("BTCUSDT") is None    # closed: nothing to adopt
    # the RiskManager rebuilds its ring from what we wrote
    rm = RiskManager(Settings(), REG)
    assert rm.rebuild_from_trades_csv(p) == 1 and rm.history("BTCUSDT")[0].reason == "TP_HIT"


def test_bad_rows_are_refused(tmp_path: Path) -> None:
    rec = closed_record("BTCUSDT")
    rec.entry_reason = "WHATEVER"
    with pytest.raises(ValueError, match="entry reason"):
        TradeLog(None).write_open(rec, REG["BTCUSDT"], T)
    with pytest.raises(ValueError, match="not closed"):
        TradeLog(None).write_close(closed_record("BTCUSDT"), REG["BTCUSDT"])
    p = tmp_path / "trades.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"expected the trades\.csv header"):
        TradeLog(p)


def test_in_memory_log_writes_no_file(tmp_path: Path) -> None:
    log = TradeLog(None)
    rec = closed_record()
    log.write_open(rec, REG[rec.symbol], T)
    assert len(log.rows) == 1 and list(tmp_path.iterdir()) == []
