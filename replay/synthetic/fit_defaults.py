"""Fit the synthetic generator's defaults from the real data in ``shared/data`` and write ``defaults.json``.

``python -m replay.synthetic.fit_defaults [--shared ../shared/data] [--out replay/synthetic/defaults.json]``

Sources and methods (each value in the output carries its unit, source files and method):

- Binance spot 1m (``klines/binance-spot-1m/*.csv.gz``, 90 days × 3 symbols):
  * trade intensity: OLS of ``log(trades)`` on ``log(volume / mean volume)`` per symbol → elasticity and residual σ
    (averaged over symbols); the level (trades per minute at the mean volume) is recorded per symbol.
  * aggressor split: OLS of the taker-buy share (``taker_buy_base / volume``) on the candle body ratio
    ``r = (close − open) / (high − low)``.
  * extremes order: the 1m bars are grouped into 5m candles; a 5m candle is "low first" when its lowest 1m low
    comes in an earlier 1m bar than its highest high (bars holding both are skipped). A logistic regression of
    low-first on the 5m body ratio gives P(low first | r); applied to 1m candles by scale invariance.
- Binance USD-M L2 recordings (``l2/*.gz``, ~345 s each, BTC and ETH): the book is rebuilt from the REST snapshot
  plus the ``depth@0ms`` diffs (Binance's ``U ≤ lastUpdateId+1 ≤ u`` / ``pu`` chaining) and sampled once a second:
  * spread in ticks (from every ``bookTicker``): pmf of spread / modal spread;
  * depth profile: median size at level rank j (1..50) relative to the median level-1 size; level-1 size relative to
    the traded volume per minute; median price gap (ticks) between consecutive levels by rank;
  * book imbalance over the top 50 levels: std of ``(B − A)/(B + A)`` and its regression on the sign of the past 5 s
    mid move (the only causal driver the generator uses);
  * trades: lognormal σ of sizes (robust: IQR of log size / 1.349), share of prints above 10× the median size and
    the Hill tail index above that threshold, inter-trade time median/mean, trades and volume per minute.

The output is deterministic: inputs are read in sorted order, no randomness, floats rounded to 6 significant digits.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = PROJECT_ROOT.parent / "shared" / "data"
DEFAULT_OUT = Path(__file__).resolve().parent / "defaults.json"
N_LEVELS = 50
LARGE_MULT = 10.0  # a "large print" is a trade above LARGE_MULT × the median trade size


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _val(value: Any, unit: str, sources: Iterable[str], method: str) -> dict[str, Any]:
    if isinstance(value, float):
        value = _sig(value)
    elif isinstance(value, list):
        value = [_sig(v) if isinstance(v, float) else v for v in value]
    return {"value": value, "unit": unit, "sources": sorted(sources), "method": method}


# ------------------------------------------------------------------------------------------------ Binance spot 1m
def _logistic_fit(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Two-parameter logistic regression by Newton-Raphson (deterministic, no dependencies)."""
    a = b = 0.0
    X = np.column_stack([np.ones_like(x), x])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a + b * x)))
        g = X.T @ (y - p)
        H = (X * (p * (1 - p))[:, None]).T @ X
        step = np.linalg.solve(H, g)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def fit_binance_spot(files: list[Path]) -> dict[str, Any]:
    srcs = [f"klines/binance-spot-1m/{f.name}" for f in files]
    elast, resid, level, alpha, beta = [], [], {}, [], []
    ox, oy = [], []
    for f in files:
        df = pd.read_csv(f)
        v = df["volume"].to_numpy(float)
        n = df["trades"].to_numpy(float)
        ok = (v > 0) & (n > 0)
        x = np.log(v[ok] / v[ok].mean())
        y = np.log(n[ok])
        b, a = np.polyfit(x, y, 1)
        elast.append(b)
        resid.append(float(np.std(y - (a + b * x))))
        level[f.name.split("_")[0]] = float(np.exp(a))
        o, h, low, c = (df[k].to_numpy(float) for k in ("open", "high", "low", "close"))
        rng = h - low
        ok2 = (rng > 0) & (v > 0)
        r = (c[ok2] - o[ok2]) / rng[ok2]
        share = df["taker_buy_base"].to_numpy(float)[ok2] / v[ok2]
        bb, aa = np.polyfit(r, share, 1)
        alpha.append(aa)
        beta.append(bb)
        # 5m candles from 1m bars: which bar holds the low vs the high
        m = len(df) // 5 * 5
        H5 = h[:m].reshape(-1, 5)
        L5 = low[:m].reshape(-1, 5)
        ih, il = H5.argmax(1), L5.argmin(1)
        o5, c5 = o[:m].reshape(-1, 5)[:, 0], c[:m].reshape(-1, 5)[:, -1]
        hh, ll = H5.max(1), L5.min(1)
        keep = (ih != il) & (hh > ll)
        ox.append(((c5 - o5) / np.where(hh > ll, hh - ll, 1.0))[keep])
        oy.append((il < ih)[keep].astype(float))
    x, y = np.concatenate(ox), np.concatenate(oy)
    oa, ob = _logistic_fit(x, y)
    return {
        "trade_count_elasticity": _val(float(np.mean(elast)), "d log(trades) / d log(volume)", srcs,
                                       "OLS of log(trades) on log(volume/mean volume) per 1m candle, "
                                       "mean over symbols"),
        "trade_count_resid_sigma": _val(float(np.mean(resid)), "log units", srcs,
                                        "std of the residual of that regression, mean over symbols"),
        "trades_per_min_at_mean_volume": _val({k: _sig(v) for k, v in sorted(level.items())}, "trades/min", srcs,
                                              "exp(intercept) of that regression, per symbol (information only)"),
        "taker_buy_intercept": _val(float(np.mean(alpha)), "share", srcs,
                                    "OLS of taker_buy_base/volume on (close-open)/(high-low), intercept"),
        "taker_buy_slope": _val(float(np.mean(beta)), "share per unit body ratio", srcs,
                                "OLS of taker_buy_base/volume on (close-open)/(high-low), slope"),
        "extreme_order_logit_intercept": _val(oa, "logit", srcs,
                                              "logistic P(low before high) on 5m body ratio from 1m bars"),
        "extreme_order_logit_slope": _val(ob, "logit per unit body ratio", srcs,
                                          "logistic P(low before high) on 5m body ratio from 1m bars"),
        "extreme_order_samples": _val(len(x), "5m candles", srcs,
                                      "5m candles whose high and low lie in different bars"),
    }


# --------------------------------------------------------------------------------------------- Binance USD-M L2
class _Book:
    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def load(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) > 0}

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        for side, rows in ((self.bids, bids), (self.asks, asks)):
            for p, q in rows:
                fp, fq = float(p), float(q)
                if fq == 0:
                    side.pop(fp, None)
                else:
                    side[fp] = fq

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return np.array(b, float), np.array(a, float)


def _read_l2(path: Path) -> dict[str, Any]:
    """Rebuild the book and collect samples from one recording."""
    lines = []
    with gzip.open(path, "rt") as f:
        for line in f:
            _, js = line.split(" ", 1)
            lines.append(json.loads(js))
    snap_i = next(i for i, m in enumerate(lines) if "lastUpdateId" in m)
    snap = lines[snap_i]
    book = _Book()
    book.load(snap["bids"], snap["asks"])
    last_u = snap["lastUpdateId"]
    synced = False
    diffs = [m["data"] for m in lines if m.get("stream", "").endswith("@depth@0ms")]
    trades = [m["data"] for m in lines if m.get("stream", "").endswith("@trade")]
    tickers = [m["data"] for m in lines if m.get("stream", "").endswith("@bookTicker")]
    samples: list[tuple[int, np.ndarray, np.ndarray]] = []
    next_sample = None
    for d in diffs:
        if d["u"] < last_u:
            continue
        if not synced:
            if not d["U"] <= last_u + 1 <= d["u"] and not d["U"] <= last_u <= d["u"]:
                continue
            synced = True
        elif d["pu"] != last_u:
            raise ValueError(f"{path.name}: depth diff chain broken at u={d['u']} (pu={d['pu']}, last={last_u})")
        book.apply(d["b"], d["a"])
        last_u = d["u"]
        t = d["E"]
        if next_sample is None:
            next_sample = t
        if t >= next_sample:
            b, a = book.top(N_LEVELS)
            if len(b) == N_LEVELS and len(a) == N_LEVELS and b[0, 0] < a[0, 0]:
                samples.append((t, b, a))
            next_sample += 1000
    return {"samples": samples, "trades": trades, "tickers": tickers}


def _tick_of(prices: np.ndarray) -> float:
    d = np.diff(np.unique(np.round(prices, 8)))
    return float(np.round(d[d > 0].min(), 8))


def fit_l2(files: list[Path]) -> dict[str, Any]:
    srcs = [f"l2/{f.name}" for f in files]
    spread_mult: list[np.ndarray] = []
    rel_profile, gaps, l1_ratio, imb_std, imb_coef, imb_corr, top10_share = [], [], [], [], [], [], []
    sig, body_sig, range_ratio, depth_sig, gap_bps, touch_sig = [], [], [], [], [], []
    large_share, hill, it_med, it_mean, tpm, vpm = [], [], [], [], [], []
    for f in files:
        rec = _read_l2(f)
        tk = rec["tickers"]
        bid = np.array([float(x["b"]) for x in tk])
        ask = np.array([float(x["a"]) for x in tk])
        tick = _tick_of(np.concatenate([bid, ask]))
        st = np.round((ask - bid) / tick).astype(int)
        modal = int(np.bincount(st[st > 0]).argmax())
        spread_mult.append(np.clip(np.round(st / modal), 1, 5).astype(int))
        tr = rec["trades"]
        q = np.array([float(x["q"]) for x in tr])
        T = np.array([int(x["T"]) for x in tr], dtype=np.int64)
        lq = np.log(q)
        iqr = np.subtract(*np.percentile(lq, [75, 25]))
        sig.append(iqr / 1.349)
        med = float(np.median(q))
        body = lq[q <= LARGE_MULT * med]
        body_sig.append(float(np.subtract(*np.percentile(body, [75, 25]))) / 1.349)
        big = q[q > LARGE_MULT * med]
        large_share.append(len(big) / len(q))
        hill.append(1.0 / np.mean(np.log(big / (LARGE_MULT * med))) if len(big) > 5 else 1.5)
        dt = np.diff(T) / 1000.0
        it_med.append(float(np.median(dt)))
        it_mean.append(float(np.mean(dt)))
        minutes = (T[-1] - T[0]) / 60000.0
        tpm.append(len(q) / minutes)
        vpm.append(q.sum() / minutes)
        S = rec["samples"]
        bsz = np.array([b[:, 1] for _, b, _ in S])
        asz = np.array([a[:, 1] for _, _, a in S])
        sizes = np.concatenate([bsz, asz])
        rel_profile.append(np.median(sizes, axis=0) / np.median(sizes[:, 0]))
        bgap = np.array([np.round(-np.diff(b[:, 0]) / tick) for _, b, _ in S])
        agap = np.array([np.round(np.diff(a[:, 0]) / tick) for _, _, a in S])
        gaps.append(np.median(np.concatenate([bgap, agap]), axis=0))
        mid_px = float(np.median((bid + ask) / 2))
        gap_bps.append(float(np.mean(np.concatenate([bgap, agap]))) * tick / mid_px * 1e4)
        touch = np.log(sizes[:, 0] / np.median(sizes[:, 0]))
        touch_sig.append(float(np.subtract(*np.percentile(touch, [75, 25]))) / 1.349)
        deep = np.log(sizes[:, 1:] / np.median(sizes[:, 1:], axis=0))
        depth_sig.append(float(np.subtract(*np.percentile(deep, [75, 25]))) / 1.349)
        # 1m trade-price range in ticks over sliding 60 s windows (5 s steps) -> modal spread / median range
        px = np.array([float(x["p"]) for x in tr])
        starts = np.arange(T[0], T[-1] - 60000, 5000)
        lo_i, hi_i = np.searchsorted(T, starts), np.searchsorted(T, starts + 60000)
        rngs = [(px[a:b].max() - px[a:b].min()) / tick for a, b in zip(lo_i, hi_i, strict=True) if b > a]
        range_ratio.append(modal / float(np.median(rngs)))
        l1_ratio.append(float(np.median(sizes[:, 0])) / vpm[-1])
        B, A = bsz.sum(1), asz.sum(1)
        imb = (B - A) / (B + A)
        imb_std.append(float(np.std(imb)))
        top10_share.append(float(np.median(sizes[:, :10].sum(1) / sizes.sum(1))))
        mid = np.array([(b[0, 0] + a[0, 0]) / 2 for _, b, a in S])
        past = np.sign(mid[5:] - mid[:-5])
        lr = np.log(B / A)[5:]
        c = np.polyfit(past, lr, 1)[0] if np.any(past != 0) else 0.0
        imb_coef.append(float(c))
        imb_corr.append(float(np.corrcoef(past, lr)[0, 1]) if np.std(past) > 0 else 0.0)
    pmf = np.bincount(np.concatenate(spread_mult), minlength=6)[1:6].astype(float)
    pmf /= pmf.sum()
    prof = np.mean(rel_profile, axis=0)
    gap = np.mean(gaps, axis=0)
    return {
        "spread_multiple_pmf": _val([float(x) for x in pmf], "probability of spread = j × modal spread, j=1..5", srcs,
                                    "histogram of bookTicker (ask-bid)/tick divided by the modal spread, clipped 1..5"),
        "depth_profile_rel": _val([float(x) for x in prof], "median size at level rank j / median level-1 size", srcs,
                                  "rebuilt book sampled each second, both sides pooled, mean over recordings"),
        "level_gap_ticks": _val([float(x) for x in gap], "ticks between consecutive levels (rank j→j+1)", srcs,
                                "median over 1 s samples of the price gap between consecutive levels"),
        "level1_size_per_minute_volume": _val(float(np.mean(l1_ratio)), "median level-1 size / traded volume per min",
                                              srcs, "ratio of the median level-1 size to the recording's volume/min"),
        "top10_depth_share": _val(float(np.mean(top10_share)), "share of top-50 depth in the top 10 levels", srcs,
                                  "median over 1 s samples"),
        "imbalance_std": _val(float(np.mean(imb_std)), "std of (B-A)/(B+A) over top 50 levels", srcs,
                              "1 s samples of the rebuilt book"),
        "imbalance_momentum_coef": _val(float(np.mean(imb_coef)), "d log(B/A) per sign of past 5 s mid move", srcs,
                                        "OLS of log(B/A) on sign(mid_t - mid_{t-5s})"),
        "imbalance_momentum_corr": _val(float(np.mean(imb_corr)), "correlation", srcs,
                                        "corr(log(B/A), sign of past 5 s mid move) (information only)"),
        "trade_size_body_sigma": _val(float(np.mean(body_sig)), "log units", srcs,
                                      f"IQR(log size)/1.349 over prints <= {LARGE_MULT:g} × median size"),
        "spread_range_ratio": _val(float(np.mean(range_ratio)), "modal spread / median 1m range (both in ticks)", srcs,
                                   "modal bookTicker spread over the median trade-price range of sliding 60 s windows"),
        "depth_size_log_sigma": _val(float(np.mean(depth_sig)), "log units", srcs,
                                     "IQR/1.349 of log(size / median size at that rank), ranks 2..50 pooled"),
        "touch_size_log_sigma": _val(float(np.mean(touch_sig)), "log units", srcs,
                                     "IQR/1.349 of log(level-1 size / its median), both sides pooled"),
        "level_gap_bps": _val(float(np.mean(gap_bps)), "bps", srcs,
                              "mean gap between consecutive levels (ranks 1..50) in ticks × tick / mid"),
        "trade_size_lognormal_sigma": _val(float(np.mean(sig)), "log units", srcs, "IQR(log size)/1.349 per recording"),
        "large_print_share": _val(float(np.mean(large_share)), "share of trades", srcs,
                                  f"share of trades with size > {LARGE_MULT:g} × median size"),
        "large_print_threshold_mult": _val(LARGE_MULT, "× median trade size", srcs, "definition of a large print"),
        "large_print_pareto_alpha": _val(float(np.mean(hill)), "tail index", srcs,
                                         "Hill estimator over prints above the large threshold"),
        "inter_trade_median_s": _val(float(np.mean(it_med)), "s", srcs, "median gap between consecutive trade T"),
        "inter_trade_mean_s": _val(float(np.mean(it_mean)), "s", srcs, "mean gap between consecutive trade T"),
        "l2_trades_per_min": _val(float(np.mean(tpm)), "trades/min", srcs, "information only"),
    }


def fit(shared: Path) -> dict[str, Any]:
    spot = sorted((shared / "klines" / "binance-spot-1m").glob("*.csv.gz"))
    l2 = sorted((shared / "l2").glob("*.gz"))
    if not spot or not l2:
        raise FileNotFoundError(f"{shared}: need klines/binance-spot-1m/*.csv.gz and l2/*.gz")
    out: dict[str, Any] = {"_doc": "Fitted defaults of the synthetic market generator; written by "
                           "`python -m replay.synthetic.fit_defaults`. Do not edit by hand."}
    out.update(fit_binance_spot(spot))
    out.update(fit_l2(l2))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    res = fit(args.shared)
    text = json.dumps(res, indent=1, sort_keys=True, allow_nan=False) + "\n"
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(res) - 1} values)")


if __name__ == "__main__":
    main()
