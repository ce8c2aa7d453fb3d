"""§9 CloseReasonDetector: every priority row, meta, and the price-tolerance fallback."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.execution.close_reasons import CloseReason as R
from bot.execution.close_reasons import CloseReasonDetector, detect
from bot.execution.fills import Fill
from bot.execution.order_ids import format_link_id, make_position_id, parse_link_id

TICK = D("0.10")
DET = CloseReasonDetector("nap")


def fill(link: str = "", create: str = "CreateByUser", stop: str = "", exec_type: str = "Trade",
         qty: str = "0.01", price: str = "60000", known: bool = True) -> Fill:
    return Fill(exec_id=f"x{link}{create}{stop}{exec_type}", qty=D(qty), price=D(price), is_maker=False,
                fee=D(0), ts=1.0, order_link_id=link, create_type=create, stop_order_type=stop, exec_type=exec_type,
                origin_known=known)


# terminal fill evidence → reason (priority order: the first matching row wins)
ROWS = [
    # priority 1: liquidation / ADL
    (fill(exec_type="BustTrade"), R.LIQUIDATION),
    (fill(exec_type="AdlTrade", stop="TakeProfit"), R.LIQUIDATION),      # beats a TP tag
    (fill(create="CreateByLiq"), R.LIQUIDATION),
    (fill(create="CreateByTakeOver_PassThrough"), R.LIQUIDATION),
    (fill(create="CreateByAdl_PassThrough"), R.LIQUIDATION),
    # priority 2: take profit
    (fill(stop="TakeProfit"), R.TP_HIT),
    (fill(stop="PartialTakeProfit"), R.TP_HIT),
    (fill(create="CreateByTakeProfit"), R.TP_HIT),
    (fill(create="CreateByPartialTakeProfit", link="nap-abc-C1-TIME_EXIT"), R.TP_HIT),  # beats a bot tag
    # priority 3: stop loss
    (fill(stop="StopLoss"), R.SL_HIT),
    (fill(stop="PartialStopLoss"), R.SL_HIT),
    (fill(create="CreateByStopLoss"), R.SL_HIT),
    (fill(create="CreateByPartialStopLoss"), R.SL_HIT),
    # priority 4: bot close tags
    (fill(link="nap-abc-C1-TIME_EXIT"), R.TIME_EXIT),
    (fill(link="nap-abc-C2-OPPOSITE_SIGNAL"), R.OPPOSITE_SIGNAL),
    (fill(link="nap-abc-C1-REVERSE"), R.REVERSE),
    (fill(link="nap-abc-C1-PROTECTION_FAILED"), R.PROTECTION_FAILED),
    (fill(link="nap-abc-C1-SL_HIT"), R.SL_HIT),
    (fill(link="nap-abc-C1-TP_HIT"), R.TP_HIT),
    (fill(link="nap-abc-C3-PF"), R.PROTECTION_FAILED),                   # short form
    # priority 5: anything else
    (fill(link=""), R.MANUAL),
    (fill(link="web-123"), R.MANUAL),
    (fill(link="napx-abc-C1-TIME_EXIT"), R.MANUAL),                      # another prefix
    (fill(link="nap-abc-E1-BUY"), R.MANUAL),                             # a bot entry tag is no close tag
]


@pytest.mark.parametrize(("terminal", "reason"), ROWS)
def test_priority_table(terminal: Fill, reason: R) -> None:
    v = DET.detect(side=1, e=D(60000), sl=D(59880), tp=D(60600), close_intent=None, exit_fills=[terminal],
                   tick_size=TICK)
    assert v.reason is reason and v.source == "evidence"


def test_terminal_fill_decides_and_meta_lists_all_origins() -> None:
    # a bot TIME_EXIT close partly filled, then the exchange TP took the rest: TP_HIT, both origins in meta
    fills = [fill(link="nap-abc-C1-TIME_EXIT", qty="0.004"), fill(stop="TakeProfit", qty="0.006")]
    v = DET.detect(side=1, e=D(60000), sl=D(59880), tp=D(60600), close_intent="TIME_EXIT", exit_fills=fills,
                   tick_size=TICK)
    assert v.reason is R.TP_HIT
    assert v.meta["origins"] == "bot:C:TIME_EXIT,TP" and v.meta["intent"] == "TIME_EXIT"
    reversed_ = DET.detect(side=1, e=D(60000), sl=D(59880), tp=D(60600), close_intent="TIME_EXIT",
                           exit_fills=fills[::-1], tick_size=TICK)
    assert reversed_.reason is R.TIME_EXIT and "intent" not in reversed_.meta


def test_adl_noted_in_meta() -> None:
    v = DET.detect(side=-1, e=D(100), sl=None, tp=None, close_intent=None, exit_fills=[fill(exec_type="AdlTrade")],
                   tick_size=TICK)
    assert v.reason is R.LIQUIDATION and v.meta["adl"] == "1" and v.meta["origins"] == "ADL"


def test_position_age_is_not_evidence() -> None:
    # a manual close long after the lifetime is still MANUAL (no age input exists at all)
    v = DET.detect(side=1, e=D(100), sl=D(99), tp=D(101), close_intent=None, exit_fills=[fill(link="")],
                   tick_size=TICK)
    assert v.reason is R.MANUAL


# price-tolerance fallback: e = 60000 → tol = max(10 bps·e = 60, 2·tick = 0.2) = 60
FALLBACK = [
    # side, x, close_intent, expected
    (1, "60540", None, R.TP_HIT),            # TP 60600 − 60 = 60540 → TP
    (1, "60539.9", None, R.EXTERNAL),
    (1, "59940", None, R.SL_HIT),            # SL 59880 + 60
    (1, "59000", None, R.SL_HIT),            # slippage beyond SL is accepted
    (1, "59940.1", "TIME_EXIT", R.TIME_EXIT),  # inside the band → the pending intent
    (-1, "59460", None, R.TP_HIT),           # SHORT: TP 59400 + 60
    (-1, "60060", None, R.SL_HIT),           # SHORT: SL 60120 − 60
    (-1, "61000", None, R.SL_HIT),
    (-1, "60000", "OPPOSITE_SIGNAL", R.OPPOSITE_SIGNAL),
    (-1, "60000", None, R.EXTERNAL),
]


@pytest.mark.parametrize(("side", "x", "intent", "reason"), FALLBACK)
def test_price_fallback(side: int, x: str, intent: str | None, reason: R) -> None:
    sl, tp = (D(59880), D(60600)) if side == 1 else (D(60120), D(59400))
    v = DET.detect(side=side, e=D(60000), sl=sl, tp=tp, close_intent=intent, exit_fills=[], tick_size=TICK, x=D(x))
    assert v.reason is reason and v.source == "price"


def test_fallback_tolerance_uses_two_ticks_when_larger() -> None:
    # e = 1, tick 0.01 → 10 bps = 0.001 < 2 ticks = 0.02
    kw = dict(side=1, e=D(1), sl=D("0.98"), tp=D("1.05"), close_intent=None, tick_size=D("0.01"), prefix="nap")
    assert detect(exit_fills=[], x=D("1.03"), **kw).reason is R.TP_HIT
    assert detect(exit_fills=[], x=D("1.0299"), **kw).reason is R.EXTERNAL


def test_fallback_when_origins_unknown_uses_fill_vwap() -> None:
    fills = [fill(qty="1", price="60600", known=False), fill(qty="1", price="60580", known=False)]
    v = DET.detect(side=1, e=D(60000), sl=D(59880), tp=D(60600), close_intent=None, exit_fills=fills, tick_size=TICK)
    assert v.reason is R.TP_HIT and v.source == "price" and v.meta["exit_vwap"] == "60590"


def test_no_fills_no_price() -> None:
    v = DET.detect(side=1, e=D(60000), sl=D(59880), tp=D(60600), close_intent=None, exit_fills=[], tick_size=TICK)
    assert v.reason is R.EXTERNAL


# ------------------------------------------------------------------------------------------------ order ids
def test_link_ids_roundtrip_and_fit_36() -> None:
    pid = make_position_id(1_765_200_549.412, 7)
    assert len(pid) == 10
    for reason in ("PROTECTION_FAILED", "OPPOSITE_SIGNAL", "TIME_EXIT"):
        s = format_link_id("nap", pid, "C", 12, reason)
        assert len(s) <= 36
        p = parse_link_id(s, "nap")
        assert p is not None and (p.position_id, p.kind, p.n, p.reason) == (pid, "C", 12, reason)
    long_prefix = format_link_id("naporrr_bot1", pid, "C", 1, "PROTECTION_FAILED")
    assert long_prefix.endswith("-C1-PF") and len(long_prefix) <= 36
    assert parse_link_id(long_prefix, "naporrr_bot1").reason == "PROTECTION_FAILED"
    with pytest.raises(ValueError, match="36"):
        format_link_id("naporrr_bot1", pid + "x" * 20, "C", 1, "TP_HIT")
    assert parse_link_id("nap-abc-X1-BUY", "nap") is None
    assert make_position_id(1.0, 1) != make_position_id(1.0, 2)
