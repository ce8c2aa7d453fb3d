"""The tape's two prefix-sum catch-up paths (Python floats for a few rows, numpy for more) and its two append paths
(one trade, a list of trades) store the same bits; views slice the same columns."""

from __future__ import annotations

import numpy as np
import pytest

import bot.storage.tape as tape_mod
from bot.storage.tape import TradeTape


def _feed(tape: TradeTape, rng: np.random.Generator, steps: int, one: str) -> list[object]:
    """Random chunks with a query after each (so each chunk is one catch-up); returns every query's result.
    ``one``: "chunk" appends a chunk at once, "rows"/"one" a trade at a time with append_rows/append_one."""
    out: list[object] = []
    t = 1_700_000_000.0
    for _ in range(steps):
        m = int(rng.integers(1, 30))
        ts = (t + np.cumsum(rng.exponential(0.05, m)) - rng.random(m) * 0.02).tolist()  # a few go backwards
        ps = (60_000.0 + np.round(rng.normal(0.0, 20.0, m), 1)).tolist()
        vs = np.round(rng.exponential(0.1, m), 3).clip(0.001).tolist()
        bs = (rng.random(m) < 0.5).tolist()
        t = max(ts)
        now = t + 0.5
        if one == "one":
            for x in zip(ts, ps, vs, bs, strict=True):
                tape.append_one(*x, now)
        elif one == "rows":
            for t1, p1, v1, b1 in zip(ts, ps, vs, bs, strict=True):
                tape.append_rows([t1], [p1], [v1], [b1], now)
        else:
            tape.append_rows(ts, ps, vs, bs, now)
        for w in (1.0, 5.0, 30.0):
            out.append(tape.price_stats(now - w, np.inf))
            out.append(tape.side_sums(now - w, np.inf))
        out.append(tape.side_sums_multi([now - 2.0, now - 10.0], np.inf))
    return out


def _state(tape: TradeTape) -> list[bytes]:
    n = tape.n
    return [tape.cum[: n + 1].tobytes(), tape.ts[:n].tobytes(), tape.price[:n].tobytes(),
            tape.notional[:n].tobytes(), tape.is_buy[:n].tobytes(), repr((tape.lo, tape.ref, tape.last_ts)).encode()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_and_numpy_catch_up_give_the_same_bits(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = []
    for small in (0, 10, 1000):  # numpy only, the default split, Python floats only
        monkeypatch.setattr(tape_mod, "SMALL_SYNC", small)
        tape = TradeTape(20.0, capacity=64)  # small: many reallocations (catch-ups from row 0)
        res = _feed(tape, np.random.default_rng(seed), 120, "chunk")
        runs.append((repr(res), _state(tape)))
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("seed", [3, 4])
def test_append_one_equals_append_rows(seed: int) -> None:
    a, b = TradeTape(20.0, capacity=64), TradeTape(20.0, capacity=64)
    ra = _feed(a, np.random.default_rng(seed), 80, "one")
    rb = _feed(b, np.random.default_rng(seed), 80, "rows")
    assert repr(ra) == repr(rb)
    assert _state(a) == _state(b)
    assert (a.last_price, a.last_seq(), len(a)) == (b.last_price, b.last_seq(), len(b))


def test_view_columns_are_read_only_slices() -> None:
    tape = TradeTape(1e9)
    tape.append_rows([1.0, 2.0, 3.0], [10.0, 11.0, 12.0], [1.0, 2.0, 3.0], [True, False, True], 3.0)
    v = tape.between(2.0, 10.0)
    assert len(v) == 2
    assert v.price.tolist() == [11.0, 12.0] and v.notional.tolist() == [22.0, 36.0]
    assert v.seq.tolist() == [2, 3] and v.is_buy.tolist() == [False, True] and v.ts.tolist() == [2.0, 3.0]
    assert not v.size.flags.writeable
    with pytest.raises(AttributeError):
        v.x = 1  # type: ignore[attr-defined]
