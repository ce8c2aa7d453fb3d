"""OrderBook's level application (slot sought beside the previous level's) against a plain binary search per level,
on deltas shaped like feeds send them: runs of adjacent levels in price order, either direction, with inserts,
updates, deletes of present and absent prices, repeated prices and invalid levels anywhere."""

from __future__ import annotations

import math
import random
from bisect import bisect_left

import pytest

from bot.storage.book import _apply_levels


def _plain(px: list[float], sz: list[float], nt: list[float], levels: list, gone: list[float]) -> str | None:
    for p, s in levels:
        if not (0.0 < p < math.inf and 0.0 <= s < math.inf):
            return f"invalid level ({p}, {s})"
        i = bisect_left(px, p)
        if px[i] == p:
            if s > 0.0:
                sz[i] = s
                nt[i] = p * s
            else:
                del px[i], sz[i], nt[i]
                gone.append(p)
        elif s > 0.0:
            px.insert(i, p)
            sz.insert(i, s)
            nt.insert(i, p * s)
    return None


def _delta(rng: random.Random, px: list[float]) -> list[tuple[float, float]]:
    grid = sorted({*px[:-1], *(round(rng.uniform(90.0, 110.0), 1) for _ in range(30))})
    out: list[tuple[float, float]] = []
    for _ in range(rng.choice([1, 2, 3, 6, 12])):
        k = rng.randrange(len(grid))
        run = grid[k : k + rng.randint(1, 12)]
        if rng.random() < 0.5:
            run = run[::-1]
        for p in run:
            out.append((p, rng.choice([0.0, 0.0, 0.5, 1.25, 7.0])))
    if out and rng.random() < 0.15:
        out.insert(rng.randrange(len(out)), rng.choice(out))  # a repeated price
    if out and rng.random() < 0.05:
        bad = rng.choice([(math.nan, 1.0), (0.0, 1.0), (-1.0, 0.0), (math.inf, 1.0), (100.0, math.nan),
                          (100.0, -1.0), (100.0, math.inf), (1e-300, 1.0), (1e300, 0.0)])
        out.insert(rng.randrange(len(out) + 1), bad)
    return out


@pytest.mark.parametrize("seed", range(10))
def test_levels_match_a_plain_binary_search(seed: int) -> None:
    rng = random.Random(seed)
    px = [*sorted({round(rng.uniform(95.0, 105.0), 1) for _ in range(40)}), math.nan]
    sz = [1.0] * (len(px) - 1)
    nt = [p * s for p, s in zip(px, sz, strict=False)]
    for _ in range(400):
        levels = _delta(rng, px)
        a = (px[:], sz[:], nt[:], [])
        b = (px[:], sz[:], nt[:], [])
        err_a = _apply_levels(a[0], a[1], a[2], levels, a[3])
        err_b = _plain(b[0], b[1], b[2], levels, b[3])
        assert err_a == err_b
        if err_a is None:
            assert repr(a) == repr(b)
            px, sz, nt = a[0], a[1], a[2]
            if len(px) < 3:
                px = [*sorted({*px[:-1], 99.9, 100.1}), math.nan]
                sz = [1.0] * (len(px) - 1)
                nt = [p * s for p, s in zip(px, sz, strict=False)]
