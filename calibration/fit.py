"""Fit the synthetic generator's coefficients on real recordings (and, for the defaults, on real 1m trade counts).

Two layers, because one short recording cannot tell how a quantity scales from one symbol to another:

- **levels and shapes** (:func:`fit_levels`), from the recordings given: mean fill notional, fill-size shape (lognormal
  body, Pareto tail), fills per aggressor order, burstiness of the per-second activity and its response to price moves,
  buy probability by the second's move and by the move since the minute's open, spread distribution, level-1 notional,
  depth density per bps beyond level 1, level spacing and size dispersion, book imbalance. A level coefficient is
  stated at ``VOLUME_REF`` USDT/min through the cross-symbol elasticity it is paired with.
- **elasticities** (:func:`fit_elasticities`), across symbols and venues: log(quantity) on log(notional volume per
  minute) with a fixed effect per venue (Binance USD-M BTC/ETH L2 recordings, the 4 symbols of the Bybit capture), so
  the slope comes from the variation inside each venue.

``calibration compare --fit-on FILE`` refits the levels on FILE and keeps the project's elasticities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from calibration.recordings import Recording
from calibration.stats import order_starts
from replay.synthetic.params import VOLUME_REF

LARGE_MULT = 10.0  # a tail fill: above this multiple of the median fill
MAX_SPREAD_TICKS = 5


def volume_per_min(rec: Recording) -> float:
    ms = rec.trade_ms
    return float((rec.trade_price * rec.trade_qty).sum() / max((ms[-1] - ms[0]) / 60_000.0, 1e-9))


def _robust_sigma(x: np.ndarray) -> float:
    q75, q25 = np.percentile(x, [75, 25])
    return float((q75 - q25) / 1.349)


def _gmean(x: Sequence[float]) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(x, float)))))


def _logistic_offset(x: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50) -> float:
    """Slope b of P(y) = logistic(offset + b·x) by Newton-Raphson (one parameter, deterministic)."""
    b = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(offset + b * x)))
        g = float(np.sum(x * (y - p)))
        h = float(np.sum(x * x * p * (1 - p)))
        if h <= 0:
            break
        step = g / h
        b += step
        if abs(step) < 1e-10:
            break
    return b


def _seconds(rec: Recording) -> dict[str, np.ndarray]:
    """Per whole second of the span: orders, notional, last trade price (carried), order sides."""
    ms = rec.trade_ms
    sec = ms // 1000 - ms[0] // 1000
    S = int(sec[-1]) + 1
    starts = order_starts(ms, rec.trade_is_buy)
    osec = sec[starts]
    orders = np.bincount(osec, minlength=S)
    notional = np.bincount(sec, weights=rec.trade_price * rec.trade_qty, minlength=S)
    last_idx = np.searchsorted(sec, np.arange(S), side="right") - 1
    last = rec.trade_price[np.maximum(last_idx, 0)]
    return {"orders": orders, "notional": notional, "last": last, "osec": osec, "obuy": rec.trade_is_buy[starts],
            "oprice": rec.trade_price[starts], "oms": ms[starts]}


def fit_levels(recs: Sequence[Recording], elasticities: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Level and shape coefficients from ``recs`` (pooled); each value carries unit, sources and method."""
    if not recs:
        raise ValueError("fit_levels: no recordings")
    srcs = sorted({f"{r.source}:{r.symbol}" for r in recs})
    fill_lvl, touch_lvl, dens_lvl, touch_sig, deep_sig, gaps, spreads = [], [], [], [], [], [], []
    rel_fills: list[np.ndarray] = []
    nfills: list[np.ndarray] = []
    shape, move_coef, rate_el, imb_std, imb_coef = [], [], [], [], []
    by_move = {-1: [0.0, 0.0], 0: [0.0, 0.0], 1: [0.0, 0.0]}
    trend_x, trend_y, trend_off = [], [], []
    for r in recs:
        V = volume_per_min(r)
        rel = V / VOLUME_REF
        notional = r.trade_price * r.trade_qty
        fill_lvl.append(float(notional.mean()) / rel ** elasticities["fill_notional_elasticity"])
        rel_fills.append(notional / np.median(notional))
        starts = order_starts(r.trade_ms, r.trade_is_buy)
        nfills.append(np.diff(np.append(np.flatnonzero(starts), len(starts))))
        # per-second activity: overdispersion of order counts, response to |move|
        s = _seconds(r)
        cnt = s["orders"].astype(float)
        m, v = cnt.mean(), cnt.var()
        shape.append(m * m / (v - m) if v > m else 10.0)
        mv = np.abs(np.diff(s["last"], prepend=s["last"][0]))
        sig = np.std(np.diff(s["last"])) or 1.0
        x = mv / sig
        moving, flat = x > 0, x == 0
        if moving.any() and flat.any() and s["notional"][flat].mean() > 0:
            # activity ∝ 1 + c·x: c from notional in moving vs flat seconds; the trade count follows notional^β
            rn = s["notional"][moving].mean() / s["notional"][flat].mean()
            ro = cnt[moving].mean() / max(cnt[flat].mean(), 1e-9)
            move_coef.append(float(max(0.0, (rn - 1) / x[moving].mean())))
            if rn > 1.05 and ro > 0:
                rate_el.append(float(np.clip(1 - np.log(ro) / np.log(rn), 0.0, 1.0)))
        # sides: by the sign of the second's move, and the move since the minute's open
        dmove = np.sign(np.diff(s["last"], prepend=s["last"][0])).astype(int)
        osec, obuy = s["osec"], s["obuy"]
        om = dmove[osec]
        for k in (-1, 0, 1):
            sel = om == k
            by_move[k][0] += float(obuy[sel].sum())
            by_move[k][1] += float(sel.sum())
        minute = s["oms"] // 60_000
        mstart = np.searchsorted(r.trade_ms // 60_000, minute)
        m_open = r.trade_price[mstart]
        rng_ticks = _median_minute_range_ticks(r)
        trend_x.append((s["oprice"] - m_open) / r.tick / max(rng_ticks, 1.0))
        trend_y.append(obuy.astype(float))
        trend_off.append(om)
        # book
        sp = np.rint((r.touch_ask - r.touch_bid) / r.tick).astype(np.int64)
        spreads.append(np.clip(sp, 1, MAX_SPREAD_TICKS))
        l1 = np.concatenate([r.bid_px[:, 0] * r.bid_qty[:, 0], r.ask_px[:, 0] * r.ask_qty[:, 0]])
        l1 = l1[np.isfinite(l1) & (l1 > 0)]
        touch_lvl.append(float(np.median(l1)) / float(notional.mean()))
        touch_sig.append(_robust_sigma(np.log(l1 / np.median(l1))))
        dens = _deep_density(r)
        dens_lvl.append(dens / rel ** elasticities["depth_density_elasticity"])
        sizes = np.concatenate([r.bid_px[:, 1:] * r.bid_qty[:, 1:], r.ask_px[:, 1:] * r.ask_qty[:, 1:]])
        ratio = float(np.nanmean(sizes) / np.nanmedian(sizes))
        deep_sig.append(math.sqrt(2 * math.log(max(ratio, 1.0))))
        tick_bps = r.tick / float(np.median(r.trade_price)) * 1e4
        spacing = np.nanmean(np.concatenate([-np.diff(r.bid_px, axis=1), np.diff(r.ask_px, axis=1)])) / r.tick
        if spacing > 1.05:  # only books finer than their level spacing say what the spacing is
            gaps.append(spacing * tick_bps)
        B = np.nansum(r.bid_px * r.bid_qty, 1)
        A = np.nansum(r.ask_px * r.ask_qty, 1)
        imb = (B - A) / (B + A)
        imb_std.append(float(np.std(imb)))
        mid = (r.bid_px[:, 0] + r.ask_px[:, 0]) / 2
        if len(mid) > 6:
            past = np.sign(mid[5:] - mid[:-5])
            lba = np.log(B / A)[5:]
            imb_coef.append(float(np.polyfit(past, lba, 1)[0]) if np.any(past != 0) else 0.0)
    allf = np.concatenate(rel_fills)
    big = allf > LARGE_MULT
    body_med = float(np.median(allf[~big]))
    body_sigma = _robust_sigma(np.log(allf[~big] / body_med))
    tail = allf[big] / LARGE_MULT
    alpha = float(1.0 / np.mean(np.log(tail))) if len(tail) > 5 else 1.5
    nf = np.concatenate(nfills)
    single = float(np.mean(nf == 1))
    multi_mean = float(nf[nf > 1].mean()) if (nf > 1).any() else 2.0
    probs = [by_move[k][0] / by_move[k][1] if by_move[k][1] else 0.5 for k in (-1, 0, 1)]
    probs = [min(max(p, 0.02), 0.98) for p in probs]
    off_logit = np.log(np.asarray(probs) / (1 - np.asarray(probs)))
    tx, ty = np.concatenate(trend_x), np.concatenate(trend_y)
    toff = off_logit[np.concatenate(trend_off) + 1]
    trend = _logistic_offset(tx, ty, toff)
    pmf = np.bincount(np.concatenate(spreads), minlength=MAX_SPREAD_TICKS + 1)[1:].astype(float)
    pmf /= pmf.sum()
    # the body median relative to the median of all fills (the generator scales by the mean: only ratios matter)
    res: dict[str, dict[str, Any]] = {
        "fill_notional_coef": _v(_gmean(fill_lvl), "USDT per fill at 1M USDT/min", srcs,
                                 "mean trade notional / (volume per min / 1M)^fill_notional_elasticity, geometric "
                                 "mean over recordings"),
        "fill_log_sigma": _v(body_sigma, "log units", srcs,
                             f"IQR/1.349 of log(notional / their median) over trades ≤ {LARGE_MULT:g}× the median"),
        "large_fill_share": _v(float(big.mean()), "share of trades", srcs,
                               f"share of trades above {LARGE_MULT:g}× the recording's median notional"),
        "large_fill_mult": _v(LARGE_MULT / body_med, "× body median", srcs,
                              f"the tail starts at {LARGE_MULT:g}× the median trade, stated in body medians"),
        "large_fill_alpha": _v(alpha, "tail index", srcs, "Hill estimator above the tail threshold"),
        "single_fill_share": _v(single, "share of orders", srcs,
                                "orders = consecutive trades with the same ms and aggressor side"),
        "multi_fill_mean": _v(max(multi_mean, 2.0), "fills", srcs, "mean fill count of orders with ≥ 2 fills"),
        "activity_shape": _v(float(np.median(shape)), "gamma shape", srcs,
                             "mean² / (variance − mean) of orders per second (negative-binomial moment fit)"),
        "activity_move_coef": _v(float(np.median(move_coef)) if move_coef else 1.0, "per unit |move|/σ", srcs,
                                 "(notional in seconds whose price moved / in flat seconds − 1) / mean |1 s move|/σ "
                                 "of the moving seconds"),
        "fill_rate_elasticity": _v(float(np.median(rate_el)) if rate_el else 0.5,
                                   "d log(mean fill) / d log(local volume rate)", srcs,
                                   "1 − log(order-count ratio) / log(notional ratio), moving vs flat seconds"),
        "buy_prob_by_move": _v([float(p) for p in probs], "P(order buys) for a down / flat / up second", srcs,
                               "share of buying orders among orders in seconds whose last price fell / held / rose"),
        "buy_trend_coef": _v(trend, "logit per unit (price − minute open) / median 1m range", srcs,
                             "logistic regression of the order side with the by-move logit as offset"),
        "spread_ticks_pmf": _v([float(x) for x in pmf], f"P(spread = j ticks), j = 1..{MAX_SPREAD_TICKS}", srcs,
                               "every touch update, spreads clipped to 1..5 ticks"),
        "touch_fill_multiple": _v(_gmean(touch_lvl), "mean fills", srcs,
                                  "median level-1 notional / mean trade notional, geometric mean over recordings"),
        "touch_size_log_sigma": _v(float(np.mean(touch_sig)), "log units", srcs,
                                   "IQR/1.349 of log(level-1 notional / its median)"),
        "depth_density_coef": _v(_gmean(dens_lvl), "USDT per bps at 1M USDT/min", srcs,
                                 "median over 1 s samples of (notional of levels 2..50) / (their span in bps), "
                                 "per (volume per min / 1M)^depth_density_elasticity"),
        "depth_size_log_sigma": _v(float(np.mean(deep_sig)), "log units", srcs,
                                   "sqrt(2·ln(mean / median)) of the notional of levels 2..50 (the lognormal σ with "
                                   "that mean-to-median ratio)"),
        "imbalance_std": _v(float(np.mean(imb_std)), "std of (B−A)/(B+A), top 50", srcs, "1 s book samples"),
        "imbalance_momentum_coef": _v(float(np.mean(imb_coef)) if imb_coef else 0.0,
                                      "d log(B/A) per sign of the past 5 s mid move", srcs, "OLS on 1 s samples"),
    }
    if gaps:
        res["level_gap_bps"] = _v(float(np.mean(gaps)), "bps", srcs,
                                  "mean spacing of the top-50 levels (ticks) × tick in bps, books finer than their "
                                  "spacing only")
    return res


def _median_minute_range_ticks(r: Recording) -> float:
    minute = r.trade_ms // 60_000
    edges = np.flatnonzero(np.diff(minute)) + 1
    parts = np.split(r.trade_price, edges)
    rng = [(p.max() - p.min()) / r.tick for p in parts if len(p) > 1]
    return float(np.median(rng)) if rng else 1.0


def _deep_density(r: Recording) -> float:
    """Median over samples of the notional of levels 2..50 per bps they span (both sides pooled)."""
    out = []
    for px, qty, sgn in ((r.bid_px, r.bid_qty, 1), (r.ask_px, r.ask_qty, -1)):
        n_levels = np.sum(np.isfinite(px), axis=1)
        ok = n_levels >= 10
        far = px[np.arange(len(px)), np.maximum(n_levels - 1, 0)]
        span = sgn * (px[:, 0] - far) / px[:, 0] * 1e4
        deep = np.nansum(px[:, 1:] * qty[:, 1:], axis=1)
        ok &= span > 0
        out.append(deep[ok] / span[ok])
    x = np.concatenate(out)
    return float(np.median(x)) if len(x) else math.nan


def fit_elasticities(recs: Sequence[Recording]) -> dict[str, dict[str, Any]]:
    """Cross-symbol elasticities: OLS of log(quantity) on log(volume/min) with a fixed effect per venue."""
    srcs = sorted({f"{r.source}:{r.symbol}" for r in recs})
    venues = sorted({r.venue for r in recs})
    lv = np.log([volume_per_min(r) for r in recs])
    X = np.column_stack([np.ones(len(recs)), lv] + [[r.venue == v for r in recs] for v in venues[1:]]).astype(float)

    def slope(y: list[float]) -> float:
        return float(np.linalg.lstsq(X, np.log(y), rcond=None)[0][1])

    mean_fill = [float((r.trade_price * r.trade_qty).mean()) for r in recs]
    dens = [_deep_density(r) for r in recs]
    method = (f"cross-section of {len(recs)} recordings ({', '.join(venues)}): OLS of log(quantity) on "
              "log(notional volume per minute) with a venue fixed effect")
    return {
        "fill_notional_elasticity": _v(slope(mean_fill), "d log(mean fill notional) / d log(volume)", srcs, method),
        "depth_density_elasticity": _v(slope(dens), "d log(depth per bps) / d log(volume)", srcs, method),
    }


def _v(value: Any, unit: str, sources: Sequence[str], method: str) -> dict[str, Any]:
    if isinstance(value, float):
        value = float(f"{value:.6g}")
    elif isinstance(value, list):
        value = [float(f"{x:.6g}") for x in value]
    return {"value": value, "unit": unit, "sources": sorted(sources), "method": method}


def values(fitted: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{name: value}`` of a fitted mapping (what ``GeneratorParams.calibrate_from_ws_stats`` takes)."""
    return {k: v["value"] for k, v in fitted.items() if not k.startswith("_")}


def refine_by_simulation(params: Any, recs: Sequence[Recording], rounds: int = 3, seed: int = 1,
                         points_per_candle: int | None = None) -> Any:
    """Adjust the level coefficients until the generator, run on the fit recordings' own candles, reproduces what the
    recordings show (indirect inference): the generator's own variation (per-second activity, size scaling with the
    local rate, the candle's volume schedule) widens and shifts the marginal distributions, so fitting the marginals
    directly would count that variation twice. Adjusted: mean fill notional, body σ and tail share of the fill sizes,
    fills per order, median level-1 notional and the depth density (cumulative depth within 10 bps)."""
    from calibration.stats import market_stats
    from calibration.synthetic_tape import synthetic_recording

    real = [market_stats(_complete(r)) for r in recs]
    for _ in range(rounds):
        kw = {} if points_per_candle is None else {"points_per_candle": points_per_candle}
        syn = [market_stats(synthetic_recording(r, params, seed=seed, **kw)) for r in recs]

        def ratio(get: Any, real_: Any = real, syn_: Any = syn) -> float:
            return _gmean([max(get(a), 1e-12) / max(get(b), 1e-12) for a, b in zip(real_, syn_, strict=True)])

        def log_iqr(s: Any) -> float:
            q75, q25 = np.percentile(np.log(s.notional), [75, 25])
            return float(q75 - q25)

        def depth10(s: Any) -> float:
            return s.depth_cum_notional["10bps"] - s.depth_l1_notional

        multi = params.multi_fill_mean * ratio(lambda s: s.fills_per_order) ** 1.5
        skew = ratio(lambda s: s.notional_mean / s.notional_median)
        params = params.calibrate_from_ws_stats({
            "fill_notional_coef": params.fill_notional_coef * ratio(lambda s: s.notional_mean),
            "fill_log_sigma": params.fill_log_sigma * ratio(log_iqr),
            "large_fill_share": min(0.6, params.large_fill_share * skew),
            "multi_fill_mean": max(2.0, multi),
            "touch_fill_multiple": params.touch_fill_multiple * ratio(lambda s: s.depth_l1_notional),
            "depth_density_coef": params.depth_density_coef * ratio(depth10),
        })
    return params


def _complete(rec: Recording) -> Recording:
    from calibration.synthetic_tape import complete_minutes

    return rec.window(*complete_minutes(rec))
