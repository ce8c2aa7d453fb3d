"""``write_report``: the sections of ``report.html`` in the order a trader reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from replay.metrics import ClosedTrade, EquityPoint
from replay.report import figures
from replay.report.data import Execution, read_execution, resample, summed_equity
from replay.report.formatting import (
    HEADLINE,
    PF_INF_NOTE,
    fmt_bps,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_text,
    headline_value,
    is_inf,
)
from replay.report.layout import Page, esc, signed, table
from replay.report.robustness import robustness_section
from replay.report.studies import optimization_section, walk_forward_section


def _headline(page: Page, cols: Mapping[str, Mapping[str, Any]]) -> None:
    rows = []
    for label, key, fmt in HEADLINE:
        cells = []
        for m in cols.values():
            text = headline_value(dict(m), key, fmt)
            value = m.get(key) if key in ("total_pnl_usdt", "total_pnl_pct", "total_pnl_bps", "avg_pnl_bps") else None
            cells.append(signed(text, value if isinstance(value, int | float) else None))
            if key == "profit_factor" and is_inf(m.get(key)):
                page.footnote("*", PF_INF_NOTE)
            if key in ("sharpe", "sortino", "calmar") and m.get(key) is None and m.get("ratios_note"):
                page.footnote("†", f"n/a: {m['ratios_note']}.")
        rows.append([esc(label), *cells])
    page.html(table(("metric", *cols), rows, raw=True))


def _execution_rows(per_symbol: Mapping[str, Mapping[str, Any]], execution: Mapping[str, Execution],
                    trades: Mapping[str, Sequence[ClosedTrade]]) -> list[list[str]]:
    rows = []
    for s, m in per_symbol.items():
        ex = execution.get(s, Execution())
        attempts, filled = m.get("entry_attempts"), m.get("entries_filled")
        dropped = attempts - filled if isinstance(attempts, int) and isinstance(filled, int) else None
        entry_q = ex.entry_maker_qty + ex.entry_taker_qty
        exit_q = ex.exit_maker_qty + ex.exit_taker_qty
        slip = np.array([t.entry_slippage_bps for t in trades.get(s, ())])
        rows.append([s, fmt_int(attempts), fmt_int(filled), fmt_int(dropped),
                     fmt_pct(m.get("fill_rate"), ratio=True, digits=1),
                     fmt_pct(ex.entry_maker_qty / entry_q if entry_q else None, ratio=True, digits=1),
                     fmt_pct(ex.exit_maker_qty / exit_q if exit_q else None, ratio=True, digits=1),
                     fmt_pct(m.get("maker_share"), ratio=True, digits=1), fmt_int(ex.market_fallbacks),
                     fmt_num(float(np.mean(ex.amends)) if ex.amends else None, 1),
                     fmt_int(max(ex.amends) if ex.amends else None),
                     fmt_bps(float(slip.mean()) if slip.size else None, 2),
                     fmt_bps(float(np.median(slip)) if slip.size else None, 2),
                     fmt_bps(float(np.percentile(slip, 90)) if slip.size else None, 2)])
    return rows


EXECUTION_HEADER = ("symbol", "entries tried", "filled", "unfilled (dropped)", "fill rate", "maker share, entries",
                    "maker share, exits", "maker share, all", "market fallbacks", "chase amends, mean",
                    "chase amends, max", "slippage mean", "slippage median", "slippage p90")


EXECUTION_NOTE = (
    "From the bot's own trades.csv and fills. Entries: LIMIT filled passively, LIMIT_PARTIAL kept a partial fill, "
    "LIMIT_PLUS_MARKET / MARKET_FALLBACK finished by market order after the chase. Slippage: average entry vs the book "
    "mid when the entry was decided, bps, positive = worse for the trade. Chase amends: times the entry limit was "
    "re-priced toward the market. Not recorded: time to fill and the queue position of resting orders.")


def write_report(path: Path, *, title: str, facts: Mapping[str, Any], per_symbol: Mapping[str, Mapping[str, Any]],
                 equity: Mapping[str, Sequence[EquityPoint]], trades: Mapping[str, Sequence[ClosedTrade]],
                 robustness: Sequence[Mapping[str, Any]] = (), portfolio: Mapping[str, Any] | None = None,
                 portfolio_equity: Sequence[EquityPoint] = (), correlation: Mapping[str, Any] | None = None,
                 candles: Mapping[str, Any] | None = None, report_path: Path | None = None) -> None:
    """Write ``report.html`` for the run folder ``path.parent`` (one self-contained file).

    ``facts`` are stated at the top; ``portfolio`` (the account's metrics) adds a column, the account's equity and the
    symbols' correlation. ``candles`` maps a symbol to its 1m ``Candles`` (anything with ``open_time_ms``, ``open``,
    ``high``, ``low``, ``close``) for the price chart. The run folder's ``bot_*/trades.csv`` supplies the execution
    details, and its optional optimization / walk-forward files their sections. ``report_path`` is accepted for older
    callers and unused: plotly.js is inlined now.
    """
    del report_path
    run_dir = path.parent
    page = Page(title)
    page.html(table(("fact", "value"), [(k, fmt_text(v)) for k, v in facts.items()]))
    symbols = list(per_symbol)
    cols: dict[str, Mapping[str, Any]] = dict(per_symbol)
    if portfolio is not None:
        cols["portfolio"] = portfolio
    all_trades = sorted((t for s in symbols for t in trades.get(s, ())), key=lambda t: (t.closed_ts, t.position_id))

    if cols:  # a folder holding only an optimization or walk-forward has no trading sections
        page.section("Headline metrics", "metrics")
        if portfolio is not None:
            page.note("One column per symbol (its contribution to the shared account) and one for the account.")
        _headline(page, cols)

        page.section("Equity and drawdown", "equity")
        page.note("Mark-to-market equity sampled every 5 minutes (thinned for drawing, keeping each stretch's deepest "
                  "drawdown); drawdown is % below the running peak" + (" of the account." if portfolio else "."))
        account: Sequence[EquityPoint] = ()
        if portfolio is not None:  # isolated accounts have no account curve: their sum is the account
            account = portfolio_equity or summed_equity([equity.get(s, ()) for s in symbols])
        page.figure(figures.equity_drawdown({s: equity.get(s, ()) for s in symbols}, account), "equity")

        if portfolio is not None and correlation:
            page.section("Correlation of the symbols' returns", "correlation")
            matrix = correlation.get("matrix") or {}
            page.note(f"Correlation of the symbols' returns: {correlation.get('basis', '')}, "
                      f"{correlation.get('points', 0)} points. n/a: a flat series or too few points.")
            if matrix:
                page.figure(figures.correlation_heatmap(matrix, str(correlation.get("basis", ""))), "correlation")

        page.section("Price and trades", "price")
        page.note("Triangles: entries (up long, down short); crosses: exits, coloured by close reason; dotted: each "
                  "trade's take-profit (green) and stop-loss (red) over its life. Drag to zoom, double-click to reset.")
        for s in symbols:
            c = (candles or {}).get(s)
            ohlc = resample(c.open_time_ms, c.open, c.high, c.low, c.close) if c is not None else None
            if ohlc is None:
                page.note(f"{s}: no candles were passed to the report; trades only.")
            page.figure(figures.price_with_trades(s, ohlc, trades.get(s, ())), f"price-{s}")

        page.section("Trade outcomes", "outcomes")
        if all_trades:
            page.figure(figures.pnl_distribution(all_trades), "pnl-distribution")
            page.figure(figures.close_reasons(all_trades), "close-reasons")
            page.figure(figures.pnl_by_time(all_trades), "pnl-by-time")
        else:
            page.note("No closed trade in this run.")

        page.section("Execution quality", "execution")
        execution = read_execution(run_dir)
        page.note(EXECUTION_NOTE)
        page.html(table(EXECUTION_HEADER, _execution_rows(per_symbol, execution, trades)))
        pooled = Execution()
        for ex in execution.values():
            for k, n in ex.entry_types.items():
                pooled.entry_types[k] = pooled.entry_types.get(k, 0) + n
            pooled.amends += ex.amends
        if all_trades or pooled.entry_types:
            page.figure(figures.execution_quality(pooled, all_trades), "execution")

    if robustness:
        page.section("Generator dependence (live-cadence mode)", "robustness")
        page.note("Decisions in this mode see intrabar events the generator built knowing the candle's high/low/close. "
                  "The same run over other generator seeds and a pessimistic path shows how much the result depends "
                  "on the generator.")
        rcols = list(robustness[0])
        page.html(table(rcols, [[fmt_text(r[c]) for c in rcols] for r in robustness]))

    robustness_section(run_dir, page)
    optimization_section(run_dir, page)
    walk_forward_section(run_dir, page)

    if cols:
        page.section("All metrics", "all-metrics")
    for name, m in cols.items():
        page.html(f"<details><summary>{esc(name)}</summary>"
                  + table(("metric", "value"), sorted((k, fmt_text(v)) for k, v in m.items())) + "</details>")
    path.write_text(page.render(), encoding="utf-8")
