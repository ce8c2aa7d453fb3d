"""Storage answers shared within one evaluation give the bits of separate queries: the §5.7 frequency counts taken from
the momentum query, and the ImbalanceAnalyzer's Bayesian update reading the VolumeAnalyzer's ``trades_after_seq``
view (``evaluate`` passes it on)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer, evaluate
from bot.analysis.results import UNKNOWN, FrequencyStats
from bot.analysis.volume import classify_frequency
from bot.clock import FixedClock
from bot.events import BookSnapshot, Trade
from bot.instruments import InstrumentRegistry
from bot.storage import DataStorage
from settings import Settings

SYM = "BTCUSDT"
T0 = 1_700_000_010.0
INSTRUMENTS = InstrumentRegistry.bundled()


def _frequency_by_count_between(storage: Any, settings: Any, now: float) -> FrequencyStats:
    """§5.7 as it was computed before: two count_between queries."""
    v = settings.volume
    base_w, cur_w = float(v.frequency_baseline_window_sec), float(v.frequency_current_window_sec)
    n_base = storage.count_between(SYM, now - base_w, now)
    base = n_base * 60.0 / base_w
    cur = storage.count_between(SYM, now - cur_w, np.nextafter(now, np.inf)) * 60.0 / cur_w
    if n_base < int(v.frequency_min_baseline_trades) or base <= 0:
        return FrequencyStats(regime=UNKNOWN, ratio=None, baseline_per_min=base, current_per_min=cur)
    ratio = cur / base
    regime = classify_frequency(
        ratio,
        float(v.frequency_very_high_multiplier),
        float(v.frequency_high_multiplier),
        float(v.frequency_very_low_multiplier),
    )
    return FrequencyStats(regime=regime, ratio=ratio, baseline_per_min=base, current_per_min=cur)


class _Unfed(ImbalanceAnalyzer):
    """Always queries storage itself, whatever it is handed."""

    def compute(self, sym: str, now: float, sigma: float, fed: Any = None) -> Any:
        return super().compute(sym, now, sigma, None)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"adaptive": {"enable_adaptive_windows": False}},
        {"volume": {"frequency_min_baseline_trades": 3, "frequency_baseline_window_sec": 120.0}},
        {"ohara": {"bayesian_min_trades": 10, "bayesian_max_trades": 10}},
    ],
)
def test_shared_answers_give_the_separate_query_results(overrides: dict[str, Any]) -> None:
    """Random tapes with trades stamped exactly at now, at the frequency window edges and after now, evaluated at
    irregular instants (long gaps included, so windows empty out)."""
    settings = Settings(**overrides)
    clock = FixedClock(T0)
    storage = DataStorage(settings, clock, [SYM])
    vol = VolumeAnalyzer(settings, storage)
    fed_imb = ImbalanceAnalyzer(settings, storage, INSTRUMENTS)
    unfed_imb = _Unfed(settings, storage, INSTRUMENTS)
    rng = np.random.default_rng(5)
    enc = msgspec.msgpack.encode
    now, n, used = T0, 0, 0
    for step in range(300):
        now += float(rng.choice([0.5, 3.0, 8.0, 8.0, 40.0, 400.0]))
        stamps = [now, now - 30.0, now - 300.0, now - 120.0, now - 1.0]
        stamps += (now - rng.uniform(0.0, 400.0, int(rng.integers(0, 15)))).tolist()
        if step % 4 == 0:
            stamps.append(now + 0.25)  # ingested ahead of the evaluation instant
        for ts in sorted(stamps):
            n += 1
            clock.set(max(clock.now(), ts))
            side = "Buy" if rng.random() < 0.5 else "Sell"
            size = float(rng.choice([0.001, 0.01, 0.2, 1.5]))
            price = round(100_000.0 + float(rng.integers(-50, 50)) * 0.1, 1)
            storage.apply(Trade(SYM, ts, price, size, side, f"t{n}"))  # type: ignore[arg-type]
        mid = 100_000.0 + float(rng.integers(-50, 50)) * 0.1
        bids = [(round(mid - 0.1 * (k + 1), 1), float(rng.uniform(0.1, 3.0))) for k in range(20)]
        asks = [(round(mid + 0.1 * (k + 1), 1), float(rng.uniform(0.1, 3.0))) for k in range(20)]
        clock.set(max(clock.now(), now - 0.5))
        storage.apply(BookSnapshot(SYM, now - 0.5, bids, asks, step + 1))
        clock.set(max(clock.now(), now))

        va = vol.compute(SYM, now)
        fed = vol.trades_fed(SYM)
        assert fed is not None
        st = fed_imb._state.get(SYM)
        used += st is not None and st.trade_cursor == fed[0]
        a = fed_imb.compute(SYM, now, va.recent_volatility, fed)
        b = unfed_imb.compute(SYM, now, va.recent_volatility)
        assert a.valid and enc(a) == enc(b), step
        assert enc(va.frequency) == enc(_frequency_by_count_between(storage, settings, now)), step
    assert used > 100  # the shared view was really taken, not the fallback query


def test_evaluate_queries_the_new_trades_once() -> None:
    """With the Bayesian cursor at the size ring's, one evaluation asks storage for the new trades once."""
    settings = Settings()
    clock = FixedClock(T0)
    storage = DataStorage(settings, clock, [SYM])
    vol, imb = VolumeAnalyzer(settings, storage), ImbalanceAnalyzer(settings, storage, INSTRUMENTS)
    gen = SignalGenerator(settings)
    calls: list[int] = []
    query = storage.trades_after_seq

    def counted(sym: str, seq: int) -> Any:
        calls.append(seq)
        return query(sym, seq)

    storage.trades_after_seq = counted  # type: ignore[method-assign]
    bids = [(round(99_999.9 - 0.1 * k, 1), 1.0) for k in range(20)]
    asks = [(round(100_000.1 + 0.1 * k, 1), 1.0) for k in range(20)]
    now = T0
    for step in range(5):
        now += 8.0
        for k in range(6):
            clock.set(now - 6.0 + k)
            side = "Buy" if k % 2 else "Sell"
            storage.apply(Trade(SYM, now - 6.0 + k, 100_000.0, 0.5, side, f"t{step}-{k}"))  # type: ignore[arg-type]
        clock.set(now)
        storage.apply(BookSnapshot(SYM, now, bids, asks, step + 1))
        calls.clear()
        evaluate(SYM, now, storage, vol, imb, gen)  # a valid book: both analyzers run
        assert len(calls) == 1, calls
