"""VolumeAnalyzer.compute builds its result structs positionally (cheaper than keywords): a reordered or renamed field
must fail here, not silently shift values into the wrong fields."""

from __future__ import annotations

from bot.analysis.results import Confirmation, FrequencyStats, LargeOrderFlow, TapeStats, VolumeResult


def test_volume_result_field_order() -> None:
    assert VolumeResult.__struct_fields__ == (
        "data_ok",
        "short_trades_count",
        "volatility_trades_count",
        "short_window_sec",
        "momentum_windows_sec",
        "momentum_score",
        "momentum_components",
        "tape",
        "volatility",
        "recent_volatility",
        "volatility_score",
        "range_pct",
        "atr_pct",
        "std_pct",
        "volume_z",
        "ema_ratio",
        "current_volume",
        "ema_fast",
        "ema_slow",
        "bucket_count",
        "frequency",
        "confirmation",
        "large_orders",
    )


def test_part_field_orders() -> None:
    assert TapeStats.__struct_fields__ == (
        "large_buys",
        "large_sells",
        "large_net",
        "acceleration",
        "spike",
        "absorb_bull",
        "absorb_bear",
    )
    assert FrequencyStats.__struct_fields__ == ("regime", "ratio", "baseline_per_min", "current_per_min")
    assert Confirmation.__struct_fields__ == ("status", "direction", "price_change_pct")
    assert LargeOrderFlow.__struct_fields__ == (
        "direction",
        "buy_count",
        "sell_count",
        "buy_notional",
        "sell_notional",
        "buy_ratio",
        "samples",
        "threshold",
    )
