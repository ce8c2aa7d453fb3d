"""The prefix-sum rows of a few new trades in Python floats (:meth:`bot.storage.tape.TradeTape._sync_small`).

Split from :mod:`bot.storage.tape` to keep it small. For a handful of rows, numpy's per-call overhead (~20 calls per
catch-up) costs more than the arithmetic; this does the same IEEE operations on the same values in the same order as
the numpy path (each row's terms, their running sum from the first new row, then ``+ cum[s]``), so the bits match.

No term is ever −0.0 (a count or notional times 0.0 or 1.0, ``n − n·b``, ``p − ref`` and ``|Δp|`` of positive prices,
a square), so a running sum started at +0.0 equals numpy's accumulate, which starts at the first term: ``0.0 + t`` is
``t`` for every ``t`` but −0.0.

With every notional finite (the normal case, checked once per call by their sum), the buy/sell split needs no float
× bool: a buy's terms are (1.0, n, n − n = +0.0), a sell's (0.0, n·0.0 = +0.0, n − 0.0 = n), and adding +0.0 to a
running sum that is never −0.0 leaves it unchanged, so a buy adds 1.0 and n to the first two sums and a sell adds n
to the third, the same bits with a third fewer generic (float × bool) operations. An infinite or NaN notional (its
n − n is NaN) takes the literal loop.
"""

from __future__ import annotations

_INF = float("inf")


def prefix_rows(pl: list[float], buys: list[bool], nots: list[float], base: list[float], ref: float) -> list[float]:
    """Flat cumulative rows (buy count, buy notional, sell notional, Σq, Σq², Σ|Δp|, with q = price − ref) of the
    trades ``pl[1:]`` (``pl[0]`` is the price before them), each row plus ``base`` (the tape's row before them)."""
    if not sum(nots) < _INF:  # an infinite or NaN notional (or an overflowing sum: the literal loop is always exact)
        return _prefix_rows_literal(pl, buys, nots, base, ref)
    b0, b1, b2, b3, b4, b5 = base
    r0 = r1 = r2 = r3 = r4 = r5 = 0.0
    prev = pl[0]
    out: list[float] = []
    for p, n, buy in zip(pl[1:], nots, buys):  # noqa: B905 (pl[1:], nots and buys have one entry per row)
        if buy:
            r0 += 1.0
            r1 += n
        else:
            r2 += n
        q = p - ref
        r3 += q
        r4 += q * q
        d = p - prev
        r5 += d if d >= 0.0 else -d  # |d|: d is never −0.0 (nor NaN: prices are finite)
        prev = p
        out += (r0 + b0, r1 + b1, r2 + b2, r3 + b3, r4 + b4, r5 + b5)
    return out


def _prefix_rows_literal(
    pl: list[float], buys: list[bool], nots: list[float], base: list[float], ref: float
) -> list[float]:
    """:func:`prefix_rows` term by term as numpy forms them (notional × bool, then notional − that)."""
    b0, b1, b2, b3, b4, b5 = base
    r0 = r1 = r2 = r3 = r4 = r5 = 0.0
    out: list[float] = []
    for i in range(len(nots)):
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
