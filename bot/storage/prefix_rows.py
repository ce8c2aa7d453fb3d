"""The prefix-sum rows of a few new trades in Python floats (:meth:`bot.storage.tape.TradeTape._sync_small`).

Split from :mod:`bot.storage.tape` to keep it small. For a handful of rows, numpy's per-call overhead (~20 calls per
catch-up) costs more than the arithmetic; this does the same IEEE operations on the same values in the same order as
the numpy path (each row's terms, their running sum from the first new row, then ``+ cum[s]``), so the bits match.
"""

from __future__ import annotations


def prefix_rows(pl: list[float], buys: list[bool], nots: list[float], base: list[float], ref: float) -> list[float]:
    """Flat cumulative rows (buy count, buy notional, sell notional, Σq, Σq², Σ|Δp|, with q = price − ref) of the
    trades ``pl[1:]`` (``pl[0]`` is the price before them), each row plus ``base`` (the tape's row before them)."""
    b0, b1, b2, b3, b4, b5 = base
    n = nots[0]
    p = pl[1]
    r0 = float(buys[0])
    r1 = n * buys[0]  # notional · 1.0 or · 0.0, as numpy's float × bool
    r2 = n - r1
    r3 = p - ref
    r4 = r3 * r3
    r5 = abs(p - pl[0])
    out = [r0 + b0, r1 + b1, r2 + b2, r3 + b3, r4 + b4, r5 + b5]
    for i in range(1, len(nots)):
        buy = buys[i]
        n = nots[i]
        nb = n * buy
        p = pl[i + 1]
        q = p - ref
        r0 += buy
        r1 += nb
        r2 += n - nb
        r3 += q
        r4 += q * q
        r5 += abs(p - pl[i])
        out += (r0 + b0, r1 + b1, r2 + b2, r3 + b3, r4 + b4, r5 + b5)
    return out
