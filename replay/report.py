"""The HTML report of a run: one page, plotly figures, the metrics tables and the facts needed to trust them.

plotly.js is written once next to the ``runs/`` folder (``{report_path}/plotly.min.js``) and referenced relatively,
so a report works offline without carrying 3.5 MB per run.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from replay.metrics import ClosedTrade, EquityPoint

KEY_METRICS = ("total_trades", "win_rate", "profit_factor", "total_pnl_usdt", "total_pnl_pct", "total_pnl_bps",
               "max_drawdown_pct", "sharpe", "sortino", "calmar", "ratios_note", "avg_hold_sec", "trades_per_day",
               "fees_paid_usdt", "maker_share", "fill_rate", "avg_entry_slippage_bps")


def _ensure_plotlyjs(report_path: Path) -> None:
    target = report_path / "plotly.min.js"
    if not target.exists():
        target.write_text(get_plotlyjs(), encoding="utf-8")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('n/a' if c is None else str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _symbol_figure(symbol: str, equity: Sequence[EquityPoint], trades: Sequence[ClosedTrade]) -> str:
    fig = make_subplots(rows=2, cols=2, specs=[[{"colspan": 2}, None], [{}, {}]], row_heights=[0.6, 0.4],
                        subplot_titles=(f"{symbol} equity (USDT, mark-to-market)", "net PnL per trade (bps of entry)",
                                        "close reasons"))
    fig.add_trace(go.Scattergl(x=[p.ts * 1000 for p in equity], y=[p.equity for p in equity], mode="lines",
                               name="equity"), row=1, col=1)
    fig.update_xaxes(type="date", row=1, col=1)
    fig.add_trace(go.Histogram(x=[t.pnl_bps for t in trades], nbinsx=40, name="pnl bps"), row=2, col=1)
    reasons: dict[str, int] = {}
    for t in trades:
        reasons[t.reason] = reasons.get(t.reason, 0) + 1
    fig.add_trace(go.Bar(x=list(reasons), y=list(reasons.values()), name="reasons"), row=2, col=2)
    fig.update_layout(height=650, showlegend=False, margin={"l": 40, "r": 20, "t": 40, "b": 30})
    return fig.to_html(full_html=False, include_plotlyjs=False)


def _portfolio_figure(equity: Sequence[EquityPoint], contributions: Mapping[str, Sequence[EquityPoint]]) -> str:
    fig = go.Figure()
    if equity:
        fig.add_trace(go.Scattergl(x=[p.ts * 1000 for p in equity], y=[p.equity for p in equity], mode="lines",
                                   name="account"))
    for s, pts in contributions.items():
        fig.add_trace(go.Scattergl(x=[p.ts * 1000 for p in pts], y=[p.equity for p in pts], mode="lines", name=s))
    fig.update_xaxes(type="date")
    fig.update_layout(title="equity (USDT, mark-to-market): the account and each symbol's contribution", height=420,
                      margin={"l": 40, "r": 20, "t": 40, "b": 30})
    return fig.to_html(full_html=False, include_plotlyjs=False)


def write_report(path: Path, *, report_path: Path, title: str, facts: Mapping[str, Any],
                 per_symbol: Mapping[str, Mapping[str, Any]], equity: Mapping[str, Sequence[EquityPoint]],
                 trades: Mapping[str, Sequence[ClosedTrade]], robustness: Sequence[Mapping[str, Any]] = (),
                 portfolio: Mapping[str, Any] | None = None, portfolio_equity: Sequence[EquityPoint] = (),
                 correlation: Mapping[str, Any] | None = None) -> None:
    """Write ``report.html``. ``facts`` are stated at the top (mode, account, seed, window, data source,
    simplifications); ``portfolio`` (the account's metrics) adds a column, an equity figure and the correlation of the
    symbols' returns."""
    _ensure_plotlyjs(report_path)
    rel_js = Path("..") / ".." / "plotly.min.js"
    parts = [f"<h1>{html.escape(title)}</h1>", _table([(k, v) for k, v in facts.items()], ("fact", "value"))]
    symbols = list(per_symbol)
    cols: dict[str, Mapping[str, Any]] = dict(per_symbol)
    if portfolio is not None:
        cols["portfolio"] = portfolio
    parts.append("<h2>Key metrics</h2>")
    parts.append(_table([[k, *[m.get(k) for m in cols.values()]] for k in KEY_METRICS], ("metric", *cols)))
    if portfolio is not None:
        parts.append("<h2>Portfolio</h2>")
        parts.append(_portfolio_figure(portfolio_equity, equity))
        if correlation and correlation.get("matrix"):
            m = correlation["matrix"]
            parts.append(f"<p>Correlation of the symbols' returns ({html.escape(str(correlation['basis']))}, "
                         f"{correlation['points']} points)</p>")
            parts.append(_table([[a, *[m[a][b] for b in m]] for a in m], ("", *m)))
    if robustness:
        parts.append("<h2>Generator dependence (live-cadence mode)</h2><p>Decisions in this mode see intrabar events "
                     "the generator built knowing the candle's high/low/close. The same run over other generator seeds "
                     "and a pessimistic path shows how much the result depends on the generator.</p>")
        cols = list(robustness[0])
        parts.append(_table([[r[c] for c in cols] for r in robustness], cols))
    for s in symbols:
        parts.append(f"<h2>{html.escape(s)}</h2>")
        parts.append(_symbol_figure(s, equity.get(s, ()), trades.get(s, ())))
        parts.append("<details><summary>all metrics</summary>"
                     + _table(sorted((k, v) for k, v in per_symbol[s].items()), ("metric", "value")) + "</details>")
    style = ("body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;"
             "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
             "td:first-child{text-align:left}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style><script src='{rel_js.as_posix()}'></script></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    path.write_text(page, encoding="utf-8")
