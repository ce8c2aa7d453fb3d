"""signals.csv (STRATEGY.md §11) and the UTC timestamp helper."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from bot.analysis.signals import Signal
from bot.signal_log import COLUMNS, SignalLog, format_row
from bot.timefmt import iso_utc

# copied from STRATEGY.md §11
SPEC_COLUMNS = [
    "ts", "symbol", "action", "raw_action", "strength", "raw_strength", "composite", "ema", "threshold", "imbalance",
    "momentum", "bayesian", "large_orders", "frequency", "vol_confirm", "volume_z", "spread_bps", "volatility",
    "ohara_score", "cooldown_active", "reason", "accepted",
]


def sig(**kw: object) -> Signal:
    base = Signal(
        symbol="BTCUSDT", ts=1765200549.412, action="BUY", strength=3, raw_action="BUY", raw_strength=3, dir=1,
        composite=0.63412345, ema=0.6, threshold=0.4, reason="confirmed", cooldown_active=False,
        cooldown_until=1765200729.412, ohara_score=5, effective_imbalance=31.44444, momentum_score=-65.66666,
        factors={}, spread_bps=1.23456, volatility=0.5, frequency_regime="NORMAL", volume_z=-1.5,
        acceleration=0.0, spike=False, confirmation="NEUTRAL", confirmation_direction=0, bayesian_signal="BULLISH",
        bayesian_p=0.7, informed_direction="STRONG_BUY", range_pct=0.5, atr_pct=0.01, std_pct=0.1,
    )
    return msgspec.structs.replace(base, **kw)


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1765200549.412, "2025-12-08T13:29:09.412Z"),
        (1765200549.4124, "2025-12-08T13:29:09.412Z"),
        (1765200549.4126, "2025-12-08T13:29:09.413Z"),
        (59.9996, "1970-01-01T00:01:00.000Z"),  # rounding carries into the seconds
        (951782400.5, "2000-02-29T00:00:00.500Z"),
    ],
)
def test_iso_utc(ts: float, text: str) -> None:
    assert iso_utc(ts) == text
    ref = datetime.fromtimestamp(round(ts * 1000) / 1000, tz=UTC)
    assert text == ref.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ref.microsecond // 1000:03d}Z"


def _reference_row(s: Signal) -> str:
    """The f-string format_row used before it went printf-style with its own minute cache: the text must not move."""
    z, sp, act = s.volume_z, s.spread_bps, s.action
    return (
        f"{iso_utc(s.ts)},{s.symbol},{act},{s.raw_action},{s.strength},{s.raw_strength},"
        f"{s.composite:.4f},{s.ema:.4f},{s.threshold:.4f},{s.effective_imbalance:.4f},"
        f"{s.momentum_score:.4f},{s.bayesian_signal},{s.informed_direction},{s.frequency_regime},"
        f"{s.confirmation},{'' if z is None else f'{z:.4f}'},{'' if sp is None else f'{sp:.4f}'},"
        f"{s.volatility:.4f},{s.ohara_score},{'YES' if s.cooldown_active else 'NO'},{s.reason},"
        f"{'YES' if act == 'BUY' or act == 'SELL' else 'NO'}\n"
    )


def test_row_text_equals_the_f_string_reference() -> None:
    """Random values and times (minute, day and year edges, before 1970, ms carries, -0.0, 5th-decimal ties, None
    z/spread), in random order so the minute cache is hit, missed and revisited."""
    rng = random.Random(11)
    times = [0.0, -0.0004, -0.5, -59.9996, -60.0, -86400.0005, 59.9996, 59.9994, 86399.9995, 951782399.9999,
             1765200549.412, 1765200599.9995, 1767225599.9996, 4102444800.0]
    times += [rng.uniform(-1e9, 4e9) for _ in range(300)]
    times += [1765200000.0 + rng.uniform(0.0, 180.0) for _ in range(300)]  # many rows inside a few minutes
    floats = [0.0, -0.0, 0.00005, -0.00005, 0.00015, 1.23455, -99.99995, 1e-9, -1e-9, 123456.78905, 1e300]
    for i in range(2000):
        pick = lambda: rng.choice(floats) if rng.random() < 0.3 else rng.uniform(-150.0, 150.0)  # noqa: E731
        s = sig(
            ts=rng.choice(times), composite=pick(), ema=pick(), threshold=pick(), effective_imbalance=pick(),
            momentum_score=pick(), volatility=pick(), volume_z=None if i % 5 == 0 else pick(),
            spread_bps=None if i % 7 == 0 else pick(), strength=rng.randint(0, 4), raw_strength=rng.randint(0, 4),
            ohara_score=rng.randint(0, 10), cooldown_active=rng.random() < 0.5,
            action=rng.choice(["BUY", "SELL", "HOLD"]), reason=rng.choice(["confirmed", "cooldown", "neutral"]),
        )
        assert format_row(s) == _reference_row(s), s


def test_columns_are_the_spec_columns() -> None:
    assert list(COLUMNS) == SPEC_COLUMNS


def test_row_format() -> None:
    row = next(csv.reader([format_row(sig())]))
    rec = dict(zip(COLUMNS, row, strict=True))
    assert rec == {
        "ts": "2025-12-08T13:29:09.412Z", "symbol": "BTCUSDT", "action": "BUY", "raw_action": "BUY",
        "strength": "3", "raw_strength": "3", "composite": "0.6341", "ema": "0.6000", "threshold": "0.4000",
        "imbalance": "31.4444", "momentum": "-65.6667", "bayesian": "BULLISH", "large_orders": "STRONG_BUY",
        "frequency": "NORMAL", "vol_confirm": "NEUTRAL", "volume_z": "-1.5000", "spread_bps": "1.2346",
        "volatility": "0.5000", "ohara_score": "5", "cooldown_active": "NO", "reason": "confirmed", "accepted": "YES",
    }


@pytest.mark.parametrize(
    ("kw", "accepted"),
    [({"action": "BUY"}, "YES"), ({"action": "SELL"}, "YES"),
     ({"action": "HOLD", "reason": "cooldown", "cooldown_active": True, "strength": 0}, "NO"),
     ({"action": "HOLD", "strength": 5, "reason": "spread_too_wide"}, "NO")],
)
def test_accepted_means_buy_or_sell(kw: dict[str, object], accepted: str) -> None:
    rec = dict(zip(COLUMNS, next(csv.reader([format_row(sig(**kw))])), strict=True))
    assert rec["accepted"] == accepted


def test_missing_values_are_empty_fields() -> None:
    rec = dict(zip(COLUMNS, next(csv.reader([format_row(sig(volume_z=None, spread_bps=None))])), strict=True))
    assert rec["volume_z"] == "" and rec["spread_bps"] == ""


def test_file_header_once_append_only(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "signals.csv"
    with SignalLog(path) as log:
        log.append(sig())
        log.append(sig(action="HOLD", reason="insufficient_data", ts=1765200551.0))
        assert log.rows == 2
    with SignalLog(path) as log:  # reopen: appends, no second header
        log.append(sig(action="SELL", ts=1765200553.0))
    rows = list(csv.reader(path.open()))
    assert rows[0] == list(COLUMNS)
    assert [r[0] for r in rows[1:]] == ["2025-12-08T13:29:09.412Z", "2025-12-08T13:29:11.000Z",
                                        "2025-12-08T13:29:13.000Z"]
    assert [r[-1] for r in rows[1:]] == ["YES", "NO", "YES"]


def test_flush_makes_rows_visible(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    log = SignalLog(path)
    log.append(sig())
    log.flush()
    assert len(path.read_text().splitlines()) == 2
    log.close()
    log.close()  # idempotent


def test_foreign_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_text("ts,symbol,something_else\n")
    with pytest.raises(ValueError, match=r"not the signals\.csv header"):
        SignalLog(path)


def test_none_path_is_a_noop_sink(tmp_path: Path) -> None:
    log = SignalLog(None)
    log.append(sig())
    log.flush()
    log.close()
    assert log.rows == 0 and list(tmp_path.iterdir()) == []


def _replay_to_csv(path: Path, seed: int) -> bytes:
    """A seeded market through the real storage and analyzers, every evaluation logged."""
    import numpy as np

    from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer, evaluate
    from bot.clock import FixedClock
    from bot.events import BookSnapshot, Trade
    from bot.instruments import InstrumentRegistry
    from bot.storage import DataStorage
    from settings import Settings

    settings = Settings()
    t0 = 1_700_000_000.0
    clock = FixedClock(t0)
    storage = DataStorage(settings, clock, ["ETHUSDT"])
    va = VolumeAnalyzer(settings, storage)
    ia = ImbalanceAnalyzer(settings, storage, InstrumentRegistry.bundled())
    sg = SignalGenerator(settings)
    rng = np.random.default_rng(seed)
    px = 300_000  # ticks of 0.01
    n = 0
    with SignalLog(path) as log:
        for step in range(150):
            now = t0 + 2.0 * step
            batch = []
            for ts in np.sort(rng.uniform(now - 2.0, now, rng.poisson(20))):
                px += int(rng.integers(-2, 3))
                n += 1
                batch.append(Trade("ETHUSDT", float(ts), px / 100, float(rng.pareto(1.5) + 0.01),
                                   "Buy" if rng.random() < 0.55 else "Sell", str(n)))
            sizes = rng.uniform(1, 50, 40).round(2).tolist()
            batch.append(BookSnapshot("ETHUSDT", now, [((px - k - 1) / 100, sizes[k]) for k in range(20)],
                                      [((px + k + 1) / 100, sizes[20 + k]) for k in range(20)], step + 1))
            clock.set(now)
            storage.apply_batch(batch)  # type: ignore[arg-type]
            log.append(evaluate("ETHUSDT", now, storage, va, ia, sg))
    return path.read_bytes()


def test_same_inputs_give_byte_identical_signals_csv(tmp_path: Path) -> None:
    a = _replay_to_csv(tmp_path / "a.csv", seed=5)
    b = _replay_to_csv(tmp_path / "b.csv", seed=5)
    assert a == b and a.count(b"\n") == 151
    assert b",below_threshold," in a
    assert _replay_to_csv(tmp_path / "c.csv", seed=6) != a
