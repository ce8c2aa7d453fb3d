"""The report's plotly figures, one builder per question a trader asks. Builders return ``go.Figure``; turning them
into HTML (fixed div ids, plotly.js once) is :mod:`replay.report.layout`'s job.

Everything is SVG (``go.Scatter``, never ``Scattergl``/``Parcoords``): a mailed report must draw in any browser,
including one without WebGL. Times are epoch milliseconds on date axes, shown in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from replay.metrics import ClosedTrade, EquityPoint
from replay.report.data import OHLC, Execution, equity_series

GREEN, RED, BLUE, GREY, ORANGE = "#2ca02c", "#d62728", "#1f77b4", "#7f7f7f", "#ff7f0e"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
REASON_COLORS = {"TP_HIT": GREEN, "SL_HIT": RED, "TIME_EXIT": BLUE, "REVERSE": "#9467bd", "OPPOSITE_SIGNAL": ORANGE}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# A small template instead of plotly's default: the default is ~7 KB of JSON repeated in every figure.
TEMPLATE = go.layout.Template(layout={
    "font": {"family": "system-ui, sans-serif", "size": 12}, "colorway": list(PALETTE), "plot_bgcolor": "white",
    "paper_bgcolor": "white", "hovermode": "closest", "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
    "xaxis": {"gridcolor": "#eee", "zerolinecolor": "#ccc"}, "yaxis": {"gridcolor": "#eee", "zerolinecolor": "#ccc"}})


def _fig(**layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


def _subplots(**kw: Any) -> go.Figure:
    fig = make_subplots(**kw)
    fig.update_layout(template=TEMPLATE)
    return fig


def _ms(ts: float) -> int:
    return round(ts * 1000)


def _r(a: Any, nd: int = 6) -> np.ndarray:
    """Rounded values: smaller files, same picture, and no float noise in the bytes."""
    return np.round(np.asarray(a, dtype=float), nd)


def equity_drawdown(curves: Mapping[str, Sequence[EquityPoint]], account: Sequence[EquityPoint] = ()) -> go.Figure:
    """Equity on top, drawdown (% below the running peak) underneath, one shared time axis.

    ``account`` is the portfolio account's curve (its drawdown is the one drawn); without it the single curve's.
    """
    fig = _subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    lines = ({"account": account} if account else {}) | dict(curves)
    for i, (name, pts) in enumerate(lines.items()):
        t, eq, _ = equity_series(pts)
        fig.add_trace(go.Scatter(x=t, y=np.round(eq, 2), mode="lines", name=name, line={"color": PALETTE[i % 9],
                                 "width": 2 if name == "account" or len(lines) == 1 else 1},
                                 hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,.2f} USDT<extra>" + name + "</extra>"),
                      row=1, col=1)
    dd_name, dd_pts = next(iter(lines.items())) if lines else ("", [])
    t, _, dd = equity_series(dd_pts)
    fig.add_trace(go.Scatter(x=t, y=np.round(dd, 3), mode="lines", fill="tozeroy", name=f"drawdown ({dd_name})",
                             line={"color": RED, "width": 1}, showlegend=False,
                             hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.2f} %<extra>drawdown</extra>"),
                  row=2, col=1)
    fig.update_xaxes(type="date", row=2, col=1)
    fig.update_yaxes(title_text="equity (USDT)", tickformat=",.0f", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_layout(height=520, legend={"orientation": "h", "y": 1.06}, hovermode="x unified")
    return fig


def _segments(trades: Sequence[ClosedTrade], level: str) -> tuple[np.ndarray, np.ndarray]:
    """TP or SL as a horizontal segment over each trade's life, segments separated by NaN (numeric arrays travel
    as compact typed arrays in the page, lists of numbers and None do not)."""
    sel = [t for t in trades if getattr(t, level) > 0]
    xs = np.full(3 * len(sel), np.nan)
    ys = np.full(3 * len(sel), np.nan, dtype=np.float32)  # drawn, never hovered: 7 digits are enough
    xs[0::3] = [_ms(t.opened_ts) for t in sel]
    xs[1::3] = [_ms(t.closed_ts) for t in sel]
    ys[0::3] = ys[1::3] = [getattr(t, level) for t in sel]
    return xs, ys


def price_with_trades(symbol: str, ohlc: OHLC | None, trades: Sequence[ClosedTrade]) -> go.Figure:
    """Candles (resampled for long windows) with every entry, exit, take-profit and stop-loss; drag to zoom."""
    iv = ohlc.interval_sec if ohlc is not None else 60
    label = f"{iv // 60}m" if iv < 3600 else (f"{iv // 3600}h" if iv < 86_400 else "1d")
    fig = _fig(height=580, title=f"{symbol}: price ({label} candles, UTC) and trades", hovermode="closest",
               legend={"orientation": "h", "y": -0.12})
    if ohlc is not None and ohlc.time_ms.size:
        fig.add_trace(go.Candlestick(x=ohlc.time_ms, open=ohlc.open, high=ohlc.high, low=ohlc.low, close=ohlc.close,
                                     name=f"{label} candles", increasing={"line": {"color": "#7fbf7f", "width": 1}},
                                     decreasing={"line": {"color": "#e08080", "width": 1}}))
    for level, color, name in (("tp", GREEN, "take-profit"), ("sl", RED, "stop-loss")):
        xs, ys = _segments(trades, level)
        if xs.size:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line={"color": color, "width": 1,
                                     "dash": "dot"}, hoverinfo="skip", connectgaps=False))
    for side, symbol_name, color in (("LONG", "triangle-up", GREEN), ("SHORT", "triangle-down", RED)):
        sel = [t for t in trades if t.side in (side, "Buy" if side == "LONG" else "Sell")]
        if sel:
            fig.add_trace(go.Scatter(
                x=np.array([_ms(t.opened_ts) for t in sel], dtype=np.int64), y=np.array([t.entry_price for t in sel]),
                customdata=np.array([[t.qty, t.tp, t.sl] for t in sel]), mode="markers", name=f"{side.lower()} entry",
                marker={"symbol": symbol_name, "size": 10, "color": color, "line": {"width": 1, "color": "black"}},
                hovertemplate=f"%{{x|%Y-%m-%d %H:%M:%S}} {side} entry %{{y}}<br>qty %{{customdata[0]}}, "
                              "TP %{customdata[1]}, SL %{customdata[2]}<extra></extra>"))
    for reason in sorted({t.reason for t in trades}):
        sel = [t for t in trades if t.reason == reason]
        fig.add_trace(go.Scatter(
            x=np.array([_ms(t.closed_ts) for t in sel], dtype=np.int64), y=np.array([t.exit_price for t in sel]),
            customdata=np.array([[round(t.net_pnl, 2), round(t.pnl_bps, 1)] for t in sel]), mode="markers",
            name=f"exit: {reason}", marker={"symbol": "x", "size": 8, "color": REASON_COLORS.get(reason, GREY),
                                            "line": {"width": 1, "color": "black"}},
            hovertemplate=f"%{{x|%Y-%m-%d %H:%M:%S}} {reason} exit %{{y}}<br>net %{{customdata[0]:+,.2f}} USDT "
                          "(%{customdata[1]:+.1f} bps)<extra></extra>"))
    fig.update_xaxes(type="date", rangeslider={"visible": False}, rangeselector={"buttons": [
        {"count": 6, "label": "6h", "step": "hour", "stepmode": "backward"},
        {"count": 1, "label": "1d", "step": "day", "stepmode": "backward"},
        {"count": 7, "label": "7d", "step": "day", "stepmode": "backward"}, {"step": "all", "label": "all"}]})
    fig.update_yaxes(title_text="price (USDT)", fixedrange=False)
    return fig


def pnl_distribution(trades: Sequence[ClosedTrade]) -> go.Figure:
    """Net PnL per trade in bps of entry notional (size-independent), winners and losers apart."""
    fig = _fig(height=340, title="net PnL per trade (bps of entry notional)", barmode="overlay",
               xaxis_title="bps", yaxis_title="trades", legend={"orientation": "h", "y": 1.12})
    bps = np.array([t.pnl_bps for t in trades])
    if bps.size:
        lo, hi = float(bps.min()), float(bps.max())
        size = max((hi - lo) / 40.0, 0.1)
        bins = {"start": lo, "end": hi + size, "size": size}
        for name, sel, color in (("winners", bps > 0, GREEN), ("losers", bps <= 0, RED)):
            fig.add_trace(go.Histogram(x=_r(bps[sel], 3), xbins=bins, name=name, marker_color=color, opacity=0.75))
    return fig


def close_reasons(trades: Sequence[ClosedTrade]) -> go.Figure:
    """How trades ended: count and net PnL per close reason."""
    reasons = sorted({t.reason for t in trades})
    fig = _subplots(rows=1, cols=2, subplot_titles=("trades per close reason", "net PnL per close reason (USDT)"))
    counts = [sum(1 for t in trades if t.reason == r) for r in reasons]
    pnl = [round(sum(t.net_pnl for t in trades if t.reason == r), 2) for r in reasons]
    colors = [REASON_COLORS.get(r, GREY) for r in reasons]
    fig.add_trace(go.Bar(x=reasons, y=counts, marker_color=colors, name="trades", text=counts), row=1, col=1)
    fig.add_trace(go.Bar(x=reasons, y=pnl, marker_color=colors, name="net PnL",
                         hovertemplate="%{x}: %{y:,.2f} USDT<extra></extra>"), row=1, col=2)
    fig.update_layout(height=340, showlegend=False)
    return fig


def pnl_by_time(trades: Sequence[ClosedTrade]) -> go.Figure:
    """Net PnL by the UTC hour of day and by the weekday the trade was opened in (when to trade, when not to)."""
    hours = np.zeros(24)
    hour_n = np.zeros(24, dtype=int)
    days = np.zeros(7)
    day_n = np.zeros(7, dtype=int)
    for t in trades:
        at = datetime.fromtimestamp(t.opened_ts, UTC)
        hours[at.hour] += t.net_pnl
        hour_n[at.hour] += 1
        days[at.weekday()] += t.net_pnl
        day_n[at.weekday()] += 1
    fig = _subplots(rows=1, cols=2, column_widths=[0.7, 0.3],
                    subplot_titles=("net PnL by hour opened (UTC), USDT", "net PnL by weekday opened (UTC), USDT"))
    for col, x, y, n in ((1, [f"{h:02d}" for h in range(24)], hours, hour_n), (2, list(WEEKDAYS), days, day_n)):
        fig.add_trace(go.Bar(x=x, y=_r(y, 2), customdata=n, marker_color=[GREEN if v > 0 else RED for v in y],
                             hovertemplate="%{x}: %{y:,.2f} USDT over %{customdata} trades<extra></extra>"),
                      row=1, col=col)
    fig.update_xaxes(type="category")
    fig.update_layout(height=320, showlegend=False)
    return fig


def execution_quality(execution: Execution, trades: Sequence[ClosedTrade]) -> go.Figure:
    """How entries filled (limit, partial, market fallback), entry slippage vs the decision mid, chase amends."""
    fig = _subplots(rows=1, cols=3, subplot_titles=("entries by how they filled", "entry slippage vs mid (bps)",
                                                    "chase amends per position"))
    kinds = sorted(execution.entry_types)
    fig.add_trace(go.Bar(x=kinds, y=[execution.entry_types[k] for k in kinds], name="entries",
                         marker_color=[ORANGE if "MARKET" in k else BLUE for k in kinds]), row=1, col=1)
    slip = _r([t.entry_slippage_bps for t in trades], 3)
    fig.add_trace(go.Histogram(x=slip, nbinsx=30, name="slippage", marker_color=GREY), row=1, col=2)
    amends = np.array(execution.amends, dtype=int)
    if amends.size:
        values, counts = np.unique(amends, return_counts=True)
        fig.add_trace(go.Bar(x=values, y=counts, name="positions", marker_color=BLUE), row=1, col=3)
    fig.update_xaxes(type="category", row=1, col=1)
    fig.update_xaxes(dtick=1, row=1, col=3)
    fig.update_layout(height=320, showlegend=False)
    return fig


def correlation_heatmap(matrix: Mapping[str, Mapping[str, float | None]], basis: str) -> go.Figure:
    """Pearson correlation of the symbols' returns; empty cells are pairs the data could not tell."""
    syms = list(matrix)
    z = [[matrix[a][b] for b in syms] for a in syms]
    text = [["n/a" if v is None else f"{v:.2f}" for v in row] for row in z]
    fig = _fig(height=120 + 60 * len(syms), width=260 + 90 * len(syms), margin={"t": 30})  # the section says what
    fig.add_trace(go.Heatmap(z=z, x=syms, y=syms, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                             text=text, texttemplate="%{text}",
                             hovertemplate="%{y} vs %{x}: %{text}<br>" + basis + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return fig


def optimization_history(number: Sequence[int], value: Sequence[float], maximize: bool, objective: str) -> go.Figure:
    """Each complete trial's objective and the best so far."""
    v = np.asarray(value, dtype=float)
    best = np.maximum.accumulate(v) if maximize else np.minimum.accumulate(v)
    fig = _fig(height=340, title=f"optimization history: {objective} per trial", xaxis_title="trial",
               yaxis_title=objective, legend={"orientation": "h", "y": 1.12})
    fig.add_trace(go.Scatter(x=list(number), y=_r(v), mode="markers", name="trial", marker={"color": BLUE}))
    fig.add_trace(go.Scatter(x=list(number), y=_r(best), mode="lines", name="best so far", line={"color": RED},
                             line_shape="hv"))
    return fig


def parameter_importance(importance: Mapping[str, float], method: str) -> go.Figure:
    names = sorted(importance, key=lambda k: importance[k])
    fig = _fig(height=120 + 28 * len(names), title=f"parameter importance ({method})", xaxis_title="importance")
    fig.add_trace(go.Bar(x=[round(importance[n], 4) for n in names], y=names, orientation="h", marker_color=BLUE))
    return fig


def parallel_coordinates(params: Mapping[str, Sequence[float]], value: Sequence[float], objective: str,
                         groups: int = 5) -> go.Figure:
    """One line per trial across the parameters (each scaled to its own min–max), coloured by objective quintile.

    Drawn with SVG lines rather than plotly's WebGL ``parcoords`` so it renders without WebGL.
    """
    names = list(params)
    axes = [*names, objective]
    cols = [np.asarray(params[n], dtype=float) for n in names] + [np.asarray(value, dtype=float)]
    scaled = []
    for c in cols:
        lo, hi = float(np.min(c)), float(np.max(c))
        scaled.append((c - lo) / (hi - lo) if hi > lo else np.full(c.size, 0.5))
    m = np.vstack(scaled).T  # trials × axes
    v = cols[-1]
    order = np.argsort(np.argsort(v, kind="stable"), kind="stable")
    group = np.minimum(order * groups // max(v.size, 1), groups - 1)
    colors = ("#313695", "#74add1", "#fee090", "#f46d43", "#a50026")
    fig = _fig(height=380, title=f"parallel coordinates: trials coloured by {objective} quintile (low → high)",
               legend={"orientation": "h", "y": -0.15})
    x_axis = list(range(len(axes)))
    for g in range(groups):
        xs: list[Any] = []
        ys: list[Any] = []
        for row in m[group == g]:
            xs += [*x_axis, None]
            ys += [*np.round(row, 4).tolist(), None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"quintile {g + 1}", hoverinfo="skip",
                                     line={"color": colors[g % len(colors)], "width": 1}, opacity=0.6))
    ticks = [f"{a}<br>{np.min(c):.4g} … {np.max(c):.4g}" for a, c in zip(axes, cols, strict=True)]
    fig.update_xaxes(tickvals=x_axis, ticktext=ticks, range=[-0.2, len(axes) - 0.8])
    fig.update_yaxes(showticklabels=False, range=[-0.05, 1.05], title_text="each axis: min (bottom) to max (top)")
    return fig


def walk_forward_folds(folds: Sequence[Mapping[str, Any]], objective: str) -> go.Figure:
    """Each fold's train and test windows on a timeline, and the objective in sample vs out of sample."""
    fig = _subplots(rows=1, cols=2, column_widths=[0.55, 0.45],
                    subplot_titles=("folds: train (in sample) and test (out of sample) windows, UTC",
                                    f"{objective}: in sample vs out of sample"))
    labels = [str(f.get("fold", i + 1)) for i, f in enumerate(folds)]
    for kind, color, width in (("train", BLUE, 10), ("test", ORANGE, 10)):
        xs: list[Any] = []
        ys: list[Any] = []
        for label, f in zip(labels, folds, strict=True):
            xs += [f[f"{kind}_start"], f[f"{kind}_end"], None]
            ys += [f"fold {label}", f"fold {label}", None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=kind, line={"color": color, "width": width}),
                      row=1, col=1)
    for key, name, color in (("in_sample", "in sample", BLUE), ("out_of_sample", "out of sample", ORANGE)):
        ys2 = [f[key].get(objective) if isinstance(f[key], Mapping) else None for f in folds]
        fig.add_trace(go.Bar(x=[f"fold {label}" for label in labels], y=ys2, name=name, marker_color=color,
                             showlegend=False), row=1, col=2)
    fig.update_xaxes(type="date", row=1, col=1)
    fig.update_yaxes(autorange="reversed", type="category", row=1, col=1)
    fig.update_layout(height=140 + 40 * len(folds) if len(folds) > 5 else 340, barmode="group",
                      legend={"orientation": "h", "y": -0.15})
    return fig
