"""The exchange's execution and open-order queries answer from indexes, exactly as the full scans would."""

from __future__ import annotations

import random
from decimal import Decimal

from bot.adapters.simulated.ledger import Ledger
from bot.ports import Execution

D = Decimal


def _ex(i: int, ts: float) -> Execution:
    return Execution(symbol="BTCUSDT", exec_id=f"e{i}", order_id=f"o{i}", order_link_id="", side="Buy",
                     exec_price=D("100"), exec_qty=D("0.001"), exec_fee=D("0.01"), fee_rate=D("0.0005"),
                     is_maker=False, ts=ts)


def test_since_equals_the_full_scan_on_nearly_sorted_times() -> None:
    rng = random.Random(5)
    led = Ledger(D("1000"))
    t = 1000.0
    for i in range(300):
        t += rng.choice([0.0, 0.3, 1.0, 5.0])
        ts = t - rng.choice([0.0, 0.0, 0.7, 2.0])  # a tape fill stamped before an earlier request's fill
        if i % 7 == 0:
            led.record_funding(_ex(i, ts))
        else:
            led.record_fill(_ex(i, ts), D(0))
        for since in (0.0, ts - 3.0, ts - 0.7, ts, ts + 1.0, rng.uniform(1000.0, t)):
            assert led.since(since) == [e for e in led.entries if e.ts >= since]


def test_since_after_direct_appends() -> None:
    led = Ledger(D("1000"))
    led.record_fill(_ex(0, 5.0), D(0))
    led.entries.extend([_ex(1, 3.0), _ex(2, 9.0)])  # bypassing record_*: the index is rebuilt
    led.record_fill(_ex(3, 4.0), D(0))
    for since in (0.0, 3.5, 4.0, 5.0, 9.0, 10.0):
        assert led.since(since) == [e for e in led.entries if e.ts >= since]


def test_open_orders_equal_the_scan_of_every_order() -> None:
    from sim_helpers import ScriptedMarket

    from bot.adapters.simulated.orders import FINAL
    from bot.ports import OrderRequest
    from replay.virtual_loop import run_virtual

    def limit(side: str, price: str, link: str) -> OrderRequest:
        return OrderRequest(symbol="BTCUSDT", side=side, order_type="Limit", qty=D("0.010"),  # type: ignore[arg-type]
                            price=D(price), order_link_id=link)

    async def run() -> None:
        m = ScriptedMarket.create()
        ex = m.ex
        await m.at(0.0, m.book([(59999.9, 1.0)], [(60000.0, 1.0)]), m.trade(60000.0, 0.001))
        rng = random.Random(3)
        most_open = 0
        for i in range(40):
            if rng.random() < 0.6:
                await ex.place_order(limit(rng.choice(["Buy", "Sell"]), rng.choice(["59990.0", "60010.0"]), f"o{i}"))
            else:
                open_ids = [o.order_link_id for o in await ex.get_open_orders()]
                if open_ids:
                    await ex.cancel_order("BTCUSDT", rng.choice(open_ids))
            if i % 9 == 8:  # a print through both prices fills what rests
                await m.at(m.now + 1.0, m.trade(59980.0, 0.05), m.trade(60020.0, 0.05, "Buy"))
            got = [o.order_link_id for o in await ex.get_open_orders()]
            assert got == [k for k, o in ex._orders.items() if o.status not in FINAL]
            most_open = max(most_open, len(got))
        assert most_open >= 2 and {"Filled", "Cancelled"} <= {o.status for o in ex._orders.values()}

    run_virtual(run())
