"""CloseReasonDetector (STRATEGY.md §9): why a position closed, from the evidence on its exit fills.

The reason comes from the fill that brought the size to zero (the terminal fill), by the priority table below; meta
lists every origin involved. Position age is never evidence. Only when fill origins are unavailable (a close rebuilt
from REST snapshots) does the exit price decide, with a tolerance. Pure functions; no state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from bot.execution.fills import Fill, vwap
from bot.execution.order_ids import CLOSE_TAGS, parse_link_id
from bot.risk import SideLike, side_dir


class CloseReason(StrEnum):
    TP_HIT = "TP_HIT"
    SL_HIT = "SL_HIT"
    TIME_EXIT = "TIME_EXIT"
    OPPOSITE_SIGNAL = "OPPOSITE_SIGNAL"
    REVERSE = "REVERSE"
    PROTECTION_FAILED = "PROTECTION_FAILED"
    MANUAL = "MANUAL"
    LIQUIDATION = "LIQUIDATION"
    EXTERNAL = "EXTERNAL"


_LIQ_EXEC_TYPES = {"BustTrade", "AdlTrade"}
_TP_STOP = {"TakeProfit", "PartialTakeProfit"}
_TP_CREATE = {"CreateByTakeProfit", "CreateByPartialTakeProfit"}
_SL_STOP = {"StopLoss", "PartialStopLoss"}
_SL_CREATE = {"CreateByStopLoss", "CreateByPartialStopLoss"}
FALLBACK_TOL_BPS = Decimal(10)


@dataclass(frozen=True, slots=True)
class CloseVerdict:
    reason: CloseReason
    source: str  # "evidence" (priority table) or "price" (tolerance fallback) or "intent"/"none"
    meta: dict[str, str] = field(default_factory=dict)


def _is_liquidation(f: Fill) -> bool:
    ct = f.create_type
    return (f.exec_type in _LIQ_EXEC_TYPES or ct == "CreateByLiq" or ct.startswith("CreateByTakeOver")
            or ct.startswith("CreateByAdl"))


def _is_adl(f: Fill) -> bool:
    return f.exec_type == "AdlTrade" or f.create_type.startswith("CreateByAdl")


def origin_of(f: Fill, prefix: str) -> str:
    """A short label of who/what created the order behind a fill (for meta)."""
    if _is_liquidation(f):
        return "ADL" if _is_adl(f) else "LIQ"
    if f.stop_order_type in _TP_STOP or f.create_type in _TP_CREATE:
        return "TP"
    if f.stop_order_type in _SL_STOP or f.create_type in _SL_CREATE:
        return "SL"
    link = parse_link_id(f.order_link_id, prefix)
    if link is not None:
        return f"bot:{link.kind}:{link.reason}"
    return f"other:{f.create_type or 'unknown'}"


def reason_from_fill(f: Fill, prefix: str) -> CloseReason:
    """The §9 priority table applied to one (terminal) fill."""
    if _is_liquidation(f):
        return CloseReason.LIQUIDATION
    if f.stop_order_type in _TP_STOP or f.create_type in _TP_CREATE:
        return CloseReason.TP_HIT
    if f.stop_order_type in _SL_STOP or f.create_type in _SL_CREATE:
        return CloseReason.SL_HIT
    link = parse_link_id(f.order_link_id, prefix)
    if link is not None and link.kind == "C" and link.reason in CLOSE_TAGS:
        return CloseReason(link.reason)
    return CloseReason.MANUAL


def reason_from_price(side: SideLike, e: Decimal, sl: Decimal | None, tp: Decimal | None, x: Decimal | None,
                      tick_size: Decimal, close_intent: str | None) -> CloseReason:
    """The tolerance fallback: exit VWAP ``x`` against TP/SL, else the pending intent, else EXTERNAL."""
    if x is not None:
        tol = max(FALLBACK_TOL_BPS / Decimal(10_000) * e, 2 * tick_size)
        if side_dir(side) == 1:
            if tp is not None and tp > 0 and x >= tp - tol:
                return CloseReason.TP_HIT
            if sl is not None and sl > 0 and x <= sl + tol:
                return CloseReason.SL_HIT
        else:
            if tp is not None and tp > 0 and x <= tp + tol:
                return CloseReason.TP_HIT
            if sl is not None and sl > 0 and x >= sl - tol:
                return CloseReason.SL_HIT
    if close_intent:
        return CloseReason(close_intent)
    return CloseReason.EXTERNAL


def detect(*, side: SideLike, e: Decimal, sl: Decimal | None, tp: Decimal | None, close_intent: str | None,
           exit_fills: Sequence[Fill], tick_size: Decimal, prefix: str, x: Decimal | None = None) -> CloseVerdict:
    """Reason for a closed position. ``exit_fills`` in arrival order, so the last is the terminal fill.

    ``x`` (exit VWAP) defaults to the VWAP of ``exit_fills``; pass it when the fills are unknown (REST snapshot).
    """
    known = [f for f in exit_fills if f.origin_known]
    if x is None:
        x = vwap(exit_fills)
    if known:
        terminal = known[-1]
        reason = reason_from_fill(terminal, prefix)
        origins = Counter(origin_of(f, prefix) for f in known)
        meta = {"origins": ",".join(f"{k}x{v}" if v > 1 else k for k, v in origins.items()),
                "terminal": terminal.order_link_id or terminal.order_id or terminal.exec_id}
        if any(_is_adl(f) for f in known):
            meta["adl"] = "1"
        if close_intent and close_intent != reason:
            meta["intent"] = close_intent
        return CloseVerdict(reason, "evidence", meta)
    reason = reason_from_price(side, e, sl, tp, x, tick_size, close_intent)
    meta = {"origins": "unavailable"}
    if x is not None:
        meta["exit_vwap"] = str(x)
    return CloseVerdict(reason, "price", meta)


class CloseReasonDetector:
    """Binds the bot prefix; ``detect`` is the §9 entry point used by the executor on every close."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def detect(self, *, side: SideLike, e: Decimal, sl: Decimal | None, tp: Decimal | None,
               close_intent: str | None, exit_fills: Sequence[Fill], tick_size: Decimal,
               x: Decimal | None = None) -> CloseVerdict:
        return detect(side=side, e=e, sl=sl, tp=tp, close_intent=close_intent, exit_fills=exit_fills,
                      tick_size=tick_size, prefix=self.prefix, x=x)
