"""Which position record an order update or an execution belongs to (STRATEGY.md §9 attribution)."""

from __future__ import annotations

from bot.execution.order_ids import parse_link_id
from bot.execution.positions import PositionBook, PositionRecord
from bot.ports import Execution
from bot.risk import side_dir


def record_for_order(book: PositionBook, prefix: str, symbol: str, link_id: str) -> PositionRecord | None:
    """The record an order update belongs to: the one its orderLinkId names, else the symbol's live one."""
    link = parse_link_id(link_id, prefix)
    if link is not None:
        rec = book.by_pid(link.position_id)
        if rec is not None:
            return rec
    return book.live(symbol)


def record_for_execution(book: PositionBook, prefix: str, ex: Execution) -> PositionRecord | None:
    """Our orderLinkId names the record (live or finished). A fill without one (exchange TP/SL, liquidation,
    manual) goes to the live record only if it is not older on the exchange than that record's first fill (or
    adopting snapshot): a late exit of an earlier position must not land on its successor."""
    link = parse_link_id(ex.order_link_id, prefix)
    if link is not None:
        rec = book.by_pid(link.position_id)
        if rec is not None:
            return rec
    rec = book.live(ex.symbol)
    if rec is None or ex.exec_type == "Funding":
        return rec
    if rec.exchange_since is None:
        return rec if side_dir(ex.side) == rec.side else None  # an exit of a record that holds nothing yet
    return rec if ex.ts >= rec.exchange_since else None
