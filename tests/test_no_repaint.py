"""Strict no-repaint mode at the live cadence (ARCHITECTURE.md §5): proofs on real bundled candles.

Strict mode evaluates every symbol at its live revisit period (8 s with the default 10 trade_pairs, also when only one
is replayed), so analyzer state evolves exactly as live; a signal's action waits for the close of the candle it was
computed in. The tests below show: the cadence (one signals.csv row per 8 s, the same rows as a live-cadence run),
that actions happen only at candle closes on signals of the candle just closed, that changing one candle's
high/low/close/volume changes no decision taken before that candle closed (and that the same check catches a
live-cadence run, which does act inside candles), and that truncating the data at a cut changes no decision up to and
including the cut.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import (
    EIGHT_SEC,
    Recorder,
    epoch,
    signal_rows,
    symbol_job,
    write_klines,
)

from bot.orchestrator import OPENED, Decision
from replay.engine import CANDLE_SEC, bot_pairs, replay_settings, run_symbol
from settings import Settings
from settings.search import with_overrides

START, END = "2025-06-20T00:00", "2025-06-20T04:00"


def _run(tmp: Path, start: str = START, end: str = END, *, data_dir: Path | None = None,
         strict: bool = True) -> tuple[list[Decision], list[dict[str, str]]]:
    rec = Recorder()
    job = symbol_job(tmp, start, end, data_dir=data_dir, **{"backtest.strict_repainting_check": strict})
    run_symbol(job, inspect=rec)
    return rec.decisions, signal_rows(tmp / "bot_BTCUSDT" / "signals.csv")


def _fingerprints(decisions: list[Decision], signals: list[dict[str, str]], before: float,
                  inclusive: bool = False) -> list[tuple[Any, ...]]:
    """Each decision taken before ``before`` (or at it), with the full signals.csv row of the signal it acted on."""
    by_key = {(epoch(r["ts"]), r["symbol"]): tuple(r.values()) for r in signals}
    keep = [d for d in decisions if d.ts < before or (inclusive and d.ts == before)]
    return [(d.ts, d.symbol, d.outcome, by_key[(round(d.signal_ts, 3), d.symbol)]) for d in keep]


# ------------------------------------------------------------------------------------------------------- cadence
def test_replay_settings_keep_the_live_cadence_and_defer_actions_in_strict_mode(tmp_path: Path) -> None:
    s = replay_settings(Settings(), ["BTCUSDT"], tmp_path)
    live = Settings().trading
    assert s.trading.decision_interval_sec == live.decision_interval_sec == 2.0
    assert s.trading.symbol_batch_size == live.symbol_batch_size == 3
    assert s.trading.trade_pairs == live.trade_pairs  # all 10: BTC alone still waits for the other 3 batches
    assert s.trading.act_on_closed_candles and s.trading.candle_sec == CANDLE_SEC
    assert not live.act_on_closed_candles  # the live bot acts in its own tick
    lc = replay_settings(with_overrides(Settings(), {"backtest.strict_repainting_check": False}), ["BTCUSDT"],
                         tmp_path)
    assert not lc.trading.act_on_closed_candles and lc.trading.trade_pairs == live.trade_pairs
    # a replayed symbol the configuration lacks is appended: it joins the rotation as it would live
    assert bot_pairs(Settings(), ["XRPUSDT", "BTCUSDT"]) == [*live.trade_pairs, "XRPUSDT"]


def test_strict_mode_evaluates_at_the_live_cadence_and_acts_only_at_candle_closes(tmp_path: Path) -> None:
    decisions, signals = _run(tmp_path, START, "2025-06-20T02:00")
    ts = [epoch(r["ts"]) for r in signals]
    assert {b - a for a, b in itertools.pairwise(ts)} == {EIGHT_SEC}, "one evaluation every 8 s"
    assert len(ts) >= 2 * 3600 / EIGHT_SEC - 2
    assert all(r["symbol"] == "BTCUSDT" for r in signals)
    # every signal acts exactly once, at the close of the candle it was computed in, never earlier or later
    assert [d.signal_ts for d in decisions] == [round(t, 3) for t in ts][: len(decisions)]
    assert len(decisions) >= len(ts) - 8  # the last candle's signals may still wait when the run ends
    for d in decisions:
        assert d.ts % CANDLE_SEC == 0, d
        assert d.ts - CANDLE_SEC < d.signal_ts <= d.ts, d
    assert any(d.outcome == OPENED for d in decisions), "the window should trade, or this proves little"


def test_strict_mode_analyzer_state_evolves_exactly_as_at_the_live_cadence(tmp_path: Path) -> None:
    """Analyzers and the signal generator never see the executor, so if strict mode evaluates exactly when the live
    bot does, every per-evaluation state update (book-imbalance EMA, history ring, Bayesian decay, composite EMA,
    cooldown) is the same and signals.csv is byte-identical to a live-cadence run's; only the actions differ."""
    strict_dec, _ = _run(tmp_path / "strict", START, "2025-06-20T02:00")
    live_dec, _ = _run(tmp_path / "live", START, "2025-06-20T02:00", strict=False)
    strict_log = (tmp_path / "strict" / "bot_BTCUSDT" / "signals.csv").read_bytes()
    assert strict_log == (tmp_path / "live" / "bot_BTCUSDT" / "signals.csv").read_bytes()
    assert any(d.ts % CANDLE_SEC for d in live_dec), "live cadence acts inside candles"
    assert [d.ts for d in strict_dec] != [d.ts for d in live_dec]
    # the composite EMA moves from evaluation to evaluation inside a minute (it no longer steps once a minute)
    rows = signal_rows(tmp_path / "strict" / "bot_BTCUSDT" / "signals.csv")
    moved = sum(1 for a, b in itertools.pairwise(rows)
                if a["ts"][:16] == b["ts"][:16] and a["ema"] != b["ema"])
    assert moved > len(rows) / 2


# ----------------------------------------------------------------------------------------------- perturbation
def _perturbed(m_open_ms: int) -> Any:
    """Edit candle m only: a wider range, another close, three times the volume (tick grid kept)."""

    def edit(t: int, f: list[str]) -> list[str]:
        if t != m_open_ms:
            return f
        o, h, lo, _c, v = (float(x) for x in f[1:])
        h2, lo2 = h + 150.0, lo - 150.0
        c2 = round(lo2 + 0.25 * (h2 - lo2), 1)
        assert lo2 <= min(o, c2) and max(o, c2) <= h2
        return [f[0], f[1], f"{h2:.1f}", f"{lo2:.1f}", f"{c2:.1f}", f"{3 * v:.3f}"]

    return edit


@pytest.fixture(scope="module")
def perturbation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Strict and live-cadence runs over the same 4 h, on the real candles and with candle m edited; m opens at the
    first candle close (after a 1 h warm-up) where the strict run opens a position."""
    base = tmp_path_factory.mktemp("perturb")
    orig = write_klines(base / "orig", "BTCUSDT", START, END)
    dec, sig = _run(base / "strict-orig", data_dir=orig)
    b = next(d.ts for d in dec if d.outcome == OPENED and d.ts >= epoch(START) + 3600)
    edited = write_klines(base / "edit", "BTCUSDT", START, END, _perturbed(int(b * 1000)))
    out: dict[str, Any] = {"m_open": b, "strict": [(dec, sig), _run(base / "strict-edit", data_dir=edited)]}
    out["live"] = [_run(base / "live-orig", data_dir=orig, strict=False),
                   _run(base / "live-edit", data_dir=edited, strict=False)]
    return out


def test_perturbing_candle_m_changes_no_decision_taken_before_it_closes(perturbation: dict[str, Any]) -> None:
    b = perturbation["m_open"]
    (dec_a, sig_a), (dec_b, sig_b) = perturbation["strict"]
    # the edit reaches the bot: evaluations inside candle m see different events
    inside = [(r["ts"], r["ema"]) for r in sig_a if b < epoch(r["ts"]) <= b + CANDLE_SEC]
    assert inside and inside != [(r["ts"], r["ema"]) for r in sig_b if b < epoch(r["ts"]) <= b + CANDLE_SEC]
    # ...yet every decision taken while m was in progress, including the entry at its open, is unchanged
    before = _fingerprints(dec_a, sig_a, b + CANDLE_SEC)
    assert before == _fingerprints(dec_b, sig_b, b + CANDLE_SEC)
    at_open = [f for f in before if f[0] == b]
    assert any(f[2] == OPENED for f in at_open), "the decision at m's open is part of the comparison"
    assert all(f[0] <= b for f in before if f[0] > b - CANDLE_SEC), "no strict decision inside candle m"


def test_the_perturbation_check_catches_decisions_inside_the_candle(perturbation: dict[str, Any]) -> None:
    """The same comparison on live-cadence runs fails: their decisions inside candle m use m's events."""
    b = perturbation["m_open"]
    (dec_a, sig_a), (dec_b, sig_b) = perturbation["live"]
    assert _fingerprints(dec_a, sig_a, b) == _fingerprints(dec_b, sig_b, b)  # up to m's open: causal feed
    assert _fingerprints(dec_a, sig_a, b + CANDLE_SEC) != _fingerprints(dec_b, sig_b, b + CANDLE_SEC)


# ------------------------------------------------------------------------------------------------- truncation
def test_decisions_up_to_and_at_the_cut_do_not_change_when_later_data_is_deleted(tmp_path: Path) -> None:
    full_dec, full_sig = _run(tmp_path / "full", START, "2025-06-20T06:00")
    assert any(d.outcome == OPENED for d in full_dec)
    for cut in ("2025-06-20T01:37", "2025-06-20T03:00", "2025-06-20T04:11"):
        dec, sig = _run(tmp_path / cut, START, cut)
        t = epoch(cut)
        assert any(d.ts == t for d in dec), f"the truncated run must decide at the cut {cut}"
        assert _fingerprints(dec, sig, t, inclusive=True) == _fingerprints(full_dec, full_sig, t, inclusive=True), cut
        assert [r for r in sig if epoch(r["ts"]) <= t] == [r for r in full_sig if epoch(r["ts"]) <= t], cut
