"""The statistics that say whether a market looks like the market: one function of a :class:`Recording`.

Real recordings and the synthetic market (turned into a ``Recording`` by :mod:`calibration.synthetic_tape`) go
through the same code, so every figure of the fidelity table is measured the same way on both sides.

Definitions (each one is what the bot reads, STRATEGY.md §3–§5):
- trades/min over the recording's span; per-trade notional = price·qty; inter-trade time = gap between consecutive
  trade times in ms (zero inside one aggressor order's sweep); an *order* = consecutive trades with the same ms and
  aggressor side (the fills of one taker order);
- active-second share = share of the whole seconds of the span that hold at least one trade;
- spread in ticks and bps from every touch update; 1-tick share = share of updates with spread == 1 tick;
- depth from the 1 s book samples, both sides pooled, medians: level-1 notional; cumulative notional within 5/10/25 bps
  of the mid counted over the top 50 levels (what a depth-50 subscriber sees: on fine-tick books the 50 levels may end
  before 25 bps, on both the real and the synthetic side alike);
- buy share = share of trades whose aggressor bought; also per minute, split by the minute's direction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from calibration.recordings import Recording

DEPTH_BPS = (5.0, 10.0, 25.0)


@dataclass(frozen=True)
class MarketStats:
    symbol: str
    venue: str
    source: str
    minutes: float
    trades_per_min: float
    orders_per_min: float
    fills_per_order: float
    notional_median: float
    notional_mean: float
    active_second_share: float
    inter_trade_zero_share: float
    spread_1tick_share: float
    spread_ticks_mean: float
    spread_bps_median: float
    depth_l1_notional: float
    depth_cum_notional: dict[str, float]
    buy_share: float
    buy_share_up_minutes: float | None
    buy_share_down_minutes: float | None
    samples: int
    # raw distributions for KS tests (not serialised)
    notional: np.ndarray = field(repr=False, compare=False)
    inter_trade_ms: np.ndarray = field(repr=False, compare=False)
    spread_ticks: np.ndarray = field(repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("notional", "inter_trade_ms", "spread_ticks"):
            d.pop(k)
        return d


def order_starts(ms: np.ndarray, is_buy: np.ndarray) -> np.ndarray:
    """True where a trade starts a new aggressor order (a new ms or a new side)."""
    out = np.ones(len(ms), bool)
    if len(ms) > 1:
        out[1:] = (np.diff(ms) != 0) | (is_buy[1:] != is_buy[:-1])
    return out


def minute_buy_shares(rec: Recording) -> tuple[float | None, float | None]:
    """Mean buy share of the complete minutes that went up / down (open → close of their trades)."""
    ms = rec.trade_ms
    minute = ms // 60_000
    first, last = int(minute[0]), int(minute[-1])
    up: list[float] = []
    down: list[float] = []
    for m in range(first + 1, last):  # complete minutes only
        a, b = np.searchsorted(minute, [m, m + 1])
        if b - a < 2:
            continue
        move = rec.trade_price[b - 1] - rec.trade_price[a]
        share = float(rec.trade_is_buy[a:b].mean())
        if move > 0:
            up.append(share)
        elif move < 0:
            down.append(share)
    return (float(np.mean(up)) if up else None), (float(np.mean(down)) if down else None)


def depth_within(rec: Recording, bps: float) -> np.ndarray:
    """Per sample and side (pooled, 2S values): notional of the top-50 levels within ``bps`` of the mid."""
    mid = (rec.bid_px[:, 0] + rec.ask_px[:, 0]) / 2.0
    bid_n = np.where(rec.bid_px >= (mid * (1 - bps / 1e4))[:, None], rec.bid_px * rec.bid_qty, 0.0)
    ask_n = np.where(rec.ask_px <= (mid * (1 + bps / 1e4))[:, None], rec.ask_px * rec.ask_qty, 0.0)
    return np.concatenate([np.nansum(bid_n, 1), np.nansum(ask_n, 1)])


def market_stats(rec: Recording) -> MarketStats:
    ms = rec.trade_ms
    if len(ms) < 2:
        raise ValueError(f"{rec.source} {rec.symbol}: fewer than 2 trades, nothing to measure")
    minutes = max((int(ms[-1]) - int(ms[0])) / 60_000.0, 1e-9)
    notional = rec.trade_price * rec.trade_qty
    starts = order_starts(ms, rec.trade_is_buy)
    sec = ms // 1000
    n_sec = int(sec[-1] - sec[0]) + 1
    gaps = np.diff(ms)
    sp = np.rint((rec.touch_ask - rec.touch_bid) / rec.tick).astype(np.int64)
    sp_bps = (rec.touch_ask - rec.touch_bid) / rec.touch_bid * 1e4
    l1 = np.concatenate([rec.bid_px[:, 0] * rec.bid_qty[:, 0], rec.ask_px[:, 0] * rec.ask_qty[:, 0]])
    up, down = minute_buy_shares(rec)
    return MarketStats(
        symbol=rec.symbol, venue=rec.venue, source=rec.source, minutes=minutes,
        trades_per_min=len(ms) / minutes, orders_per_min=float(starts.sum()) / minutes,
        fills_per_order=len(ms) / float(starts.sum()),
        notional_median=float(np.median(notional)), notional_mean=float(notional.mean()),
        active_second_share=len(np.unique(sec)) / n_sec,
        inter_trade_zero_share=float((gaps == 0).mean()),
        spread_1tick_share=float((sp == 1).mean()) if len(sp) else float("nan"),
        spread_ticks_mean=float(sp.mean()) if len(sp) else float("nan"),
        spread_bps_median=float(np.median(sp_bps)) if len(sp) else float("nan"),
        depth_l1_notional=float(np.nanmedian(l1)) if len(l1) else float("nan"),
        depth_cum_notional={f"{b:g}bps": float(np.median(depth_within(rec, b))) if len(rec.book_ms) else float("nan")
                            for b in DEPTH_BPS},
        buy_share=float(rec.trade_is_buy.mean()), buy_share_up_minutes=up, buy_share_down_minutes=down,
        samples=len(rec.book_ms), notional=notional, inter_trade_ms=gaps.astype(float), spread_ticks=sp,
    )


def pooled_stats(parts: list[MarketStats]) -> MarketStats:
    """Several measurements of the same span (e.g. generator seeds) as one: means of the scalar figures, medians of the
    depth figures, the raw distributions concatenated."""
    if not parts:
        raise ValueError("pooled_stats: nothing to pool")
    first = parts[0]

    def mean(name: str) -> float:
        return float(np.mean([getattr(p, name) for p in parts]))

    def mean_opt(name: str) -> float | None:
        vals = [getattr(p, name) for p in parts if getattr(p, name) is not None]
        return float(np.mean(vals)) if vals else None

    return MarketStats(
        symbol=first.symbol, venue=first.venue, source=first.source, minutes=first.minutes,
        trades_per_min=mean("trades_per_min"), orders_per_min=mean("orders_per_min"),
        fills_per_order=mean("fills_per_order"),
        notional_median=float(np.median(np.concatenate([p.notional for p in parts]))),
        notional_mean=float(np.mean(np.concatenate([p.notional for p in parts]))),
        active_second_share=mean("active_second_share"), inter_trade_zero_share=mean("inter_trade_zero_share"),
        spread_1tick_share=mean("spread_1tick_share"), spread_ticks_mean=mean("spread_ticks_mean"),
        spread_bps_median=float(np.median([p.spread_bps_median for p in parts])),
        depth_l1_notional=float(np.median([p.depth_l1_notional for p in parts])),
        depth_cum_notional={k: float(np.median([p.depth_cum_notional[k] for p in parts]))
                            for k in first.depth_cum_notional},
        buy_share=mean("buy_share"), buy_share_up_minutes=mean_opt("buy_share_up_minutes"),
        buy_share_down_minutes=mean_opt("buy_share_down_minutes"), samples=sum(p.samples for p in parts),
        notional=np.concatenate([p.notional for p in parts]),
        inter_trade_ms=np.concatenate([p.inter_trade_ms for p in parts]),
        spread_ticks=np.concatenate([p.spread_ticks for p in parts]),
    )
