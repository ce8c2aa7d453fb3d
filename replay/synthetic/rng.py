"""Seeding: per-candle numpy streams (regenerable alone) and a counter-based hash for price-keyed book noise.

Every candle draws from its own ``Generator(PCG64(SeedSequence([seed, crc32(symbol), open_time_ms])))`` a fixed number
of uniforms and normals (the count depends only on K and the print cap), so candle i gives the same numbers whether
it is generated alone or inside a day. Noise that belongs to a *price level* (presence on the lattice, refreshing
sizes) must not depend on which candle asks for it, so it comes from a SplitMix64 hash of (key, tick, epoch).
"""

from __future__ import annotations

import zlib

import numpy as np

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


def symbol_key(symbol: str) -> int:
    """Stable across processes (unlike ``hash``)."""
    return zlib.crc32(symbol.encode())


def derived_key(seed: int, symbol: str, purpose: int) -> np.uint64:
    return np.random.SeedSequence([seed, symbol_key(symbol), purpose]).generate_state(1, np.uint64)[0]


def candle_streams(seed: int, symbol: str, open_time_ms: np.ndarray, n_uniform: int, n_normal: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(N, n_uniform) uniforms in [0, 1) and (N, n_normal) standard normals, one independent stream per candle."""
    n = len(open_time_ms)
    U = np.empty((n, n_uniform))
    Z = np.empty((n, n_normal))
    sk = symbol_key(symbol)
    for i, t in enumerate(np.asarray(open_time_ms).tolist()):
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, sk, t])))
        U[i] = g.random(n_uniform)
        Z[i] = g.standard_normal(n_normal)
    return U, Z


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = _u64(x) + _G
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


_C = (np.uint64(0xD6E8FEB86659FD93), np.uint64(0xA0761D6478BD642F), np.uint64(0xE7037ED1A0B428DB))


def _u64(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    return a.view(np.uint64) if a.dtype == np.int64 else a.astype(np.uint64)


def _mix(key: np.uint64, parts: tuple[np.ndarray, ...]) -> np.ndarray:
    """One SplitMix64 finalisation of key ^ Σ part_i·C_i (odd constants): cheap, and a pure function of its inputs."""
    if len(parts) > len(_C):
        raise ValueError(f"at most {len(_C)} hash parts")
    acc = _u64(parts[0]) * _C[0]
    for p, c in zip(parts[1:], _C[1:], strict=False):
        acc += _u64(p) * c
    return splitmix64(acc ^ np.uint64(key))


def hash_uniform(key: np.uint64, *parts: np.ndarray) -> np.ndarray:
    """Uniform in (0, 1) from (key, parts...)."""
    return ((_mix(key, parts) >> _S11).astype(np.float64) + 0.5) * _INV53


def hash_normal(key: np.uint64, *parts: np.ndarray) -> np.ndarray:
    """Approximately standard normal: a logistic variate scaled to unit variance (one hash, no trig; the tails are
    slightly heavier than normal, which only matters for the clipped level-size noise it feeds)."""
    u = hash_uniform(key, *parts)
    return np.log(u / (1.0 - u)) * (np.sqrt(3.0) / np.pi)
