"""The live monitor's kill switch (daily loss, error storm) and status line, on a real assembled bot with a fixed
clock (nothing runs: the checks only read the executor's equity, the log and the orchestrator's last signals)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from loguru import logger

from bot.adapters.simulated import SimExchange
from bot.app import build_bot
from bot.clock import FixedClock
from bot.instruments import InstrumentRegistry
from bot.monitor import DAY_SEC, KillSwitchLimits, Monitor
from settings import Settings

T0 = 1_786_000_000.0 - (1_786_000_000.0 % DAY_SEC) + 3600.0  # 01:00 UTC on some day


def _monitor(**limits: float) -> tuple[Monitor, FixedClock, list[str]]:
    clock = FixedClock(T0)
    reg = InstrumentRegistry.bundled()
    s = Settings()
    bot = build_bot(s, clock, SimExchange(s, clock, reg, seed=1), instruments=reg, symbols=["BTCUSDT"])
    stops: list[str] = []

    async def stop(reason: str) -> None:
        stops.append(reason)

    return Monitor(bot, None, clock, stop=stop, limits=KillSwitchLimits(**limits)), clock, stops  # type: ignore[arg-type]


def test_daily_loss_limit_trips_against_the_days_first_equity_and_resets_each_day() -> None:
    m, clock, _ = _monitor(max_daily_loss_pct=5.0)
    ex = m.bot.executor
    ex.equity = Decimal(1000)
    assert m.check() is None                      # the day's baseline
    ex.equity = Decimal(951)
    assert m.check() is None
    ex.equity = Decimal(950)
    assert (r := m.check()) is not None and r.startswith("daily loss limit")
    clock.set(T0 + DAY_SEC)                       # a new UTC day: a new baseline
    assert m.check() is None
    ex.equity = Decimal(903)
    assert m.check() is None


def test_error_storm_trips_within_the_window_only() -> None:
    m, clock, _ = _monitor(max_errors=3, error_window_sec=60.0)
    m.attach()
    try:
        for k in range(2):
            clock.set(T0 + k)
            logger.error("boom {}", k)
        assert m.check() is None
        clock.set(T0 + 100)                       # the first two left the window
        logger.error("boom late")
        assert m.check() is None
        logger.error("again")
        logger.error("and again")
        assert (r := m.check()) is not None and r.startswith("error storm: 3 errors")
    finally:
        m.detach()


def test_the_kill_switch_stops_the_bot_and_the_status_line_says_what_matters() -> None:
    m, _clock, stops = _monitor(max_daily_loss_pct=1.0)
    m.check_every_sec = 0.0
    ex = m.bot.executor
    ex.equity = Decimal(1000)
    m.check()
    ex.equity = Decimal(980)

    async def go() -> None:
        await asyncio.wait_for(m.run(), 5)

    asyncio.run(go())
    assert stops and stops[0].startswith("kill switch: daily loss limit") and m.tripped
    line = m.status()
    assert line.startswith("STATUS equity 980.00 USDT") and "positions 0" in line and "last signal none" in line


def test_kill_switch_thresholds_are_fixed_settings_and_the_cli_overrides_them(tmp_path: Path) -> None:
    from bot.__main__ import build_parser
    from settings import load_settings
    from settings.search import fixed_fields

    for name in ("kill_switch_daily_loss_pct", "kill_switch_max_errors", "kill_switch_error_window_sec"):
        assert f"risk.{name}" in fixed_fields()
    toml = tmp_path / "k.toml"
    toml.write_text("[risk]\nkill_switch_daily_loss_pct = 2.5\nkill_switch_max_errors = 7\n"
                    "kill_switch_error_window_sec = 30.0\n", encoding="utf-8")
    s = load_settings(toml, _env_file=None)
    assert KillSwitchLimits.from_settings(s) == KillSwitchLimits(2.5, 7, 30.0)
    args = build_parser().parse_args(["--max-errors", "3"])
    lim = KillSwitchLimits.from_settings(s, max_daily_loss_pct=args.max_daily_loss_pct, max_errors=args.max_errors)
    assert lim == KillSwitchLimits(2.5, 3, 30.0)   # the CLI wins where given, the settings elsewhere
    assert KillSwitchLimits.from_settings(Settings(_env_file=None)) == KillSwitchLimits()  # defaults unchanged
