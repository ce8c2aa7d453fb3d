"""The synthetic order book: a pure, causal function of the current path point and of causal per-candle scales.

The book at a point sees only its best bid/ask (from the path so far, ``path.py``), the sign of the last move, noise
drawn for that point or hashed from (price level, time epoch), and scales measured from candles up to the current one
(``scales.py``). It never sees later path points or later candles, so book imbalance and depth cannot leak the future.

Layout. Level prices live on a lattice that is static between two snapshots: a tick is a level with probability
q = min(1, tick_bps / level_gap_bps) (hash of the tick; tick_bps at the price of the snapshot's candle), so a move
shifts only the levels it crosses. The best bid and best ask are always levels. Sizes (in qty steps, ≥ 1): the touch
= touch scale × lognormal(touch σ) per point; deeper levels = deep scale × lognormal(depth σ), where the deep scale is
the fitted depth density (notional per bps) times the mean level spacing, so cumulative depth grows linearly with the
distance in bps as on the real books (and a coarse tick, one level per tick, holds a long queue). A deep size is
redrawn once per ``level_refresh_s`` with a per-price phase (the scale is the one of the candle in which the level's
current draw started), so a share (point interval / refresh period) of the levels is redrawn at each point besides
those the move crosses; the size noise is a normal quantised to 2^16 quantiles (a table lookup). The top
``imbalance_levels`` ranks carry exp(±ρ/2) with ρ = c·sign(last move) + σ_ρ·z: the fitted (past-move) imbalance
relation, and nothing else.

Two evaluations of the same model: ``full_books`` gives the whole (P, 50) books (snapshots, diagnostics, tests) and
``book_deltas`` gives only the levels that change between consecutive points, computed in lattice-index space
without building the full books (the hot path). A test replays the deltas and compares them with the full books.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.instruments import Instrument
from replay.synthetic.params import GeneratorParams
from replay.synthetic.rng import derived_key, hash_index, hash_uniform, normal_quantiles

N_LEVELS = 50
_W = N_LEVELS - 1  # lattice ranks below the touch
_PRESENCE, _PHASE, _SIZE = 0xB00C01, 0xB00C02, 0xB00C03
_MIN_MS = 60_000
_SIZE_BITS = 16  # deep-level size noise: a normal quantised to 2^16 quantiles, looked up (units are integers anyway)


@dataclass(frozen=True, eq=False)
class BookModel:
    """The book's symbol-level constants (no data-derived scale: those arrive per point, causally)."""

    level_gap_bps: float
    touch_sigma: float
    deep_sigma: float
    log_clip: float
    refresh_ms: int
    imbalance_levels: int
    rho_coef: float
    rho_sigma: float
    key_presence: np.uint64
    key_phase: np.uint64
    key_size: tuple[np.uint64, np.uint64]  # per side (bid, ask)
    size_factor: np.ndarray  # exp(deep σ · clip(z)) over the 2^16 normal quantiles

    @classmethod
    def build(cls, instrument: Instrument, params: GeneratorParams, seed: int) -> BookModel:
        clip = params.depth_log_clip
        factor = np.exp(params.depth_size_log_sigma * np.clip(normal_quantiles(_SIZE_BITS), -clip, clip))
        factor /= factor.mean()  # the deep scale is a mean (depth density × spacing): sums come out right
        return cls(
            level_gap_bps=params.level_gap_bps,
            touch_sigma=params.touch_size_log_sigma,
            deep_sigma=params.depth_size_log_sigma,
            log_clip=params.depth_log_clip,
            refresh_ms=round(params.level_refresh_s * 1000),
            imbalance_levels=min(params.imbalance_levels, N_LEVELS),
            rho_coef=params.imbalance_momentum_coef / params.modulated_depth_share,
            rho_sigma=params.imbalance_log_sigma,
            key_presence=derived_key(seed, instrument.symbol, _PRESENCE),
            key_phase=derived_key(seed, instrument.symbol, _PHASE),
            key_size=(derived_key(seed, instrument.symbol, _SIZE), derived_key(seed, instrument.symbol, _SIZE + 1)),
            size_factor=factor,
        )


@dataclass(frozen=True)
class StepScale:
    """A per-candle scale looked up by time: the value of the latest candle opened at or before that minute."""

    minute0: int
    values: np.ndarray

    @classmethod
    def from_candles(cls, open_ms: np.ndarray, values: np.ndarray, t_lo_ms: int, t_hi_ms: int) -> StepScale:
        """Table for times in [t_lo_ms, t_hi_ms]; ``open_ms``/``values`` cover candles up to the chunk's last one only
        (times before the first candle take its value)."""
        minutes = np.arange(t_lo_ms // _MIN_MS, t_hi_ms // _MIN_MS + 1, dtype=np.int64)
        idx = np.searchsorted(open_ms // _MIN_MS, minutes, side="right") - 1
        return cls(int(minutes[0]), values[np.maximum(idx, 0)])

    def at(self, t_ms: np.ndarray) -> np.ndarray:
        i = t_ms // _MIN_MS - self.minute0
        if i.size and (i.min() < 0 or i.max() >= len(self.values)):
            raise RuntimeError("StepScale lookup outside its table (chunk bounds miscomputed)")
        return self.values[i]


@dataclass(frozen=True)
class Points:
    """Per-point inputs of the book: the touch (ticks, from the path), the sign of the last move, point noise and
    the level-1 scale of the point's candle."""

    bid: np.ndarray
    ask: np.ndarray
    move_sign: np.ndarray
    z_rho: np.ndarray
    z_touch_bid: np.ndarray
    z_touch_ask: np.ndarray
    t_ms: np.ndarray
    touch_units: np.ndarray

    def rows(self, sl: slice) -> Points:
        return Points(*(getattr(self, f)[sl] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Touch:
    bid: np.ndarray
    ask: np.ndarray
    rho: np.ndarray
    bid_units: np.ndarray
    ask_units: np.ndarray


def touch(pts: Points, model: BookModel) -> Touch:
    rho = model.rho_coef * pts.move_sign + model.rho_sigma * pts.z_rho
    clip = model.log_clip
    tb = pts.touch_units * np.exp(model.touch_sigma * np.clip(pts.z_touch_bid, -clip, clip) + rho / 2)
    ta = pts.touch_units * np.exp(model.touch_sigma * np.clip(pts.z_touch_ask, -clip, clip) - rho / 2)
    return Touch(pts.bid, pts.ask, rho, _units(tb), _units(ta))


def _units(size: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.rint(size)).astype(np.int64)


@dataclass(frozen=True)
class Lattice:
    """Sorted level ticks of the static lattice over a price range, with each level's refresh phase (ms)."""

    ticks: np.ndarray
    phase: np.ndarray

    @classmethod
    def build(cls, model: BookModel, q: float, lo: int, hi: int) -> Lattice:
        t = np.arange(lo, hi + 1, dtype=np.int64)
        if q < 1.0:
            t = t[hash_uniform(model.key_presence, t) < q]  # presence is a hash of the tick: domain-independent
        phase = np.floor(hash_uniform(model.key_phase, t) * model.refresh_ms).astype(np.int64)
        return cls(t, phase)

    @classmethod
    def around(cls, model: BookModel, q: float, bid: np.ndarray, ask: np.ndarray) -> Lattice:
        span = math.ceil((N_LEVELS + 8) / max(q, 1e-9) * 3) + 16
        return cls.build(model, q, int(bid.min()) - span, int(ask.max()) + span)

    def side(self, is_ask: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """(ticks, phases, sign) in the side's "descending from the touch" space: asks are negated and reversed."""
        if is_ask:
            return -self.ticks[::-1], self.phase[::-1], -1
        return self.ticks, self.phase, 1


def deep_sizes(model: BookModel, ticks: np.ndarray, phase: np.ndarray, t_ms: np.ndarray, side: int,
               scale: StepScale) -> np.ndarray:
    """Unmodulated size of the levels at ``ticks`` at time ``t_ms`` (elementwise): drawn per (tick, refresh epoch),
    scaled by the deep scale of the candle in which that epoch started (known then: causal)."""
    epoch = (t_ms + phase) // model.refresh_ms
    start = epoch * model.refresh_ms - phase
    return scale.at(start) * model.size_factor[hash_index(model.key_size[side], _SIZE_BITS, ticks, epoch)]


def _window(lat: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L with lat[L-1] < x <= lat[L]: the lattice ranks below the touch x are indices L-1 … L-49."""
    L = np.searchsorted(lat, x, side="left")
    if len(L) and (L.min() < _W or L.max() > len(lat)):
        raise RuntimeError("synthetic book lattice too short (presence_q too small for the span)")
    return L


def full_books(pts: Points, model: BookModel, lat: Lattice, scale: StepScale, tch: Touch | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Books at P points: (bid ticks, bid units, ask ticks, ask units), each (P, 50), best first."""
    tch = touch(pts, model) if tch is None else tch
    out: list[np.ndarray] = []
    m1 = model.imbalance_levels - 1
    k = np.arange(_W)
    for is_ask, x, tu, fac in ((False, tch.bid, tch.bid_units, np.exp(tch.rho / 2)),
                               (True, -tch.ask, tch.ask_units, np.exp(-tch.rho / 2))):
        lat_d, ph_d, sgn = lat.side(is_ask)
        j = _window(lat_d, x)[:, None] - 1 - k
        ticks = sgn * lat_d[j]
        size = deep_sizes(model, ticks, ph_d[j], pts.t_ms[:, None], int(is_ask), scale)
        size[:, :m1] *= fac[:, None]
        out += [np.concatenate([(sgn * x)[:, None], ticks], axis=1), np.concatenate([tu[:, None], _units(size)], 1)]
    return out[0], out[1], out[2], out[3]


@dataclass(frozen=True)
class SideDeltas:
    """Changed levels of one side for rows 1..P-1: row r's levels are ``ticks[cut[r-1]:cut[r]]`` (units 0 = delete),
    ordered touch, new/resized levels best first, deleted levels."""

    ticks: np.ndarray
    units: np.ndarray
    cut: np.ndarray  # (P,) cumulative counts, cut[0] = 0


def book_deltas(pts: Points, model: BookModel, lat: Lattice, scale: StepScale, tch: Touch | None = None,
                far_deletes: bool = True) -> tuple[SideDeltas, SideDeltas]:
    """The levels that change between consecutive points (row r vs r−1), equal to diffing ``full_books``.

    A level of the current window is re-sent when it is new, was or is the touch or a modulated rank, or its refresh
    epoch changed; a level of the previous book is deleted when it is neither in the current window nor the touch.
    ``far_deletes=False`` omits the deletes of levels that only fell off the far end of the 50 (a depth-50 consumer
    that truncates to its depth — the bot's storage, the simulated exchange — ends with the same top 50).
    """
    tch = touch(pts, model) if tch is None else tch
    return (_side_deltas(pts, model, lat, scale, False, tch.bid, tch.bid_units, np.exp(tch.rho / 2), far_deletes),
            _side_deltas(pts, model, lat, scale, True, -tch.ask, tch.ask_units, np.exp(-tch.rho / 2), far_deletes))


def _side_deltas(pts: Points, model: BookModel, lat: Lattice, scale: StepScale, is_ask: bool, x: np.ndarray,
                 touch_units: np.ndarray, fac: np.ndarray, far_deletes: bool = True) -> SideDeltas:
    """Rows 1..P-1 of one side, in the side's descending space (window of row r = lattice indices L_r-1 … L_r-49).

    With D = L_r − L_{r−1}, the ranks k (0-based below the touch) that are plain ranks in both windows form the range
    [m1 + max(0, D), 48 + min(0, D)]: only those can be kept, and only if their refresh epoch did not change. The
    previous window's ranks outside the current window are the ranges k ≤ −D−1 and k ≥ 49−D (minus the current touch
    if the price fell onto a lattice level). One (P−1, 100) boolean grid [touch | window | previous window | previous
    touch] in row-major order gives the delta rows directly; ticks and sizes are computed for its set cells only.
    """
    lat_d, ph_d, sgn = lat.side(is_ask)
    L = _window(lat_d, x)
    m1 = model.imbalance_levels - 1
    R = model.refresh_ms
    n = len(x) - 1
    Lp, Lc = L[:-1], L[1:]
    D = Lc - Lp
    xp, xc = x[:-1], x[1:]
    t = pts.t_ms
    dt = np.diff(t)
    if n and (dt.min() <= 0 or dt.max() >= R):
        raise RuntimeError("book_deltas needs consecutive points less than one refresh period apart")
    k = np.arange(_W, dtype=np.int32)
    # current window: re-sent unless a plain rank before and now with the same refresh epoch
    lo = (m1 + np.maximum(D, 0))[:, None]
    hi = (_W - 1 + np.minimum(D, 0))[:, None]
    nl = len(lat_d)
    grid = np.empty((n, 2 * _W + 2), np.int32)  # index grid into [lattice | current touches | previous touches]
    j = grid[:, 1:_W + 1]
    np.subtract(Lc.astype(np.int32)[:, None] - 1, k, out=j)
    np.subtract(Lp.astype(np.int32)[:, None] - 1, k, out=grid[:, _W + 1:2 * _W + 1])
    t0 = int(t[0]) if n else 0
    small = np.int32 if n == 0 or int(t[-1]) - t0 < 1 << 30 else np.int64  # chunks are ≤ 1 day: int32 halves traffic
    now = ((t[1:] - t0) + (t0 % R)).astype(small)[:, None]  # (t + φ) mod R, shifted to a small origin
    refreshed = (now + ph_d.astype(small)[j]) % R < dt.astype(small)[:, None]
    emit = (k < lo) | (k > hi) | refreshed
    # previous window: gone above the current touch (price fell) or below the current window (price rose)
    on_lat_c = lat_d[np.minimum(Lc, len(lat_d) - 1)] == xc  # the current touch is the lattice level L_r
    gone = (k <= (-D - 1)[:, None]) | (k >= (_W - D)[:, None]) if far_deletes else k <= (-D - 1)[:, None]
    gone &= ~(on_lat_c[:, None] & (k == (-D - 1)[:, None]))
    # previous touch: gone unless it is the current touch or a lattice level of the current window
    on_lat_p = lat_d[np.minimum(Lp, len(lat_d) - 1)] == xp
    touch_gone = (xp != xc) & ~(on_lat_p & (D > 0) & (D <= _W))
    mask = np.concatenate([np.ones((n, 1), bool), emit, gone, touch_gone[:, None]], axis=1)
    f = np.flatnonzero(mask)
    cut = np.zeros(n + 1, np.int64)
    cut[1:] = np.searchsorted(f, np.arange(1, n + 1) * (2 * _W + 2))
    rows = np.arange(n, dtype=np.int32)
    grid[:, 0] = nl + rows
    grid[:, 2 * _W + 1] = nl + n + rows
    idx = grid.ravel()[f]
    ticks = np.concatenate([lat_d, xc, xp])[idx]
    r = f // (2 * _W + 2)
    col = f - r * (2 * _W + 2)
    units = np.zeros(len(f), np.int64)
    is_touch = col == 0
    units[is_touch] = touch_units[1:][r[is_touch]]
    win = np.flatnonzero((col >= 1) & (col <= _W))
    rw = r[win] + 1
    size = deep_sizes(model, sgn * ticks[win], ph_d[idx[win]], t[rw], int(is_ask), scale)
    units[win] = _units(np.where(col[win] <= m1, size * fac[rw], size))
    return SideDeltas(sgn * ticks, units, cut)
