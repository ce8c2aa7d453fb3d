"""``python -m calibration fit``: apply a calibration file's coefficients to the generator and judge the result.

The coefficients come from ``calibration.json``'s ``generator`` block (:mod:`calibration.calibfile`) and go through
``SyntheticMarketBuilder.calibrate_from_ws_stats``, which knows only the generator's own coefficients
(:class:`replay.synthetic.GeneratorParams`): no trading setting can be touched. The fidelity table of ``compare``
(:mod:`calibration.compare`) is printed before (project defaults) and after, on the recordings given with
``--judge``, followed by a per-figure summary and one distance (:func:`fidelity_distance`, lower is closer to real).
With ``calibration.auto_correct_param`` or ``--write`` the coefficients are written as a file ``python -m replay
--calibration FILE`` uses.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from calibration.calibfile import generator_block
from calibration.compare import Comparison, compare_recording, table
from calibration.recordings import Recording
from calibration.synthetic_tape import instrument_for
from replay.synthetic import GeneratorParams, SyntheticMarketBuilder

LOG_RATIOS = (
    "trades_per_min_ratio",
    "trade_notional_median_ratio",
    "depth_l1_ratio",
    "depth_10bps_ratio",
    "buy_share_ratio",
)
KS = ("trade_notional_ks", "inter_trade_time_ks", "spread_ticks_ks")
SHARES = ("active_second_share", "spread_1tick_share")


def fidelity_terms(f: dict[str, Any]) -> dict[str, float]:
    """Each figure's distance from real: |log ratio| for ratios, the KS statistic, |Δ| for shares."""
    out = {k: abs(math.log(f[k])) if f[k] and f[k] > 0 else math.nan for k in LOG_RATIOS}
    out |= {k: float(f[k]) for k in KS}
    out |= {f"{k}_delta": abs(f[f"{k}_synthetic"] - f[f"{k}_real"]) for k in SHARES}
    return out


def fidelity_distance(f: dict[str, Any]) -> float:
    """The mean of :func:`fidelity_terms` (NaN terms skipped): one number per comparison, 0 = indistinguishable."""
    vals = [v for v in fidelity_terms(f).values() if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def calibrated_params(doc: dict[str, Any], rec: Recording, base: GeneratorParams) -> GeneratorParams:
    builder = SyntheticMarketBuilder(instrument_for(rec), None, base, seed=1)
    return builder.calibrate_from_ws_stats(generator_block(doc)).params


def summary(before: Comparison, after: Comparison) -> str:
    fb, fa = before.flat(), after.flat()
    tb, ta = fidelity_terms(fb), fidelity_terms(fa)
    w = max(len(k) for k in tb)
    lines = [
        f"{before.real.symbol} {before.real.source}: distance from real per figure (lower is better)",
        f"{'':{w}}  {'before':>8}  {'after':>8}",
    ]
    for k in tb:
        mark = (
            ""
            if not (math.isfinite(tb[k]) and math.isfinite(ta[k]))
            else ("better" if ta[k] < tb[k] - 1e-9 else "worse" if ta[k] > tb[k] + 1e-9 else "same")
        )
        lines.append(f"{k:{w}}  {tb[k]:8.3f}  {ta[k]:8.3f}  {mark}")
    lines.append(f"{'mean (fidelity distance)':{w}}  {fidelity_distance(fb):8.3f}  {fidelity_distance(fa):8.3f}")
    return "\n".join(lines)


def write_generator_file(doc: dict[str, Any], source: Path, out: Path) -> Path:
    from calibration.ingest import write_json_atomic

    write_json_atomic(
        out,
        {
            "format": 1,
            "_doc": "Generator coefficients for `python -m replay --calibration FILE`, written by "
            "`python -m calibration fit` (only GeneratorParams fields; never trading settings).",
            "_calibration_file": source.name,
            "_calibration_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "_generator_fitted_on": doc.get("_generator_fitted_on", []),
            "generator": generator_block(doc, source.name),
        },
    )
    return out


def run_fit(
    calibration: Path, judge: list[Recording], *, seed: int, points: int
) -> list[tuple[Comparison, Comparison]]:
    doc = json.loads(calibration.read_text(encoding="utf-8"))
    base = GeneratorParams.load_defaults()
    out = []
    fitted_on = tuple(doc.get("_generator_fitted_on", [])) or (calibration.name,)
    for rec in judge:
        after_params = calibrated_params(doc, rec, base)
        before = compare_recording(rec, base, seed=seed, points_per_candle=points)
        after = compare_recording(rec, after_params, seed=seed, points_per_candle=points, fitted_on=fitted_on)
        out.append((before, after))
    return out


__all__ = ["fidelity_distance", "run_fit", "summary", "table", "write_generator_file"]
