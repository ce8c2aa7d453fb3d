"""The VolumeAnalyzer's cheaper paths give the bits of the plain ones: row-wise reductions, the tape split from the
momentum count and the confirmation prices from the short-window view."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from bot.analysis.volume import VolumeAnalyzer
from bot.clock import FixedClock
from bot.events import Trade
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T0 = 1_700_000_010.0


def test_row_wise_reduction_equals_two_1d_reductions() -> None:
    """The size ring and the large-order sums rely on it: each row of a C-contiguous (2, k) slice is summed on its
    own by numpy's pairwise loop, exactly as the 1-D reduction of that row."""
    rng = np.random.default_rng(0)
    buf = np.empty((2, 4000))
    for _ in range(3000):
        n = int(rng.integers(1, 4000))
        lo = int(rng.integers(0, 4000 - n + 1))
        x = rng.pareto(1.6, 4000) * rng.uniform(1.0, 1e4)
        buf[0] = x
        buf[1] = x * x
        got = np.add.reduce(buf[:, lo : lo + n], axis=1).tolist()
        assert got == [float(np.add.reduce(x[lo : lo + n])), float(np.add.reduce((x * x)[lo : lo + n]))]
        mask = np.empty((2, n), dtype=bool)
        np.greater(x[:n], np.median(x[:n]), mask[0])
        np.logical_and(mask[0], rng.random(n) < 0.5, mask[1])
        got = np.add.reduce(x[:n] * mask, axis=1).tolist()
        assert got == [float(np.add.reduce(x[:n] * mask[0])), float(np.add.reduce(x[:n] * mask[1]))]


class _Plain(VolumeAnalyzer):
    """The same analyzer with the shortcuts off: the tape split by searchsorted, the confirmation from last_n."""

    def _tape(self, tv: Any, t_half: float, n_half: int) -> Any:
        return super()._tape(tv, t_half, -1)

    def _confirmation(self, sym: str, z: float, tv: Any, newest: int) -> Any:
        return super()._confirmation(sym, z, tv, -1)


@pytest.mark.parametrize("overrides", [{}, {"adaptive": {"enable_adaptive_windows": False}}])
def test_shortcuts_give_the_plain_results(overrides: dict[str, Any]) -> None:
    """Random tapes with trades stamped exactly at the half-window edge, exactly at now and after now (the view then
    ends before the tape's newest trade), evaluated at irregular instants."""
    settings = Settings(**overrides)
    clock = FixedClock(T0)
    storage = DataStorage(settings, clock, [SYM])
    fast, plain = VolumeAnalyzer(settings, storage), _Plain(settings, storage)
    probe = VolumeAnalyzer(settings, storage)  # tells the short window of an instant, without touching fast's state
    rng = np.random.default_rng(2)
    enc = msgspec.msgpack.encode
    now, n, checked = T0, 0, 0
    for step in range(400):
        now += float(rng.choice([0.5, 3.0, 8.0, 8.0, 40.0]))
        short = probe.compute(SYM, now).short_window_sec  # the edges this instant will use (σ before the new trades)
        stamps = [now - short / 2.0, now, now - 1.0, now - 7.5, now - 15.0, now - 22.5]
        stamps += (now - rng.uniform(0.0, 60.0, int(rng.integers(0, 12)))).tolist()
        late = step % 5 == 0
        if late:
            stamps.append(now + 0.25)  # ingested ahead of the evaluation instant
        for ts in sorted(stamps):  # storage clamps a stamp older than the newest trade up to it
            n += 1
            clock.set(max(clock.now(), ts))
            side = "Buy" if rng.random() < 0.5 else "Sell"
            size = float(rng.choice([0.001, 0.01, 0.2, 1.5]))
            price = round(100_000.0 + float(rng.integers(-50, 50)) * 0.1, 1)
            storage.apply(Trade(SYM, ts, price, size, side, f"t{n}"))  # type: ignore[arg-type]
        clock.set(now)
        a, b = fast.compute(SYM, now), plain.compute(SYM, now)
        assert enc(a) == enc(b), step
        checked += 1
    assert checked == 400
