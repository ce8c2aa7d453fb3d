"""The analyzers' per-multiplier window caches follow a hot swap of the parameters they were filled from
(bot.cycle.hotswap copies only the attributes that differ between two fresh instances: never the caches)."""

from __future__ import annotations

from typing import Any

from bot.analysis.imbalance import ImbalanceAnalyzer
from bot.analysis.volume import VolumeAnalyzer
from bot.clock import FixedClock
from bot.cycle.hotswap import _state, plain, same
from bot.events import Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T0 = 1_700_000_010.0


def _swap(live: Any, old: Any, new: Any) -> list[str]:
    """What hotswap.apply_plan does to one component: copy the attributes two fresh builds disagree on."""
    a, b = _state(old) or {}, _state(new) or {}
    changed = [k for k in sorted(a.keys() | b.keys()) if not (k in a and k in b and same(a[k], b[k]))]
    for k in changed:
        assert plain(b[k]), k
        setattr(live, k, b[k])
    return changed


def _storage(settings: Settings) -> DataStorage:
    clock = FixedClock(T0)
    storage = DataStorage(settings, clock, [SYM])
    for i in range(200):
        ts = T0 - 100.0 + i * 0.5
        storage.apply(Trade(SYM, ts, 100_000.0 + (i % 7) * 0.1, 0.01, "Buy" if i % 3 else "Sell", f"t{i}"))
    return storage


def test_volume_windows_follow_a_swapped_short_window() -> None:
    old, new = Settings(), Settings(volume={"short_window_sec": 60.0})
    storage = _storage(old)
    live = VolumeAnalyzer(old, storage)
    before = live.compute(SYM, T0).short_window_sec
    assert "_short" in _swap(live, VolumeAnalyzer(old, storage), VolumeAnalyzer(new, storage))
    after = live.compute(SYM, T0).short_window_sec
    assert after == VolumeAnalyzer(new, storage).compute(SYM, T0).short_window_sec
    assert after != before


def test_imbalance_windows_follow_a_swapped_cluster_lookback() -> None:
    old, new = Settings(), Settings(imbalance={"cluster_lookback_minutes": 40.0})
    storage = _storage(old)
    reg = InstrumentRegistry.bundled()
    live = ImbalanceAnalyzer(old, storage, reg)
    before = live._windows(0.05)
    assert "_cluster_min" in _swap(live, ImbalanceAnalyzer(old, storage, reg), ImbalanceAnalyzer(new, storage, reg))
    after = live._windows(0.05)
    assert after == ImbalanceAnalyzer(new, storage, reg)._windows(0.05)
    assert after[1] != before[1]
