"""ImbalanceAnalyzer (STRATEGY.md §4): order-book pressure, its history, and the Bayesian trade belief.

``compute(sym, now, σ)`` takes σ = std% from *this* evaluation's VolumeAnalyzer (defect §12.12 was a stale σ). It reads
storage only (book_top, suspicious_orders, trade views) and never a clock. Without a valid book it returns
:data:`NEUTRAL_IMBALANCE` and leaves every piece of state untouched.

Per-symbol state: I_prev (book-imbalance EMA), the history ring, the Bayesian belief with its trade cursor, and the
incremental volume profile. The belief is kept as a deviation d = p − 0.5 so that a mirrored market (buys ↔ sells)
gives exactly the mirrored belief in floating point.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from bot.analysis.adaptive import AdaptParams, adapt, window_multiplier
from bot.analysis.profile import VolumeProfile as _Profile
from bot.analysis.results import (
    BEARISH,
    BULLISH,
    NEUTRAL,
    NEUTRAL_IMBALANCE,
    BayesianBelief,
    ClusterStats,
    DepthStats,
    ImbalanceResult,
)

__all__ = ["ImbalanceAnalyzer", "history_size", "profile_bin"]

_INF = math.inf
_nextafter = math.nextafter
_PROFILE_MIN_TRADES = 10


def history_size(base_samples: int, sigma: float, ad: AdaptParams) -> int:
    """§4.2 ring size: clamp(round(adapt(historical_samples, σ)), 5, 50)."""
    n = math.floor(adapt(float(base_samples), sigma, ad) + 0.5)
    return 5 if n < 5 else 50 if n > 50 else n


def profile_bin(tick: float, mid: float) -> float:
    """§4.7 bin: max(tickSize, 0.01 if mid > 100, 0.001 if mid > 10, else 0.0001)."""
    floor = 0.01 if mid > 100 else 0.001 if mid > 10 else 0.0001
    return tick if tick > floor else floor


class _SymbolState:
    __slots__ = ("belief", "history", "i_prev", "profile", "tick", "trade_cursor")

    def __init__(self, tick: float) -> None:
        self.tick = tick  # the instrument's tick size (static), kept here for the hot path
        self.i_prev: float | None = None
        self.history: deque[float] = deque()
        self.belief = 0.0  # d = p − 0.5
        self.trade_cursor = 0  # last trade seq already counted by the belief
        self.profile = _Profile()


class ImbalanceAnalyzer:
    """Computes §4 for one symbol per call."""

    def __init__(self, settings: Any, storage: Any, instruments: Mapping[str, Any]) -> None:
        im = settings.imbalance
        oh = settings.ohara
        self._storage = storage
        self._instruments = instruments
        self._ad = AdaptParams.from_settings(settings)
        self._depth_calc = int(im.depth_limit_for_calc)
        self._depth_levels = int(im.depth_levels)
        self._wi_weights = tuple(float(x) for x in im.weighted_levels_weights)
        self._n_top = max(self._depth_calc, self._depth_levels, len(self._wi_weights))
        self._alpha = float(im.smoothing_factor)
        self._cap = float(im.universal_imbalance_cap)
        self._eps = float(im.min_volume_epsilon)
        self._hist_on = bool(im.enable_historical_imbalance)
        self._hist_base = int(im.historical_samples)
        self._spoof_on = bool(im.enable_spoof_filter)
        self._spoof_lookback = float(settings.data_retention.spoof_lookback_sec)
        self._cluster_min = float(im.cluster_lookback_minutes)
        self._bayes_on = bool(oh.enable_bayesian_updating)
        self._bayes_step = float(oh.bayesian_update_step)
        self._bayes_decay = float(oh.bayesian_decay_factor)
        self._bull_d = float(oh.bayesian_bullish_threshold) - 0.5
        self._bear_d = float(oh.bayesian_bearish_threshold) - 0.5
        self._bayes_window = float(oh.bayesian_window_sec)
        self._bayes_max = int(oh.bayesian_max_trades)
        self._bayes_min = int(oh.bayesian_min_trades)
        self._ticks: dict[str, float] = {}
        self._state: dict[str, _SymbolState] = {}
        # window multiplier m -> (history ring size, cluster look-back in minutes): both depend on σ only through
        # m = window_multiplier(σ), which takes two or three values, so they are computed once per m
        self._by_m: dict[float, tuple[int, float]] = {}
        # the parameter objects the cache was filled from; None until first use, so a hot swap (bot.cycle.hotswap,
        # which copies only attributes that differ between two fresh instances) never copies it and the cache is
        # dropped once the swapped parameters are seen
        self._by_m_src: tuple[Any, ...] | None = None

    def _tick(self, sym: str) -> float:
        t = self._ticks.get(sym)
        if t is None:
            t = self._ticks[sym] = float(self._instruments[sym].tick_size)
        return t

    def _windows(self, sigma: float) -> tuple[int, float]:
        """(§4.2 history ring size, §4.7 cluster look-back in minutes) for this evaluation's σ, cached per m."""
        m = window_multiplier(sigma, self._ad)
        w = self._by_m.get(m)
        src = self._by_m_src
        if src is None or src[0] is not self._ad or src[1] is not self._hist_base or src[2] is not self._cluster_min:
            self._by_m.clear()
            self._by_m_src = (self._ad, self._hist_base, self._cluster_min)
            w = None
        if w is None:
            lb = adapt(self._cluster_min, sigma, self._ad)
            lb = 5.0 if lb < 5.0 else 60.0 if lb > 60.0 else lb
            w = self._by_m[m] = (history_size(self._hist_base, sigma, self._ad), lb)
        return w

    def compute(self, sym: str, now: float, sigma: float, fed: tuple[int, Any] | None = None) -> ImbalanceResult:
        """``fed``: (cursor, trades after it) from this evaluation's VolumeAnalyzer (see :meth:`_bayesian`)."""
        storage = self._storage
        if not storage.book_valid(sym, now):
            return NEUTRAL_IMBALANCE
        mid = storage.mid(sym)
        if mid is not None:
            mid = float(mid)
        # ≤ 50 levels: plain Python lists beat numpy's per-call overhead for these sums
        bid_p, bid_n = storage.book_levels(sym, "bid", self._n_top)
        ask_p, ask_n = storage.book_levels(sym, "ask", self._n_top)
        if mid is None or not bid_n or not ask_n:
            return NEUTRAL_IMBALANCE
        st = self._state.get(sym)
        if st is None:
            st = self._state[sym] = _SymbolState(self._tick(sym))
        eps = self._eps
        cap = self._cap

        # §4.1 book imbalance with the spoof filter (a list is sliced only when it holds more levels than used)
        nc = self._depth_calc
        bn = bid_n if nc >= len(bid_n) else bid_n[:nc]
        an = ask_n if nc >= len(ask_n) else ask_n[:nc]
        B = sum(bn)
        A = sum(an)
        spoof = 0.0
        if self._spoof_on:
            recs = storage.suspicious_orders(sym, now - self._spoof_lookback)
            if recs:
                sub_b, sub_a = self._spoof_subtraction(recs, (bid_p[:nc], bn), (ask_p[:nc], an), st.tick)
                spoof = sub_b + sub_a
                B = B - sub_b if sub_b < B else 0.0
                A = A - sub_a if sub_a < A else 0.0
        tot = B + A
        raw = 100.0 * (B - A) / tot if tot >= eps else 0.0
        raw = -cap if raw < -cap else cap if raw > cap else raw
        i_prev = st.i_prev
        i_t = raw if i_prev is None else (1.0 - self._alpha) * i_prev + self._alpha * raw
        st.i_prev = i_t

        # §4.2 history ring
        ring = st.history
        size, lookback = self._windows(sigma)
        while len(ring) >= size:  # keep the newest size − 1, then append → size
            ring.popleft()
        ring.append(i_t)
        n = len(ring)
        if not self._hist_on or n < 3:
            hist, trend, ivol, combined = i_t, 0.0, 0.0, i_t
        else:
            hist = sum(ring) / n
            trend = ring[-1] - ring[0]
            # Σ (x − hist)·(x − hist), in ring order (one list of the products: the same floats summed in the same
            # order as map(mul) over a list of deviations gave)
            ivol = math.sqrt(sum([(dx := x - hist) * dx for x in ring]) / (n - 1))
            combined = 0.7 * i_t + 0.3 * hist
            at = abs(trend)
            if at > 10.0:
                combined += trend * min(at / 50.0, 0.2)
            combined = -100.0 if combined < -100.0 else 100.0 if combined > 100.0 else combined

        # §4.3 depth ratio over the top depth_levels; d = (ratio − 0.5)·200 written antisymmetrically
        nd = self._depth_levels
        bl = sum(bid_n if nd >= len(bid_n) else bid_n[:nd])
        al = sum(ask_n if nd >= len(ask_n) else ask_n[:nd])
        lt = bl + al
        if lt > 0:
            ratio = bl / lt
            d = 100.0 * (bl - al) / lt
        else:
            ratio, d = 0.5, 0.0

        # §4.4 weighted top-5 imbalance
        wb = wa = 0.0
        for wk, nb_, na_ in zip(self._wi_weights, bid_n, ask_n, strict=False):
            wb += wk * nb_
            wa += wk * na_
        if len(bid_n) != len(ask_n):  # a side thinner than the weights: finish the other side alone
            m = min(len(bid_n), len(ask_n))
            wb += sum(wk * x for wk, x in zip(self._wi_weights[m:], bid_n[m:], strict=False))
            wa += sum(wk * x for wk, x in zip(self._wi_weights[m:], ask_n[m:], strict=False))
        wt = wb + wa
        wi = 100.0 * (wb - wa) / wt if wt >= eps else 0.0

        # §4.5
        e = 0.4 * combined + 0.3 * hist + 0.2 * wi + 0.1 * d

        bayes = self._bayesian(sym, now, st, fed)
        cluster = self._cluster(sym, now, lookback, mid, st)

        # result structs built positionally, in field order (pinned by tests/test_imbalance.py): msgspec's keyword
        # matching was a visible share of an evaluation
        return ImbalanceResult(
            True,  # valid
            i_t,  # imbalance_score
            raw,  # raw_imbalance
            B,  # bid_notional
            A,  # ask_notional
            spoof,  # spoof_filtered_volume
            hist,  # historical_imbalance
            trend,  # imbalance_trend
            ivol,  # imbalance_volatility
            n,  # history_size
            combined,  # combined_imbalance
            DepthStats(bl, al, ratio, d),  # depth: bid_liq, ask_liq, ratio, d
            wi,  # weighted_imbalance
            e,  # effective_imbalance
            cluster,
            bayes,
        )

    @staticmethod
    def _spoof_subtraction(
        recs: list[Any], bids: tuple[list[float], list[float]], asks: tuple[list[float], list[float]], tick: float
    ) -> tuple[float, float]:
        """§4.1: per record on a price still in the current book side, subtract min(current, recorded) notional.

        ``bids``/``asks`` are (prices, notionals) of the levels in use, best first. Several records at one price
        together never subtract more than the level's current notional (the same resting liquidity is not removed
        twice).
        """
        half = tick / 2.0
        left: dict[tuple[str, int], float] = {}
        sub = {"bid": 0.0, "ask": 0.0}
        for r in recs:
            prices, notionals = bids if r.side == "bid" else asks
            rp = r.price
            i = next((j for j, p in enumerate(prices) if abs(p - rp) <= half), -1)  # the first level within ½ tick
            if i < 0:
                continue
            key = (r.side, i)
            cur = left.get(key, notionals[i])
            take = r.notional if r.notional < cur else cur
            left[key] = cur - take
            sub[r.side] += take
        return sub["bid"], sub["ask"]

    def _bayesian(self, sym: str, now: float, st: _SymbolState, fed: tuple[int, Any] | None) -> BayesianBelief:
        """§4.6: each trade counted at most once (seq cursor), then decay toward 0.5 every evaluation.

        The cursor is a trade seq rather than the previous evaluation time so a trade stamped at or before that time
        but delivered after it is still counted once, never skipped. ``fed`` is the VolumeAnalyzer's
        ``trades_after_seq`` answer of this evaluation; for the same cursor it is this query's answer (no trade is
        ingested within an evaluation), except that a prune in between could drop trades older than clock −
        trade_retention_sec from its front, which the belief never reads: it reads [now − bayesian_window_sec, now].
        """
        storage = self._storage
        d = st.belief
        if self._bayes_on:
            cursor = st.trade_cursor
            new = fed[1] if fed is not None and fed[0] == cursor else storage.trades_after_seq(sym, cursor)
            k = len(new)
            if k:
                ts = new.ts
                # trades after now wait for a later evaluation; usually none is (then b = k without a search)
                b = k if ts.item(k - 1) <= now else int(ts.searchsorted(now, "right"))
                if b:
                    t0 = now - self._bayes_window
                    # new[a0:b] are the uncounted trades inside [now − window, now] (a0 = 0 without a search when
                    # they all are); they are among the trades count_between counts, so b − a0 ≥ min already
                    # settles the §4.6 minimum-trades check and the storage query is needed only below it
                    a0 = 0 if ts.item(0) >= t0 else int(ts.searchsorted(t0, "left"))
                    bmin = self._bayes_min
                    if b - a0 >= bmin or storage.count_between(sym, t0, _nextafter(now, _INF)) >= bmin:
                        # the newest bayesian_max_trades of them
                        a = max(a0, b - self._bayes_max)
                        if b > a:
                            nb = new.is_buy[a:b].tolist().count(True)  # ≤ bayesian_max_trades bools
                            d += self._bayes_step * (nb - (b - a - nb))
                            d = -0.5 if d < -0.5 else 0.5 if d > 0.5 else d
                    st.trade_cursor = new.seq.item(b - 1)
        d *= self._bayes_decay
        st.belief = d
        if d > self._bull_d:
            return BayesianBelief(0.5 + d, BULLISH, 2.0 * d)  # p, signal, confidence
        if d < self._bear_d:
            return BayesianBelief(0.5 + d, BEARISH, -2.0 * d)
        return BayesianBelief(0.5 + d, NEUTRAL, 0.0)

    def _cluster(self, sym: str, now: float, lb: float, mid: float, st: _SymbolState) -> ClusterStats:
        """§4.7 volume-profile POC over the adapted look-back ``lb`` (5–60 min, from :meth:`_windows`)."""
        bin_size = profile_bin(st.tick, mid)
        view = self._storage.trades_between(sym, now - lb * 60.0, _nextafter(now, _INF))
        prof = st.profile
        prof.update(view, bin_size)
        k = len(view)
        if k < _PROFILE_MIN_TRADES:
            return ClusterStats(None, 0.0, k, lb, bin_size)  # poc_price, poc_distance_pct, trades, lookback_min, bin
        poc = prof.poc()
        return ClusterStats(poc, 100.0 * (poc - mid) / mid, k, lb, bin_size)
