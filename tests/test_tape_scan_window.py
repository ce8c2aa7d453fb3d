"""The exchange's price-window shortcut for quiet trade batches never says quiet when ``quiet`` would not."""

from __future__ import annotations

import math
import random

import numpy as np

from bot.adapters.simulated.tape_scan import bounds_of, quiet, watch_of


def test_price_window_implies_quiet() -> None:
    rng = random.Random(5)
    hits = 0
    for _ in range(20_000):
        orders = [] if rng.random() < 0.7 else [(rng.choice((1, -1)), rng.randint(990, 1010))]
        size = rng.choice((0.0, 1.0, -1.0))
        tp = rng.choice((0.0, rng.uniform(90, 110)))
        sl = rng.choice((0.0, rng.uniform(90, 110)))
        w = watch_of(orders, size, tp, sl, rng.uniform(80, 120))
        b = bounds_of(w)
        prices = np.array([rng.uniform(95, 105) for _ in range(rng.randint(1, 5))])
        if rng.random() < 0.01:
            prices[0] = rng.choice((math.nan, math.inf, -math.inf, 1e300))
        pl = prices.tolist()
        lo, hi = min(pl), max(pl)
        if b.lo < lo and hi < b.hi:
            hits += 1
            assert not orders
            assert quiet(prices, b, 10.0, 0.0) and quiet(prices, b, None, 0.1)
    assert hits > 1000


def test_window_empty_with_a_resting_order() -> None:
    b = bounds_of(watch_of([(1, 1000)], 1.0, 0.0, 0.0, 50.0))
    assert not b.lo < b.hi
