"""The deflated Sharpe ratio (Bailey & López de Prado, 2014), reported with every optimization result.

Picking the best of N trials inflates its Sharpe ratio; the DSR is the probability that the chosen strategy's true
Sharpe ratio is above what the best of N *skill-less* trials would show by luck:

    SR0 = sqrt(V) * ((1 - γ) * Φ⁻¹(1 - 1/N) + γ * Φ⁻¹(1 - 1/(N·e)))        (expected maximum of N null Sharpes)
    DSR = Φ( (SR - SR0) * sqrt(T - 1) / sqrt(1 - g3·SR + (g4 - 1)/4 · SR²) )

with SR the chosen trial's per-observation (not annualised) Sharpe ratio, T its number of observations, g3 its
skewness, g4 its (non-excess) kurtosis, V the variance of the Sharpe ratios across the N trials and γ the
Euler–Mascheroni constant. With N = 1, SR0 = 0 and the DSR is the probabilistic Sharpe ratio against zero.

Observations here are the trial's closed trades (net PnL in bps of entry notional), so the measure does not depend on
position size; trials with fewer than two trades have no Sharpe ratio and are left out of V (and of N).
DSR above 0.95 reads "the edge survives the search"; a low DSR says the best trial is what luck alone would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns: Sequence[float]) -> float | None:
    """Per-observation Sharpe ratio (mean / sample std), None with fewer than two observations or no dispersion."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    sd = float(r.std(ddof=1))
    return float(r.mean()) / sd if sd > 0 else None


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe ratio of ``n_trials`` independent skill-less trials."""
    if n_trials <= 1 or sharpe_variance <= 0:
        return 0.0
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                                         + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(returns: Sequence[float], n_trials: int, sharpe_variance: float) -> float | None:
    """DSR of the chosen trial's ``returns`` after a search of ``n_trials`` with Sharpe variance ``sharpe_variance``."""
    r = np.asarray(returns, dtype=float)
    sr = sharpe(r)
    if sr is None or r.size < 3:
        return None
    z = (r - r.mean()) / r.std(ddof=0)
    g3 = float(np.mean(z ** 3))
    g4 = float(np.mean(z ** 4))
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr * sr
    if denom <= 0:
        return None
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return _N.cdf((sr - sr0) * math.sqrt(r.size - 1) / math.sqrt(denom))


def deflated_sharpe_of_search(best: Sequence[float], all_trials: Sequence[Sequence[float]]) -> dict[str, object]:
    """The DSR block of a result: the chosen trial's returns against every trial's Sharpe ratio."""
    srs = [s for s in (sharpe(t) for t in all_trials) if s is not None]
    n = max(len(srs), 1)
    var = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
    sr = sharpe(best)
    dsr = deflated_sharpe(best, n, var)
    return {"measure": "deflated Sharpe ratio (Bailey & López de Prado 2014), per-trade returns in bps",
            "sharpe_per_trade": None if sr is None else round(sr, 6), "observations": len(best), "n_trials": n,
            "sharpe_variance": round(var, 8), "expected_max_sharpe": round(expected_max_sharpe(n, var), 6),
            "dsr": None if dsr is None else round(dsr, 6)}
