"""prefix_rows: the finite-notional loop (buy/sell split without float × bool) stores the bits of the literal loop
(numpy's terms), and an infinite notional takes the literal loop."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bot.storage.prefix_rows import _prefix_rows_literal, prefix_rows


def _bits(xs: list[float]) -> bytes:
    return struct.pack(f"{len(xs)}d", *xs)


@pytest.mark.parametrize("seed", range(6))
def test_fast_loop_equals_literal_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        k = int(rng.integers(1, 30))
        pl = (60_000.0 + np.round(rng.normal(0.0, 20.0, k + 1), 1)).tolist()
        pl[1] = pl[0] if rng.random() < 0.3 else pl[1]  # a zero |Δp|
        nots = (rng.exponential(500.0, k) + 1e-3).tolist()
        buys = (rng.random(k) < rng.random()).tolist()
        base = rng.normal(0.0, 1e6, 6).tolist() if rng.random() < 0.8 else [0.0] * 6
        ref = float(pl[int(rng.integers(0, k + 1))])
        assert _bits(prefix_rows(pl, buys, nots, base, ref)) == _bits(_prefix_rows_literal(pl, buys, nots, base, ref))


def test_infinite_notional_takes_the_literal_loop() -> None:
    pl, buys, base = [1.0, 2.0, 3.0], [True, False], [0.0] * 6
    nots = [float("inf"), 5.0]
    got = prefix_rows(pl, buys, nots, base, 1.0)
    want = _prefix_rows_literal(pl, buys, nots, base, 1.0)
    assert repr(got) == repr(want) and got[2] != got[2]  # the buy's n − n is NaN, as numpy's
