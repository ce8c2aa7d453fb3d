"""One recording → its compact aggregate: the figures of ``calibration.json`` (issue 12 part 3) for one symbol.

A recording may hold trades only (Bybit's public trade archive CSV), the book only (Bybit's ob200/ob500 archive) or
both (a session recorded by ``python -m calibration record``, the bundled capture, a Binance L2 recording); each
block is present only when its data is. Every figure is deterministic (no sampling) and rounded (:func:`rounded`), so
the same files always give the same bytes. Definitions follow :mod:`calibration.stats` (what the fidelity table
measures), plus distributions (quantiles) instead of single medians:

- trades: count, per minute, per-trade size and notional quantiles, large-trade share (notional above
  ``LARGE_MULT`` × the median) and the notional share they carry, inter-trade time quantiles and 0 ms share, orders
  (same ms + side) per minute and fills per order;
- intensity: per 10 s bucket, trade count against notional volume and against volatility (|log return| of the
  bucket): log-log slopes and the mean count per volume / volatility quintile;
- buy share overall and by the 10 s bucket's price move (down / flat / up, and quintiles of the move in bps);
- book: spread distribution (ticks 1..5 and more, bps quantiles), level-1, top-5 and cumulative notional within
  5/10/25 bps (top 50 levels, per side pooled; quantiles), imbalance of the top 5 levels: its spread and its
  volatility (std of its 1 s changes).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from calibration.recordings import Recording
from calibration.stats import DEPTH_BPS, depth_within, order_starts

LARGE_MULT = 10.0
BUCKET_MS = 10_000
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
DIGITS = 6


def rounded(x: Any) -> Any:
    """Floats to ``DIGITS`` significant digits (NaN/inf → None), recursively: stable, compact JSON."""
    if isinstance(x, dict):
        return {str(k): rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [rounded(v) for v in x]
    if isinstance(x, np.integer | int) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, np.floating | float):
        f = float(x)
        return float(f"{f:.{DIGITS}g}") if math.isfinite(f) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _q(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return {}
    return {f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES), strict=True)} | {
        "mean": float(x.mean())
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _slope(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 5 or np.ptp(x[ok]) == 0:
        return None
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def _by_quintile(x: np.ndarray, y: np.ndarray) -> list[dict[str, float]] | None:
    """Mean of ``y`` in each quintile of ``x`` (with the quintile's upper edge)."""
    if len(x) < 10:
        return None
    edges = np.quantile(x, [0.2, 0.4, 0.6, 0.8])
    idx = np.searchsorted(edges, x, side="right")
    out = []
    for k in range(5):
        sel = idx == k
        if sel.any():
            out.append({"x_max": float(x[sel].max()), "mean": float(y[sel].mean()), "n": int(sel.sum())})
    return out


def trade_block(rec: Recording) -> dict[str, Any]:
    ms, px, qty, buy = rec.trade_ms, rec.trade_price, rec.trade_qty, rec.trade_is_buy
    minutes = max((int(ms[-1]) - int(ms[0])) / 60_000.0, 1e-9)
    notional = px * qty
    med = float(np.median(notional))
    large = notional > LARGE_MULT * med
    starts = order_starts(ms, buy)
    gaps = np.diff(ms).astype(float)
    # 10 s buckets: count, notional, |log return|, move in bps, buy share
    b = (ms - ms[0]) // BUCKET_MS
    nb = int(b[-1]) + 1
    count = np.bincount(b, minlength=nb).astype(float)
    vol = np.bincount(b, weights=notional, minlength=nb)
    first = np.searchsorted(b, np.arange(nb))
    last = np.searchsorted(b, np.arange(nb), side="right") - 1
    has = count > 0
    move_bps = np.where(has, (px[np.maximum(last, 0)] - px[np.minimum(first, len(px) - 1)]) / px[0] * 1e4, np.nan)
    hi = np.array([px[f : e + 1].max() if c else np.nan for f, e, c in zip(first, last, count, strict=True)])
    lo = np.array([px[f : e + 1].min() if c else np.nan for f, e, c in zip(first, last, count, strict=True)])
    volat = np.log(hi / lo) * 1e4  # the bucket's high-low range in bps (0 for a single price)
    bshare = np.bincount(b, weights=buy.astype(float), minlength=nb)
    bshare = np.where(has, bshare / np.maximum(count, 1), np.nan)
    full = has.copy()
    full[-1] = False  # the last bucket is partial
    hv = full & (vol > 0)
    intensity = {
        "bucket_sec": BUCKET_MS / 1000,
        "buckets": int(full.sum()),
        "count_vs_volume_loglog_slope": _slope(np.log(vol[hv]), np.log(count[hv])),
        "count_vs_range_slope_per_bps": _slope(volat[hv], count[hv]),
        "count_by_volume_quintile": _by_quintile(vol[hv], count[hv]),
        "count_by_range_bps_quintile": _by_quintile(volat[hv], count[hv]),
    }
    mv = move_bps[hv]
    sh = bshare[hv]
    return {
        "count": len(ms),
        "per_min": len(ms) / minutes,
        "notional_per_min": float(notional.sum()) / minutes,
        "size": _q(qty),
        "notional": _q(notional),
        "large_trade_multiple": LARGE_MULT,
        "large_trade_share": float(large.mean()),
        "large_trade_notional_share": float(notional[large].sum() / notional.sum()),
        "inter_trade_ms": _q(gaps) | {"zero_share": float((gaps == 0).mean()) if len(gaps) else None},
        "orders_per_min": float(starts.sum()) / minutes,
        "fills_per_order": len(ms) / float(starts.sum()),
        "intensity": intensity,
        "buy_share": float(buy.mean()),
        "buy_share_by_move": {
            "down": float(sh[mv < 0].mean()) if (mv < 0).any() else None,
            "flat": float(sh[mv == 0].mean()) if (mv == 0).any() else None,
            "up": float(sh[mv > 0].mean()) if (mv > 0).any() else None,
            "by_move_bps_quintile": _by_quintile(mv, sh),
        },
    }


def book_block(rec: Recording) -> dict[str, Any]:
    sp = np.rint((rec.touch_ask - rec.touch_bid) / rec.tick).astype(np.int64)
    sp_bps = (rec.touch_ask - rec.touch_bid) / ((rec.touch_ask + rec.touch_bid) / 2) * 1e4
    pmf = {str(k): float((sp == k).mean()) for k in range(1, 6)} | {"6+": float((sp >= 6).mean())}
    out: dict[str, Any] = {
        "touch_updates": len(sp),
        "tick": rec.tick,
        "spread_ticks_pmf": pmf,
        "spread_ticks_mean": float(sp.mean()) if len(sp) else None,
        "spread_bps": _q(sp_bps),
        "samples": len(rec.book_ms),
    }
    if not len(rec.book_ms):
        return out
    l1 = np.concatenate([rec.bid_px[:, 0] * rec.bid_qty[:, 0], rec.ask_px[:, 0] * rec.ask_qty[:, 0]])
    bid5 = np.nansum(rec.bid_px[:, :5] * rec.bid_qty[:, :5], 1)
    ask5 = np.nansum(rec.ask_px[:, :5] * rec.ask_qty[:, :5], 1)
    imb = (bid5 - ask5) / (bid5 + ask5)
    dt = np.diff(rec.book_ms) / 1000.0
    d_imb = np.diff(imb)[(dt > 0) & (dt <= 2.0)]  # changes between consecutive 1 s samples only
    out |= {
        "level1_notional": _q(l1),
        "top5_notional": _q(np.concatenate([bid5, ask5])),
        "cum_notional_within_bps": {f"{b:g}": _q(depth_within(rec, b)) for b in DEPTH_BPS},
        "imbalance_top5": {
            "std": float(np.std(imb)),
            "mean": float(np.mean(imb)),
            "change_1s_std": float(np.std(d_imb)) if len(d_imb) else None,
        },
    }
    return out


def reduce_recording(rec: Recording, generator: dict[str, Any] | None = None) -> dict[str, Any]:
    """The aggregate of one symbol's recording (``generator``: its fitted coefficients, when they could be fitted)."""
    has_trades = rec.n_trades >= 2
    has_book = len(rec.touch_ms) > 0
    if not (has_trades or has_book):
        raise ValueError(f"{rec.source} {rec.symbol}: neither trades nor book updates")
    t0 = min(x for x in (rec.trade_ms[:1].tolist() + rec.touch_ms[:1].tolist()))
    t1 = max(x for x in (rec.trade_ms[-1:].tolist() + rec.touch_ms[-1:].tolist()))
    out: dict[str, Any] = {
        "symbol": rec.symbol,
        "venue": rec.venue,
        "source": rec.source,
        "span": {"start": _iso(t0), "end": _iso(t1), "seconds": (t1 - t0) / 1000.0},
    }
    if has_trades:
        out["trades"] = trade_block(rec)
    if has_book:
        out["book"] = book_block(rec)
    if generator:
        out["generator"] = generator
    return rounded(out)
