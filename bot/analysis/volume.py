"""VolumeAnalyzer (STRATEGY.md §5): trade-flow features of one symbol at one instant.

Every number comes from windowed DataStorage queries (prefix sums, zero-copy views), never from a copy of the trade
history, and the analyzer never writes to storage nor reads a clock: ``now`` is an argument. Windows "over
[now − W, now]" include trades stamped exactly ``now``; storage windows are half-open ``[t0, t1)``, so the upper bound
passed is ``nextafter(now, +inf)``.

Per-symbol state (small explicit objects in :mod:`bot.analysis.rings`) is limited to what §5 calls incremental: the
volume-bucket ring with its EMAs (§5.5) and the trade-size ring with its seq cursor (§5.6). Both are
cadence-independent: a bucket or a trade enters exactly once however often, or rarely, ``compute`` is called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bot.analysis.adaptive import AdaptParams, adapt, adapt_with, window_multiplier
from bot.analysis.results import (
    CONFIRMED,
    HIGH,
    MEDIUM_BUY,
    MEDIUM_SELL,
    MODERATE,
    NEUTRAL,
    NORMAL,
    STRONG_BUY,
    STRONG_SELL,
    UNKNOWN,
    VERY_HIGH,
    VERY_LOW,
    WEAK,
    Confirmation,
    FrequencyStats,
    LargeOrderFlow,
    TapeStats,
    VolumeResult,
)
from bot.analysis.rings import Buckets, SizeRing, SymbolState

__all__ = ["VolumeAnalyzer", "adapt", "classify_buy_ratio", "classify_confirmation", "classify_frequency"]

_INF = math.inf
_nextafter = math.nextafter
_add_reduce = np.add.reduce
_add_reduceat = np.add.reduceat
_greater = np.greater
_logical_and = np.logical_and
_empty = np.empty
_bool = np.bool_
# np.count_nonzero is a Python wrapper that, with no axis, calls this C function: skip the wrapper (~0.5 µs a call)
_count_nonzero = getattr(getattr(np, "_core", None), "multiarray", np).count_nonzero

# §5.2 defaults when the volatility window holds too few trades.
DEFAULT_RANGE_PCT = 0.1
DEFAULT_ATR_PCT = 0.05
DEFAULT_STD_PCT = 0.1

# Relative price difference below which two half-window means count as equal (float noise is not a price move).
_PRICE_EQ_REL = 1e-12


def classify_buy_ratio(buy_ratio: float) -> str:
    """§5.6 bands on large buy notional / large notional."""
    if buy_ratio > 0.7:
        return STRONG_BUY
    if buy_ratio > 0.6:
        return MEDIUM_BUY
    if buy_ratio > 0.4:
        return NEUTRAL
    if buy_ratio > 0.3:
        return MEDIUM_SELL
    return STRONG_SELL


def classify_frequency(ratio: float, very_high: float, high: float, very_low: float) -> str:
    """§5.7 rate-ratio regime."""
    if ratio >= very_high:
        return VERY_HIGH
    if ratio >= high:
        return HIGH
    if ratio <= very_low:
        return VERY_LOW
    return NORMAL


def classify_confirmation(z: float, confirm_z: float, weak_z: float) -> str:
    """§5.8 status once the price move is large enough (z None is passed as 0)."""
    if z > confirm_z:
        return CONFIRMED
    if z > 0:
        return MODERATE
    if z < weak_z:
        return WEAK
    return NEUTRAL


class VolumeAnalyzer:
    """Computes §5 for one symbol per call; holds only the incremental per-symbol state of §5.5 and §5.6."""

    def __init__(self, settings: Any, storage: Any) -> None:
        v = settings.volume
        self._storage = storage
        self._ad = AdaptParams.from_settings(settings)
        self._eps = float(settings.imbalance.min_volume_epsilon)
        self._short = float(v.short_window_sec)
        self._min_trades = int(v.default_min_trades)
        self._vol_win = float(v.volatility_window_sec)
        self._vol_min = int(v.volatility_min_trades)
        if v.enable_multi_timeframe_momentum:
            self._mom_windows: tuple[float, ...] | None = tuple(float(w) for w in v.momentum_windows)
            self._mom_weights = tuple(float(w) for w in v.momentum_weights)
        else:
            self._mom_windows = None  # short window only, weight 1
            self._mom_weights = (1.0,)
        self._tape_large = float(v.tape_large_trade_notional)
        self._spike_pct = float(settings.signals.spike_acceleration_pct)
        self._bucket = float(v.volume_bucket_sec)
        self._bucket_cap = int(v.volume_lookback_periods)
        self._bucket_min = int(v.volume_min_samples)
        self._alpha_fast = 2.0 / (20 + 1)
        self._alpha_slow = 2.0 / (100 + 1)
        self._freq_on = bool(v.enable_trade_frequency_analysis)
        self._freq_min = int(v.frequency_min_baseline_trades)
        self._freq_base = float(v.frequency_baseline_window_sec)
        self._freq_cur = float(v.frequency_current_window_sec)
        self._freq_vh = float(v.frequency_very_high_multiplier)
        self._freq_h = float(v.frequency_high_multiplier)
        self._freq_vl = float(v.frequency_very_low_multiplier)
        self._conf_on = bool(v.enable_volume_confirmation)
        self._conf_n = int(v.volume_confirmation_trades)
        self._conf_min_pct = float(v.volume_confirmation_min_price_change_pct)
        self._conf_z = float(v.volume_confirmation_zscore)
        self._weak_z = float(v.volume_weak_zscore)
        self._lo_on = bool(v.enable_large_order_flow)
        self._lo_window = float(v.large_order_flow_window_sec)
        self._lo_cap = int(v.large_order_lookback_periods)
        self._lo_age = float(v.large_order_lookback_sec)
        self._lo_min = int(v.large_order_min_samples)
        self._lo_z = float(v.large_trade_zscore)
        self._state: dict[str, SymbolState] = {}
        # (short window, momentum windows) per window multiplier: m takes one of three values, and both are pure
        # functions of it, so they are adapted once per value instead of once per evaluation
        self._windows: dict[float, tuple[float, tuple[float, ...]]] = {}
        # the parameter objects the cache was filled from; None until first use, so a hot swap (bot.cycle.hotswap,
        # which copies only attributes that differ between two fresh instances) never copies it and the cache is
        # dropped once the swapped parameters are seen
        self._windows_src: tuple[Any, ...] | None = None
        # (symbol, seq cursor, view of the trades after it) of the last _large_orders query: see trades_fed
        self._fed: tuple[str, int, Any] | None = None
        # the (0, j) split indices of _tape's two reduceat calls, reused: a tuple index is converted to a fresh intp
        # array on every call (a third of the call's cost); j is written through the memoryview
        self._split = np.zeros(2, np.intp)
        self._split_j = memoryview(self._split)

    def _sym_state(self, sym: str) -> SymbolState:
        st = self._state.get(sym)
        if st is None:
            st = self._state[sym] = SymbolState(self._bucket_cap, self._lo_cap)
        return st

    # ------------------------------------------------------------------ §5 entry point
    def compute(self, sym: str, now: float) -> VolumeResult:
        storage = self._storage
        st = self._sym_state(sym)
        hi = _nextafter(now, _INF)

        # §5.2 volatility over [now − volatility_window_sec, now]
        ps = storage.price_stats(sym, now - self._vol_win, hi)
        n_vol = ps.n
        if n_vol >= self._vol_min and n_vol >= 2 and ps.mean > 0:
            inv = 100.0 / ps.mean
            range_pct = (ps.max - ps.min) * inv
            atr_pct = ps.mean_abs_change * inv
            std_pct = ps.std * inv
        else:
            range_pct, atr_pct, std_pct = DEFAULT_RANGE_PCT, DEFAULT_ATR_PCT, DEFAULT_STD_PCT
        vscore = 10.0 * (range_pct + atr_pct + std_pct) / 3.0
        vscore = 100.0 if vscore > 100.0 else vscore
        m = window_multiplier(std_pct, self._ad)
        wins = self._windows.get(m)
        src = self._windows_src
        if src is None or src[0] is not self._ad or src[1] is not self._short or src[2] is not self._mom_windows:
            self._windows.clear()
            self._windows_src = (self._ad, self._short, self._mom_windows)
            wins = None
        if wins is None:
            wins = self._windows[m] = self._adapted_windows(m)
        short, windows = wins

        # §5.4 tape over the adapted short window (one zero-copy view serves count, large trades, halves)
        tv = storage.trades_between(sym, now - short, hi)

        # §5.3 momentum
        # (and the §5.5 current-bucket window and the §5.7 frequency windows: every one ends at now, so one
        # multi-window storage query serves all; see _frequency for the two trade counts it yields)
        t0s = [now - w for w in windows]
        t0s.append(_nextafter(now - self._bucket, _INF))
        freq_on = self._freq_on
        if freq_on:
            t0s += (now - self._freq_cur, now - self._freq_base, now)
        sums = storage.side_sums_multi(sym, t0s, hi)
        if freq_on:
            at_now, base_s, cur_s = sums.pop(), sums.pop(), sums.pop()
            # [now − base, now) = [now − base, hi) minus the trades stamped exactly now
            n_base = base_s.count_buy + base_s.count_sell - at_now.count_buy - at_now.count_sell
            freq = self._frequency(n_base, cur_s.count_buy + cur_s.count_sell)
        else:
            freq = FrequencyStats()
        cv_s = sums.pop()
        comps, mom = self._momentum(sums)

        # the tape's second half starts at now − short/2; with the default windows that is the first momentum window's
        # start (15·m = 30·m/2 exactly), whose count gives the split without a search (see _tape)
        t_half = now - short / 2.0
        s0 = sums[0]
        n_half = s0.count_buy + s0.count_sell if t_half == t0s[0] else -1
        tape, short_count = self._tape(tv, t_half, n_half)

        # §5.5 activity z-score
        b = st.buckets
        self._advance_buckets(sym, now, b)
        cv = cv_s.notional_buy + cv_s.notional_sell
        nb = len(b.ring)
        if nb >= self._bucket_min:
            z: float | None = (cv - b.mu) / b.sd if b.sd > 0 else 0.0
            ema_ratio = cv / b.ema_slow if b.ema_slow else None
        else:
            z = ema_ratio = None

        large = self._large_orders(sym, now, hi, st.sizes) if self._lo_on else LargeOrderFlow()
        if self._conf_on:
            newest = st.sizes.cursor if self._lo_on else -1  # _large_orders leaves the cursor at the newest seq
            conf = self._confirmation(sym, 0.0 if z is None else z, tv, newest)
        else:
            conf = Confirmation()

        # positional, in field order (pinned by tests/test_volume_struct_order.py): msgspec's keyword matching of 23
        # names cost several times the rest of the construction
        return VolumeResult(
            n_vol >= self._vol_min and short_count >= self._min_trades,  # data_ok
            short_count,  # short_trades_count
            n_vol,  # volatility_trades_count
            short,  # short_window_sec
            windows,  # momentum_windows_sec
            mom,  # momentum_score
            comps,  # momentum_components
            tape,
            range_pct,  # volatility
            std_pct,  # recent_volatility
            vscore,  # volatility_score
            range_pct,
            atr_pct,
            std_pct,
            z,  # volume_z
            ema_ratio,
            cv,  # current_volume
            b.ema_fast,
            b.ema_slow,
            nb,  # bucket_count
            freq,  # frequency
            conf,  # confirmation
            large,  # large_orders
        )

    def trades_fed(self, sym: str) -> tuple[int, Any] | None:
        """(cursor, ``trades_after_seq(sym, cursor)``) as queried by the last :meth:`compute` of ``sym``, or None.

        :func:`bot.analysis.evaluate` hands it to the ImbalanceAnalyzer, whose Bayesian cursor is usually the same
        seq, so the second storage query of the same trades is skipped; valid only until storage next changes, so
        it is handed out once (a later call without a compute in between gets None, never a stale view).
        """
        fed = self._fed
        self._fed = None
        if fed is None or fed[0] != sym:
            return None
        return fed[1], fed[2]

    # ------------------------------------------------------------------ pieces
    def _adapted_windows(self, m: float) -> tuple[float, tuple[float, ...]]:
        """§5.2/§5.3: the short window and the momentum windows adapted with multiplier ``m``."""
        ad = self._ad
        short = adapt_with(self._short, m, ad)
        if self._mom_windows is None:
            return short, (short,)
        return short, tuple([adapt_with(w, m, ad) for w in self._mom_windows])

    def _momentum(self, sums: list[Any]) -> tuple[tuple[float, ...], float]:
        """§5.3 (m_k per window, Σ w_k·m_k) from the windows' side sums. m_k is the notional flow imbalance, 0 with
        fewer than default_min_trades or a notional below ε; the weighted sum is accumulated in window order."""
        min_trades, eps = self._min_trades, self._eps
        comps: list[float] = []
        for s in sums:
            if s.count_buy + s.count_sell < min_trades:
                comps.append(0.0)
                continue
            nb, ns = s.notional_buy, s.notional_sell
            tot = nb + ns
            comps.append(0.0 if tot < eps else 100.0 * (nb - ns) / tot)
        mom = 0.0
        for wk, mk in zip(self._mom_weights, comps, strict=True):
            mom += wk * mk
        return tuple(comps), mom

    def _tape(self, tv: Any, t_half: float, n_half: int) -> tuple[TapeStats, int]:
        """§5.4 large-trade net, acceleration (V2 vs V1 halves in time) and absorption (halves by count).

        V2 is the trades with ts ≥ ``t_half``. ``n_half`` ≥ 0 is the count over [t_half, hi) from the momentum query
        (the same tape state, same right edge): then the split index is len − n_half, the index ``searchsorted``
        would return (both windows start at max(lo, first ts ≥ their start), and V2's start is inside the view).
        """
        k = len(tv)
        if k == 0:
            return TapeStats(), 0
        notional = tv.notional
        is_buy = tv.is_buy
        large = notional >= self._tape_large
        nl = int(_count_nonzero(large))
        lbm = large & is_buy if nl else large  # no large trade: the all-False mask serves as its own buy mask
        lb = int(_count_nonzero(lbm)) if nl else 0
        ls = nl - lb

        # the method: no Python-level wrapper
        j = k - n_half if n_half >= 0 else int(tv.ts.searchsorted(t_half, "left"))
        split = self._split
        if 0 < j < k:
            self._split_j[1] = j
            v1, v2 = _add_reduceat(notional, split).tolist()
        elif j == 0:
            v1, v2 = 0.0, float(_add_reduce(notional))
        else:
            v1, v2 = float(_add_reduce(notional)), 0.0
        acc = 100.0 * (v2 - v1) / (v1 if v1 > self._eps else self._eps)
        acc = -100.0 if acc < -100.0 else 1000.0 if acc > 1000.0 else acc

        bull = bear = False
        if k >= 2:
            h = k // 2
            price = tv.price
            self._split_j[1] = h
            s1, s2 = _add_reduceat(price, split).tolist()
            p1 = s1 / h
            p2 = s2 / (k - h)
            tol = _PRICE_EQ_REL * p1
            if (p2 < p1 - tol or p2 > p1 + tol) and nl:  # absorption needs a large trade in the second half
                lb2 = int(_count_nonzero(lbm[h:]))
                ls2 = int(_count_nonzero(large[h:])) - lb2
                bull = p2 < p1 and lb2 > ls2
                bear = p2 > p1 and ls2 > lb2
        # positional, in field order (large_buys, large_sells, large_net, acceleration, spike, absorb_bull,
        # absorb_bear; pinned by tests/test_volume_struct_order.py)
        return TapeStats(lb, ls, lb - ls, acc, acc > self._spike_pct, bull, bear), k

    def _advance_buckets(self, sym: str, now: float, b: Buckets) -> None:
        """§5.5: append every bucket completed since the last call, each once, empty ones included.

        On the first call the ring is back-filled from storage (at most capacity buckets, starting no earlier than the
        bucket of the oldest stored trade), so the z-score does not depend on when the bot started evaluating.
        """
        B = self._bucket
        cap = self._bucket_cap
        cur_k = math.floor(now / B)  # buckets < cur_k are complete
        if b.next_k is None:
            first = cur_k - cap
            old = self._storage.trades_between(sym, first * B, cur_k * B)
            if len(old) == 0:
                b.next_k = cur_k
                return
            b.next_k = max(first, math.floor(float(old.ts[0]) / B))
        k0 = max(b.next_k, cur_k - cap)
        if k0 >= cur_k:
            return
        between = self._storage.trades_between
        af, asl = self._alpha_fast, self._alpha_slow
        ring = b.ring
        ef, es = b.ema_fast, b.ema_slow
        for k in range(k0, cur_k):
            # summed from the trades themselves, not prefix-sum differences: those are re-based when storage
            # reallocates, and the same bucket must give the same bits whenever it is appended (cadence-free)
            v = between(sym, k * B, (k + 1) * B)
            x = float(_add_reduce(v.notional)) if len(v) else 0.0
            ring.append(x)
            if ef is None or es is None:
                ef = es = x
            else:
                ef += af * (x - ef)
                es += asl * (x - es)
        b.ema_fast, b.ema_slow = ef, es
        b.next_k = cur_k
        n = len(ring)
        mu = sum(ring) / n
        b.mu = mu
        # the builtin sum, as before (left to right on 3.11, compensated from 3.12): a list, not a generator, is cheaper
        b.sd = math.sqrt(sum([(x - mu) * (x - mu) for x in ring]) / n)

    def _large_orders(self, sym: str, now: float, hi: float, ring: SizeRing) -> LargeOrderFlow:
        """§5.6: feed new trades into the size ring once (seq cursor), then classify the window's z-large trades."""
        storage = self._storage
        new = storage.trades_after_seq(sym, ring.cursor)
        self._fed = (sym, ring.cursor, new)
        changed = False
        if len(new):
            ring.cursor = new.seq.item(-1)
            ring.feed(new.ts, new.notional)
            changed = True
        before = ring.lo
        ring.evict_before(now - self._lo_age)
        if changed or ring.lo != before:
            ring.refresh_stats()
        samples = len(ring)
        if samples < self._lo_min or ring.sd <= 0.0:
            return LargeOrderFlow(samples=samples)
        thr = ring.mu + self._lo_z * ring.sd
        w = storage.trades_between(sym, now - self._lo_window, hi)
        if len(w) == 0:
            return LargeOrderFlow(samples=samples, threshold=thr)
        notional = w.notional
        masks = _empty((2, len(w)), _bool)  # rows: large, large buy
        big = masks[0]
        _greater(notional, thr, big)
        tc = int(_count_nonzero(big))
        if tc == 0:
            return LargeOrderFlow(samples=samples, threshold=thr)
        bigb = masks[1]
        _logical_and(big, w.is_buy, bigb)
        bc = int(_count_nonzero(bigb))
        sc = tc - bc
        if tc == 1:  # one large trade: its notional is the window sum exactly (x plus zeros, in any order, is x)
            tn = notional.item(int(big.argmax()))
            bn = tn if bc else 0.0
        elif bc == tc or bc == 0:  # all large trades are buys (bigb equals big: the same sum) or none are
            tn = float(_add_reduce(notional * big))
            bn = tn if bc else 0.0
        else:  # both sums in one reduction along the rows: each row summed on its own as a 1-D reduction would
            tn, bn = _add_reduce(notional * masks, axis=1).tolist()
        sn = tn - bn if sc else 0.0
        tot = bn + sn
        ratio = bn / tot if tot > 0 else 0.5
        # positional, in field order (direction, buy_count, sell_count, buy_notional, sell_notional, buy_ratio,
        # samples, threshold; pinned by tests/test_volume_struct_order.py)
        return LargeOrderFlow(classify_buy_ratio(ratio), bc, sc, bn, sn, ratio, samples, thr)

    def _frequency(self, n_base: int, n_cur: int) -> FrequencyStats:
        """§5.7: trade rate over the current window [now − current, now] against the baseline rate [now − baseline,
        now), from the trade counts of those windows.

        Both counts come from the momentum query (:meth:`compute`): the current window's directly, the baseline's as
        [now − baseline, hi) minus [now, hi), the integers ``count_between`` would give (the same searches into the
        same tape state). That query runs before _large_orders' ``trades_after_seq``, which may prune, where
        ``count_between`` used to run after it; pruning drops trades older than clock − trade_retention_sec only, so
        neither window can lose a trade while clock − now ≤ trade_retention_sec − frequency_baseline_window_sec.
        """
        base = n_base * 60.0 / self._freq_base
        cur = n_cur * 60.0 / self._freq_cur
        if n_base < self._freq_min or base <= 0:
            return FrequencyStats(UNKNOWN, None, base, cur)  # regime, ratio, baseline_per_min, current_per_min
        ratio = cur / base
        return FrequencyStats(
            classify_frequency(ratio, self._freq_vh, self._freq_h, self._freq_vl), ratio, base, cur
        )

    def _confirmation(self, sym: str, z: float, tv: Any, newest: int) -> Confirmation:
        """§5.8: price move over the last N trades, graded by the activity z-score.

        When the short-window view ``tv`` holds at least N trades and ends at the tape's newest trade (seq
        ``newest``), its last N are the tape's last N (``last_n`` would prune first, but by clock − retention, which
        cannot reach trades of [now − short, now] while clock − now ≤ trade_retention_sec − short).
        """
        n = self._conf_n
        k = len(tv)
        if k >= n and newest > 0 and tv.seq.item(k - 1) == newest:
            price = tv.price
            p0 = price.item(k - n)
        else:
            v = self._storage.last_n(sym, n)
            if len(v) < 2:
                return Confirmation()
            price = v.price
            p0 = price.item(0)
        dp = 100.0 * (price.item(-1) - p0) / p0
        if abs(dp) <= self._conf_min_pct:
            return Confirmation(price_change_pct=dp)
        return Confirmation(
            status=classify_confirmation(z, self._conf_z, self._weak_z),
            direction=1 if dp > 0 else -1,
            price_change_pct=dp,
        )
