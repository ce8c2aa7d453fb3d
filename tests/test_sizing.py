"""§7.1 sizing and §7.2 price grid against the REAL Bybit instruments-info (bundled)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.instruments import InstrumentRegistry
from bot.risk import RiskManager
from settings import Settings

REG = InstrumentRegistry.bundled()
# symbol → a realistic reference price (2026-08 magnitudes); 1000PEPEUSDT has a 1e-6 tick and a 100-unit step
REF = {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000"), "SOLUSDT": Decimal("150"),
       "DOGEUSDT": Decimal("0.12"), "1000PEPEUSDT": Decimal("0.0123456")}
D = Decimal


def rm(**kw: dict) -> RiskManager:
    return RiskManager(Settings(**kw), REG)


def test_low_priced_symbol_is_really_tiny_tick() -> None:
    inst = REG["1000PEPEUSDT"]
    assert inst.tick_size == D("0.0000010") and inst.qty_step == D("100")


@pytest.mark.parametrize(("sym", "P", "expected"), [
    # Q = 1000 USDT, 10x, 10 % margin → N = min(1000, 1000·1.0) = 1000 USDT
    ("BTCUSDT", D("60000"), D("0.016")),       # floor_step(0.016666) on a 0.001 step
    ("ETHUSDT", D("3000"), D("0.33")),
    ("SOLUSDT", D("150"), D("6.6")),
    ("DOGEUSDT", D("0.12"), D("8333")),
    ("1000PEPEUSDT", D("0.0123456"), D("81000")),  # 81000.8 floored to the 100 step
])
def test_size_default_settings(sym: str, P: Decimal, expected: Decimal) -> None:
    d = rm().size(sym, P, D(1000), D(1000))
    assert d.ok and d.qty == expected
    assert REG[sym].on_step(d.qty)
    assert d.margin_needed == expected * P / 10


def test_below_exchange_minimum_refused_when_min_exceeds_cap() -> None:
    # Q = 55: N = 55 → 0.000 BTC; q_min = 0.001 BTC = 60 USDT > cap 55 → refuse
    d = rm().size("BTCUSDT", D("60000"), D(55), D(55))
    assert not d.ok and d.reason == "below_exchange_minimum" and d.qty == 0


def test_minimum_used_when_under_cap() -> None:
    # same, but with a 2x notional cap (110 USDT): the 60-USDT minimum is allowed
    d = rm(risk={"max_position_notional_pct": 2.0}, trading={"base_order_pct": 0.1, "leverage": 10}).size(
        "BTCUSDT", D("60000"), D(55), D(55))
    assert d.ok and d.qty == D("0.001")


def test_min_notional_drives_q_min_for_doge() -> None:
    # fixed 0.4 USDT margin x10 = 4 USDT < 5 USDT min notional → q_min = ceil_step(5/0.12) = 42 DOGE (5.04 USDT ≤ cap)
    d = rm(trading={"base_order_usdt": 0.4}).size("DOGEUSDT", D("0.12"), D(1000), D(1000))
    assert d.ok and d.qty == D(42)
    assert d.qty * D("0.12") >= REG["DOGEUSDT"].min_notional


def test_insufficient_margin() -> None:
    d = rm().size("ETHUSDT", D("3000"), D(1000), D(50))   # needs 99 USDT of margin
    assert not d.ok and d.reason == "insufficient_margin"
    assert d.margin_needed == D("0.33") * 3000 / 10


def test_fixed_usdt_margin_and_cap() -> None:
    # 500 USDT x10 = 5000 > cap 1000·1.0 → capped at 1000
    d = rm(trading={"base_order_usdt": 500.0}).size("SOLUSDT", D("150"), D(1000), D(1000))
    assert d.qty == D("6.6")


def test_max_order_qty_caps() -> None:
    d = rm(risk={"max_position_notional_pct": 100.0}, trading={"leverage": 50, "base_order_pct": 1.0}).size(
        "BTCUSDT", D("1"), D(10_000_000), D(10_000_000))
    assert d.qty == REG["BTCUSDT"].max_order_qty


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="positive"):
        rm().size("BTCUSDT", D(0), D(1000), D(1000))
    with pytest.raises(KeyError, match="unknown symbol"):
        rm().size("NOPEUSDT", D(1), D(1000), D(1000))
    assert rm().size("BTCUSDT", D(60000), D(0), D(0)).reason == "insufficient_margin"


_R = rm()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(sym=st.sampled_from(sorted(REF)), pf=st.floats(0.2, 5.0), q=st.floats(1.0, 1e6), mf=st.floats(0.0, 1.2))
def test_size_properties(sym: str, pf: float, q: float, mf: float) -> None:
    inst = REG[sym]
    P = inst.round_tick(REF[sym] * D(repr(pf)))
    Q = D(repr(q)).quantize(D("0.01"))
    M = (Q * D(repr(mf))).quantize(D("0.01"))
    d = _R.size(sym, P, Q, M)
    cap = Q * D("1.0")
    q_min = max(inst.min_order_qty, inst.ceil_step(inst.min_notional / P))
    if d.ok:
        assert inst.on_step(d.qty)
        assert d.qty >= inst.min_order_qty and d.qty * P >= inst.min_notional
        assert d.qty <= inst.max_order_qty
        assert d.qty * P <= cap
        assert d.qty * P / 10 <= M
        if d.qty > q_min:  # not the minimum override: never above the margin·leverage notional
            assert d.qty * P <= Q * D("0.1") * 10
    elif d.reason == "below_exchange_minimum":
        assert q_min * P > cap
    else:
        assert d.reason == "insufficient_margin" and d.margin_needed > M


@settings(max_examples=300, deadline=None, derandomize=True)
@given(sym=st.sampled_from(sorted(REF)), pf=st.floats(0.2, 5.0), sl=st.floats(0.0, 0.01), tp=st.floats(0.0, 0.05),
       side=st.sampled_from([1, -1]))
def test_sltp_prices_on_grid_and_one_tick_away(sym: str, pf: float, sl: float, tp: float, side: int) -> None:
    inst = REG[sym]
    # e is a VWAP: generally off the tick grid
    e = REF[sym] * D(repr(pf))
    slp, tpp = _R.sltp_prices(sym, side, e, sl, tp)
    assert inst.on_tick(slp) and inst.on_tick(tpp)
    if side == 1:
        assert slp <= e - inst.tick_size and tpp >= e + inst.tick_size
    else:
        assert slp >= e + inst.tick_size and tpp <= e - inst.tick_size
