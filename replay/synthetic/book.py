"""The synthetic order book: a pure, causal function of the current path point.

``book_at`` sees only the point's price, the previous point's price (the direction of the last move, which
decides whether the price sits at the ask or at the bid) and noise drawn for that point or hashed from
(price level, time epoch). It never sees later path points, so book imbalance cannot leak the future.

Layout. Level prices live on a static per-symbol lattice: a tick is a level with probability
q = min(1, tick_bps / level_gap_bps) (hash of the tick), so a move shifts only the levels it crosses. The best bid
and best ask are always levels. Sizes (in qty steps, ≥ 1): the touch = level-1 scale × lognormal(touch σ) per point;
deeper levels = level-1 scale × deep_rel × lognormal(depth σ), redrawn once per ``level_refresh_s`` with a per-price
phase, so ~K⁻¹ of the levels change at each point. The top ``imbalance_levels`` ranks carry exp(±ρ/2) with
ρ = c·sign(last move) + σ_ρ·z: the fitted (past-move) imbalance relation, and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.instruments import Instrument
from replay.synthetic.params import GeneratorParams
from replay.synthetic.profile import SymbolProfile
from replay.synthetic.rng import derived_key, hash_normal, hash_uniform

N_LEVELS = 50
_PRESENCE, _PHASE, _SIZE = 0xB00C01, 0xB00C02, 0xB00C03


@dataclass(frozen=True)
class BookModel:
    """Everything ``book_at`` needs besides per-point inputs."""

    spread_ticks: int
    presence_q: float
    touch_units: float
    deep_units: float
    touch_sigma: float
    deep_sigma: float
    log_clip: float
    refresh_ms: int
    imbalance_levels: int
    rho_coef: float
    rho_sigma: float
    spread_pmf: tuple[float, ...]
    key_presence: np.uint64
    key_phase: np.uint64
    key_size: np.uint64

    @classmethod
    def build(cls, instrument: Instrument, profile: SymbolProfile, params: GeneratorParams, seed: int) -> BookModel:
        tick, step = instrument.tick, instrument.step
        tick_bps = tick / profile.median_price * 1e4
        touch = params.level1_size_per_minute_volume * profile.mean_volume_per_min / step
        share = params.modulated_depth_share
        pmf = np.asarray(params.spread_multiple_pmf, float)
        return cls(
            spread_ticks=profile.spread_ticks(tick),
            presence_q=min(1.0, tick_bps / params.level_gap_bps),
            touch_units=max(1.0, touch),
            deep_units=max(1.0, touch * params.deep_level_rel),
            touch_sigma=params.touch_size_log_sigma,
            deep_sigma=params.depth_size_log_sigma,
            log_clip=params.depth_log_clip,
            refresh_ms=round(params.level_refresh_s * 1000),
            imbalance_levels=min(params.imbalance_levels, N_LEVELS),
            rho_coef=params.imbalance_momentum_coef / share,
            rho_sigma=params.imbalance_log_sigma,
            spread_pmf=tuple((pmf / pmf.sum()).tolist()),
            key_presence=derived_key(seed, profile.symbol, _PRESENCE),
            key_phase=derived_key(seed, profile.symbol, _PHASE),
            key_size=derived_key(seed, profile.symbol, _SIZE),
        )

    def spread_multiple(self, u: np.ndarray) -> np.ndarray:
        cdf = np.cumsum(self.spread_pmf)
        cdf[-1] = 1.0
        return 1 + np.searchsorted(cdf, u, side="right")


def touch_from_move(p: np.ndarray, prev: np.ndarray, tie_u: np.ndarray, spread: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best bid, best ask, direction ±1): after an up move the price is the ask (a buy printed it), after a
    down move the bid; a flat point picks a side from its own uniform."""
    d = np.sign(p - prev)
    d = np.where(d == 0, np.where(tie_u < 0.5, -1, 1), d)
    bid = np.where(d > 0, p - spread, p)
    ask = np.where(d > 0, p, p + spread)
    return bid, ask, d


def _lattice(model: BookModel, lo: int, hi: int, need: int) -> np.ndarray:
    """Sorted level ticks in [lo, hi] of the static lattice (domain-independent: presence is a hash of the tick)."""
    ticks = np.arange(lo, hi + 1, dtype=np.int64)
    if model.presence_q >= 1.0:
        return ticks
    return ticks[hash_uniform(model.key_presence, ticks) < model.presence_q]


def _deep_units(model: BookModel, ticks: np.ndarray, t_ms: np.ndarray, side: int) -> np.ndarray:
    phase = np.floor(hash_uniform(model.key_phase, ticks) * model.refresh_ms).astype(np.int64)
    epoch = (t_ms[:, None] + phase) // model.refresh_ms
    z = np.clip(hash_normal(model.key_size, ticks, epoch, np.full(ticks.shape, side)), -model.log_clip, model.log_clip)
    return model.deep_units * np.exp(model.deep_sigma * z)


def book_at(p: np.ndarray, prev: np.ndarray, tie_u: np.ndarray, spread_u: np.ndarray, z_rho: np.ndarray,
            z_touch_bid: np.ndarray, z_touch_ask: np.ndarray, t_ms: np.ndarray, model: BookModel
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Books at P points: (bid ticks, bid units, ask ticks, ask units), each (P, 50), best first.

    Inputs per point: price p and previous price (ticks), uniforms for the tie side and the spread, normals for the
    imbalance and the touch sizes, the book time in ms. Nothing else: the causality guarantee.
    """
    spread = model.spread_ticks * model.spread_multiple(spread_u)
    bid, ask, _ = touch_from_move(p, prev, tie_u, spread)
    n = len(p)
    span = math.ceil((N_LEVELS + 8) / max(model.presence_q, 1e-9) * 3) + 16
    lat = _lattice(model, int(bid.min()) - span, int(ask.max()) + span, N_LEVELS)
    ib = np.searchsorted(lat, bid, side="left")  # lat[ib-1] < bid
    ia = np.searchsorted(lat, ask, side="right")  # lat[ia] > ask
    if (ib < N_LEVELS - 1).any() or (ia + N_LEVELS - 1 > len(lat)).any():
        raise RuntimeError("synthetic book lattice too short (presence_q too small for the span)")
    off = np.arange(1, N_LEVELS)
    bt = np.empty((n, N_LEVELS), np.int64)
    at = np.empty((n, N_LEVELS), np.int64)
    bt[:, 0], at[:, 0] = bid, ask
    bt[:, 1:] = lat[ib[:, None] - off]
    at[:, 1:] = lat[ia[:, None] + off - 1]
    bs = np.empty((n, N_LEVELS))
    as_ = np.empty((n, N_LEVELS))
    clip = model.log_clip
    bs[:, 0] = model.touch_units * np.exp(model.touch_sigma * np.clip(z_touch_bid, -clip, clip))
    as_[:, 0] = model.touch_units * np.exp(model.touch_sigma * np.clip(z_touch_ask, -clip, clip))
    bs[:, 1:] = _deep_units(model, bt[:, 1:], t_ms, 0)
    as_[:, 1:] = _deep_units(model, at[:, 1:], t_ms, 1)
    rho = model.rho_coef * np.sign(p - prev) + model.rho_sigma * z_rho
    m = model.imbalance_levels
    bs[:, :m] *= np.exp(rho / 2)[:, None]
    as_[:, :m] *= np.exp(-rho / 2)[:, None]
    bu = np.maximum(1, np.rint(bs)).astype(np.int64)
    au = np.maximum(1, np.rint(as_)).astype(np.int64)
    return bt, bu, at, au
