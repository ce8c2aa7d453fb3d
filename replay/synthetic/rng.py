"""Seeding: counter-based draws, so any minute (and any print slot) can be regenerated alone, vectorised.

Every random number of the generator is a pure function of (run seed, symbol, purpose, coordinates): a SplitMix64 hash
of a key derived from (seed, symbol, purpose) and the coordinates — candle open time and column for per-candle draws,
(tick, epoch) for the noise that belongs to a *price level*. So candle i gives the same numbers whether it is generated
alone, inside a day, or inside a run truncated after it, and no per-candle ``Generator`` object is ever built.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from statistics import NormalDist

import numpy as np

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * np.pi


def symbol_key(symbol: str) -> int:
    """Stable across processes (unlike ``hash``)."""
    return zlib.crc32(symbol.encode())


def derived_key(seed: int, symbol: str, purpose: int) -> np.uint64:
    return np.random.SeedSequence([seed, symbol_key(symbol), purpose]).generate_state(1, np.uint64)[0]


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
        acc = acc + _u64(p) * c  # not in place: the parts may broadcast to a larger shape
    return splitmix64(acc ^ np.uint64(key))


def hash_uniform(key: np.uint64, *parts: np.ndarray) -> np.ndarray:
    """Uniform in (0, 1) from (key, parts...); parts broadcast against each other."""
    return ((_mix(key, parts) >> _S11).astype(np.float64) + 0.5) * _INV53


def hash_index(key: np.uint64, bits: int, *parts: np.ndarray) -> np.ndarray:
    """Uniform integer in [0, 2^bits) from (key, parts...): an index into a precomputed quantile table."""
    return (_mix(key, parts) >> np.uint64(64 - bits)).astype(np.intp)


@lru_cache(maxsize=2)
def normal_quantiles(bits: int) -> np.ndarray:
    """The 2^bits mid-point quantiles of N(0, 1) (exact inverse CDF): with ``hash_index`` a normal draw by lookup."""
    inv = NormalDist().inv_cdf
    n = 1 << bits
    q = np.array([inv((i + 0.5) / n) for i in range(n)])
    q.flags.writeable = False
    return q


def hash_gauss(key: np.uint64, *parts: np.ndarray) -> np.ndarray:
    """Exact standard normal (Box–Muller on two hashed uniforms) for draws whose distribution shape is fitted."""
    p = np.broadcast_arrays(*(np.asarray(x, np.int64) for x in parts))
    u1 = hash_uniform(key, *p[:-1], 2 * p[-1])
    u2 = hash_uniform(key, *p[:-1], 2 * p[-1] + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


class CandleDraws:
    """Per-candle draws: ``uniform(purpose, n)`` / ``normal(purpose, n)`` give (N, n) arrays whose row i depends only
    on (seed, symbol, purpose, open time of candle i, column); ``*_at`` draw for scattered (row, column) cells."""

    def __init__(self, seed: int, symbol: str, open_time_ms: np.ndarray) -> None:
        self.seed, self.symbol = seed, symbol
        self.t = np.asarray(open_time_ms, np.int64)

    def _key(self, purpose: int) -> np.uint64:
        return derived_key(self.seed, self.symbol, purpose)

    def uniform(self, purpose: int, n: int) -> np.ndarray:
        return hash_uniform(self._key(purpose), self.t[:, None], np.arange(n, dtype=np.int64)[None, :])

    def normal(self, purpose: int, n: int) -> np.ndarray:
        return hash_gauss(self._key(purpose), self.t[:, None], np.arange(n, dtype=np.int64)[None, :])

    def uniform_at(self, purpose: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return hash_uniform(self._key(purpose), self.t[rows], np.asarray(cols, np.int64))

    def normal_at(self, purpose: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return hash_gauss(self._key(purpose), self.t[rows], np.asarray(cols, np.int64))
