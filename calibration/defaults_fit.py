"""The project's generator defaults (``replay/synthetic/defaults.json``): Bybit wherever Bybit data can tell.

Sources (``../shared/data``): the Binance USD-M BTC/ETH L2 + trade recordings (~345 s each, real trades and a rebuilt
book) and the Bybit v5 public capture (44 s, BTC/ETH/SOL/DOGE: order book 200 + trades).

- Elasticities (how levels scale with a symbol's typical volume): the pooled cross-section of all six recordings with
  a venue fixed effect (:func:`calibration.fit.fit_elasticities`).
- Bybit, from the capture (its 4 symbols pooled): mean fill notional, fills per aggressor order, spread distribution,
  level-1 notional in mean fills, depth density, level spacing and size dispersion. The capture holds no complete
  minute, so these levels cannot be refined by simulation on it: the refinement factors measured on the Binance
  recordings (refined / directly fitted) are applied to them.
- Binance, because 44 s of Bybit cannot tell (stated per value): the fill-size shape (327 Bybit trades, too few for a
  tail), per-second burstiness and its response to price moves, buy probabilities (the capture's flow is one-sided:
  11% buys on BTC, 92% on DOGE), book imbalance dynamics, size response to the local rate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from calibration.fit import fit_elasticities, fit_levels, refine_by_simulation, values
from calibration.recordings import Recording, read_recording
from replay.synthetic.params import GeneratorParams

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = PROJECT_ROOT.parent / "shared" / "data"
DEFAULT_OUT = PROJECT_ROOT / "replay" / "synthetic" / "defaults.json"
BYBIT_FIELDS = ("fill_notional_coef", "single_fill_share", "multi_fill_mean", "spread_ticks_pmf",
                "touch_fill_multiple", "depth_density_coef", "depth_size_log_sigma", "level_gap_bps")
REFINED = ("fill_notional_coef", "multi_fill_mean", "touch_fill_multiple", "depth_density_coef")


def _recordings(shared: Path) -> tuple[list[Recording], list[Recording]]:
    l2 = sorted((shared / "l2").glob("binance-usdm-*.gz"))
    ws = sorted((shared / "ws").glob("bybit-v5-public-linear-*.ndjson.gz"))
    if not l2 or not ws:
        raise FileNotFoundError(f"{shared}: need l2/binance-usdm-*.gz and ws/bybit-v5-public-linear-*.ndjson.gz")
    binance = [r for f in l2 for r in read_recording(f)]
    bybit = [r for f in ws for r in read_recording(f)]
    return binance, bybit


def params_from(fitted: dict[str, dict[str, Any]]) -> GeneratorParams:
    return GeneratorParams.from_fitted(fitted)


def fit_defaults(shared: Path = DEFAULT_SHARED) -> dict[str, Any]:
    binance, bybit = _recordings(shared)
    el = fit_elasticities(binance + bybit)
    E = values(el)
    bn = {**fit_levels(binance, E), **el}
    bn_raw = params_from(bn)
    bn_ref = refine_by_simulation(bn_raw, binance)
    by = fit_levels(bybit, E)
    out: dict[str, Any] = {"_doc": "Fitted defaults of the synthetic market generator (Bybit where the Bybit capture "
                                   "can tell); written by `python -m calibration fit-defaults`. Do not edit by hand."}
    for name, entry in bn.items():
        if name in BYBIT_FIELDS and name in by:
            e = dict(by[name])
            if name in REFINED:
                factor = getattr(bn_ref, name) / getattr(bn_raw, name)
                e["value"] = float(f"{e['value'] * factor:.6g}")
                e["method"] += f"; × {factor:.4g}, the simulation refinement measured on the Binance recordings"
            out[name] = e
            continue
        e = dict(entry)
        if name in ("fill_log_sigma", "large_fill_share"):
            e["value"] = float(f"{getattr(bn_ref, name):.6g}")
            e["method"] += "; refined by simulation on the recordings"
        if name not in el:
            e["method"] += " (Binance USD-M: the 44 s Bybit capture cannot tell)"
        out[name] = e
    params_from(out)  # validates: every coefficient present and sane
    return out


def write_defaults(shared: Path = DEFAULT_SHARED, out: Path = DEFAULT_OUT) -> Path:
    res = fit_defaults(shared)
    out.write_text(json.dumps(res, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n")
    return out
