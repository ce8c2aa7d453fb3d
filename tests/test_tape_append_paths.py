"""The tape's array append and its element-wise appends (through memoryviews of the columns) store the same bits, also
across reallocations (each new buffer gets new views), and TradeBatches of every size up to past the small-batch
limit give the same tape whichever ingest path takes them."""

from __future__ import annotations

import numpy as np
import pytest

import bot.storage.ingest as ingest_mod
from bot.events import TradeBatch
from bot.storage.tape import TradeTape


def _state(tape: TradeTape) -> list[bytes]:
    n = tape.n
    return [tape.cum[: n + 1].tobytes(), tape.ts[:n].tobytes(), tape.price[:n].tobytes(), tape.size[:n].tobytes(),
            tape.notional[:n].tobytes(), tape.is_buy[:n].tobytes(),
            repr((tape.lo, tape.seq0, tape.ref, tape.last_ts, tape.last_price)).encode()]


def _chunks(seed: int, steps: int) -> list[tuple[list[float], list[float], list[float], list[bool], float]]:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0
    out = []
    for _ in range(steps):
        m = int(rng.integers(1, 40))
        ts = (t + np.cumsum(rng.exponential(0.05, m)) - rng.random(m) * 0.02).tolist()  # a few go backwards
        ps = (60_000.0 + np.round(rng.normal(0.0, 20.0, m), 1)).tolist()
        vs = np.round(rng.exponential(0.1, m), 3).clip(0.001).tolist()
        bs = (rng.random(m) < 0.5).tolist()
        t = max(ts)
        out.append((ts, ps, vs, bs, t + 0.5))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_element_appends_equal_the_array_append(seed: int) -> None:
    # small capacity: many reallocations (which rebase the prefix sums, so each pair appends the same chunks)
    arr, rows, one, ones = (TradeTape(20.0, capacity=64) for _ in range(4))
    for ts, ps, vs, bs, now in _chunks(seed, 150):
        arr.append(np.array(ts), np.array(ps), np.array(vs), np.array(bs), now)
        rows.append_rows(ts, ps, vs, bs, now)
        for x in zip(ts, ps, vs, bs, strict=True):
            one.append_one(*x, now)
            ones.append(*(np.array([c]) for c in x), now)
        for tape in (arr, rows, one, ones):
            tape.price_stats(now - 5.0, np.inf)  # a catch-up per chunk, as the analyzers cause
    assert _state(arr) == _state(rows)
    assert _state(one) == _state(ones)


@pytest.mark.parametrize("seed", [3, 4])
def test_batch_ingest_paths_give_the_same_tape(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    states = []
    for small in (0, 1000):  # array path only, plain-Python path for every batch
        monkeypatch.setattr(ingest_mod, "SMALL_ARRAY_BATCH", small)
        tape = TradeTape(20.0, capacity=64)
        tid = 0
        for ts, ps, vs, bs, now in _chunks(seed, 150):
            m = len(ts)
            b = TradeBatch("X", np.array(ts), np.array(ps), np.array(vs), np.array(bs),
                           np.arange(tid + 1, tid + m + 1, dtype=np.int64))
            tid += m
            assert ingest_mod.append_batch(tape, b, now) == (0, 0)
            tape.side_sums(now - 5.0, np.inf)
        states.append(_state(tape))
    assert states[0] == states[1]
