"""Real vs synthetic, side by side: the fidelity table of ``python -m calibration compare``.

The generator runs on the recording's own complete 1m candles (with the recording's typical volume and range as its
scale history, :func:`calibration.synthetic_tape.recording_prior`), once per seed of ``SEEDS`` seeds, pooled; both
sides are measured by
:func:`calibration.stats.market_stats` over the same minutes. KS statistics use ``scipy.stats.ks_2samp``. Ratios are
synthetic / real. The reversal probe runs the generator on a week of the bundled klines of the symbol when they
exist (a few minutes hold too few candles), else on the recording's candles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import ks_2samp

from bot.instruments import Instrument, InstrumentRegistry
from calibration.probes import ProbeResult, run_probes
from calibration.recordings import Recording
from calibration.stats import MarketStats, market_stats, pooled_stats
from calibration.synthetic_tape import candles_from_recording, complete_minutes, instrument_for, synthetic_recording
from replay.synthetic import Candles, GeneratorParams, SyntheticMarketBuilder
from replay.synthetic.builder import DEFAULT_POINTS_PER_CANDLE

PROBE_DAYS = 7
SEEDS = 8
"""The synthetic side is measured over this many generator seeds on the same candles and pooled: a few minutes of one
draw are too noisy (e.g. 48 book points give the 1-tick spread share ± 3 points)."""


@dataclass(frozen=True)
class Comparison:
    real: MarketStats
    synthetic: MarketStats
    ks_notional: float
    ks_inter_trade: float
    ks_spread: float
    probes: ProbeResult
    fitted_on: tuple[str, ...]

    def flat(self) -> dict[str, Any]:
        """The machine-readable figures (ratios are synthetic / real)."""
        r, s, p = self.real, self.synthetic, self.probes
        return {
            "symbol": r.symbol, "recording": r.source, "fitted_on": list(self.fitted_on), "minutes": r.minutes,
            "trades_per_min_real": r.trades_per_min, "trades_per_min_synthetic": s.trades_per_min,
            "trades_per_min_ratio": _ratio(s.trades_per_min, r.trades_per_min),
            "trade_notional_ks": self.ks_notional,
            "trade_notional_median_ratio": _ratio(s.notional_median, r.notional_median),
            "inter_trade_time_ks": self.ks_inter_trade,
            "fills_per_order_real": r.fills_per_order, "fills_per_order_synthetic": s.fills_per_order,
            "active_second_share_real": r.active_second_share, "active_second_share_synthetic": s.active_second_share,
            "spread_1tick_share_real": r.spread_1tick_share, "spread_1tick_share_synthetic": s.spread_1tick_share,
            "spread_ticks_ks": self.ks_spread,
            "spread_bps_median_real": r.spread_bps_median, "spread_bps_median_synthetic": s.spread_bps_median,
            "depth_l1_ratio": _ratio(s.depth_l1_notional, r.depth_l1_notional),
            "depth_5bps_ratio": _ratio(s.depth_cum_notional["5bps"], r.depth_cum_notional["5bps"]),
            "depth_10bps_ratio": _ratio(s.depth_cum_notional["10bps"], r.depth_cum_notional["10bps"]),
            "depth_25bps_ratio": _ratio(s.depth_cum_notional["25bps"], r.depth_cum_notional["25bps"]),
            "buy_share_real": r.buy_share, "buy_share_synthetic": s.buy_share,
            "buy_share_ratio": _ratio(s.buy_share, r.buy_share),
            "buy_share_down_minutes_real": _num(r.buy_share_down_minutes),
            "buy_share_down_minutes_synthetic": _num(s.buy_share_down_minutes),
            "reversal_corr_real": p.reversal_corr_real, "reversal_corr_real_se": p.reversal_corr_real_se,
            "reversal_corr_synthetic": p.reversal_corr_synthetic,
            "perturb_changed_share": p.perturb_changed_share,
            "perturb_event_changed_share": p.perturb_event_changed_share,
            "volume_first5s_ratio": p.volume_first5s_ratio,
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _num(x: float | None) -> float:
    return math.nan if x is None else x


def probe_candles(rec: Recording) -> tuple[Candles, Instrument]:
    """Two days of the symbol's bundled klines with its Bybit instrument, or the recording's own candles."""
    from replay.data import DataError, load_candles

    reg = InstrumentRegistry.bundled()
    if rec.symbol in reg:
        try:
            return load_candles(rec.symbol, days=PROBE_DAYS, source="bundled"), reg[rec.symbol]
        except DataError:  # known instrument, no bundled klines
            pass
    return candles_from_recording(rec), instrument_for(rec)


def compare_recording(rec: Recording, params: GeneratorParams, *, seed: int = 1, seeds: int = SEEDS,
                      points_per_candle: int = DEFAULT_POINTS_PER_CANDLE,
                      fitted_on: tuple[str, ...] = ()) -> Comparison:
    real = market_stats(rec.window(*complete_minutes(rec)))
    syn = pooled_stats([market_stats(synthetic_recording(rec, params, seed=seed + i,
                                                         points_per_candle=points_per_candle))
                        for i in range(seeds)])
    long_c, ins = probe_candles(rec)
    b_long = SyntheticMarketBuilder(ins, None, params, seed=seed, points_per_candle=points_per_candle)
    probes = run_probes(rec, b_long, long_c)
    return Comparison(
        real=real, synthetic=syn,
        ks_notional=float(ks_2samp(real.notional, syn.notional).statistic),
        ks_inter_trade=float(ks_2samp(real.inter_trade_ms, syn.inter_trade_ms).statistic),
        ks_spread=float(ks_2samp(real.spread_ticks, syn.spread_ticks).statistic)
        if len(real.spread_ticks) and len(syn.spread_ticks) else math.nan,
        probes=probes, fitted_on=fitted_on)


def table(c: Comparison) -> str:
    """A fixed-width text table of the comparison."""
    r, s, f = c.real, c.synthetic, c.flat()
    rows: list[tuple[str, str, str, str]] = [
        ("trades / min", _g(r.trades_per_min), _g(s.trades_per_min), f"ratio {f['trades_per_min_ratio']:.2f}"),
        ("orders / min (same ms+side)", _g(r.orders_per_min), _g(s.orders_per_min),
         f"ratio {_ratio(s.orders_per_min, r.orders_per_min):.2f}"),
        ("fills per order", f"{r.fills_per_order:.2f}", f"{s.fills_per_order:.2f}", ""),
        ("trade notional median (USDT)", _g(r.notional_median), _g(s.notional_median),
         f"KS {c.ks_notional:.3f}"),
        ("trade notional mean (USDT)", _g(r.notional_mean), _g(s.notional_mean), ""),
        ("inter-trade time: share 0 ms", f"{r.inter_trade_zero_share:.3f}", f"{s.inter_trade_zero_share:.3f}",
         f"KS {c.ks_inter_trade:.3f}"),
        ("seconds with a trade", f"{r.active_second_share:.3f}", f"{s.active_second_share:.3f}",
         f"Δ {100 * (s.active_second_share - r.active_second_share):+.1f} pt"),
        ("spread = 1 tick", f"{r.spread_1tick_share:.3f}", f"{s.spread_1tick_share:.3f}",
         f"Δ {100 * (s.spread_1tick_share - r.spread_1tick_share):+.1f} pt, KS {c.ks_spread:.3f}"),
        ("spread median (bps)", f"{r.spread_bps_median:.3f}", f"{s.spread_bps_median:.3f}", ""),
        ("level-1 notional (median)", _g(r.depth_l1_notional), _g(s.depth_l1_notional),
         f"ratio {f['depth_l1_ratio']:.2f}"),
    ]
    for k in ("5bps", "10bps", "25bps"):
        rows.append((f"depth within {k} (top 50)", _g(r.depth_cum_notional[k]), _g(s.depth_cum_notional[k]),
                     f"ratio {f[f'depth_{k}_ratio']:.2f}"))
    rows += [
        ("buy share (trades)", f"{r.buy_share:.3f}", f"{s.buy_share:.3f}", f"ratio {f['buy_share_ratio']:.2f}"),
        ("buy share, down minutes", _o(r.buy_share_down_minutes), _o(s.buy_share_down_minutes), ""),
        ("buy share, up minutes", _o(r.buy_share_up_minutes), _o(s.buy_share_up_minutes), ""),
        ("probe: corr(first 10 s, rest)",
         f"{c.probes.reversal_corr_real:+.3f} ± {2 * c.probes.reversal_corr_real_se:.2f}",
         f"{c.probes.reversal_corr_synthetic:+.3f}",
         f"{c.probes.reversal_candles} candles, {'within' if c.probes.reversal_within_noise else 'OUTSIDE'} 2 SE"),
        ("probe: H/L/C perturbed, earlier events changed", "0 (causal)",
         f"{c.probes.perturb_event_changed_share:.4f}",
         f"{c.probes.perturb_probes} probes, {100 * c.probes.perturb_changed_share:.0f}% touched"),
        ("probe: volume ×2 → first 5 s volume ×", "1.00 (causal)", f"{c.probes.volume_first5s_ratio:.3f}", ""),
    ]
    w0 = max(len(x[0]) for x in rows)
    head = (f"{r.symbol} {r.source}: {r.minutes:.1f} complete minutes; generator "
            f"{'fitted on ' + ', '.join(c.fitted_on) if c.fitted_on else 'project defaults'}")
    lines = [head, f"{'':{w0}}  {'real':>16}  {'synthetic':>16}  comparison"]
    lines += [f"{a:{w0}}  {b:>16}  {x:>16}  {d}" for a, b, x, d in rows]
    return "\n".join(lines)


def _g(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _o(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


