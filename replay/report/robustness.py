"""The "Robustness" section, drawn from ``robustness.json`` when ``python -m replay robustness`` wrote one.

Like the study hooks (:mod:`replay.report.studies`) it adds nothing when the file is absent, so ``write_report`` can
always call it. The file's shape is :func:`replay.robustness.run.run_study`'s result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from replay.report.figures import BLUE, GREEN, GREY, ORANGE, RED, _fig, _r
from replay.report.formatting import fmt_int, fmt_num, fmt_pct, fmt_pf, fmt_text, fmt_usdt
from replay.report.layout import Page, esc, table

ROBUSTNESS_FILE = "robustness.json"
METRIC_HEADER = ("net USDT", "PF", "max DD", "trades", "win rate")
SEED_LABELS = {"total_pnl_usdt": "net PnL (USDT)", "profit_factor": "profit factor",
               "max_drawdown_pct": "max drawdown (%)", "total_trades": "trades"}


def _metric_cells(m: Mapping[str, Any]) -> list[str]:
    return [fmt_usdt(m.get("total_pnl_usdt"), sign=True), fmt_pf(m.get("profit_factor")),
            fmt_pct(m.get("max_drawdown_pct")), fmt_int(m.get("total_trades")),
            fmt_pct(m.get("win_rate"), ratio=True, digits=1)]


def seed_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Net PnL per seed variant: the spread a single replay hides."""
    fig = _fig(height=300, title="Net PnL per generator seed", yaxis_title="net PnL (USDT)")
    pnl = [float(r.get("total_pnl_usdt") or 0.0) for r in rows]
    fig.add_trace(go.Bar(x=[r["label"] for r in rows], y=_r(pnl, 4),
                         marker_color=[GREEN if p > 0 else RED for p in pnl],
                         hovertemplate="%{x}: %{y:.2f} USDT<extra></extra>"))
    return fig


def mc_figure(mc: Mapping[str, Any]) -> go.Figure:
    """Max drawdown over the Monte Carlo paths, both methods, with the ruin level marked."""
    fig = _fig(height=320, title="Monte Carlo max drawdown", xaxis_title="max drawdown (%)",
               yaxis_title="paths", barmode="overlay")
    for method, color in (("bootstrap", BLUE), ("shuffle", ORANGE)):
        fig.add_trace(go.Histogram(x=_r(mc[method]["dd_samples"], 4), name=method, opacity=0.6, nbinsx=40,
                                   marker_color=color))
    fig.add_vline(x=float(mc["ruin_dd_pct"]), line_dash="dot", line_color=RED,
                  annotation_text=f"ruin {mc['ruin_dd_pct']:g}%")
    fig.add_vline(x=float(mc["base_max_dd_pct"]), line_dash="dash", line_color=GREY,
                  annotation_text="base run")
    return fig


def grid_figure(grid: Mapping[str, Any]) -> go.Figure:
    """Net PnL on the 3×3 grid of the two most sensitive parameters (the centre is the chosen point)."""
    z = [[None if v is None else float(v) for v in row] for row in grid["z"]]
    text = [["n/a" if v is None else f"{v:.2f}" for v in row] for row in z]
    fig = _fig(height=360, title=f"Net PnL (USDT): {grid['x']} × {grid['y']}", xaxis_title=grid["x"],
               yaxis_title=grid["y"])
    fig.add_trace(go.Heatmap(z=z, x=[str(v) for v in grid["x_values"]], y=[str(v) for v in grid["y_values"]],
                             colorscale="RdYlGn", zmid=0, text=text, texttemplate="%{text}",
                             hovertemplate=f"{grid['x']}=%{{x}}, {grid['y']}=%{{y}}: %{{text}}<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def robustness_section(run_dir: Path, page: Page) -> bool:
    """Seed spread, Monte Carlo drawdowns, stress windows and parameter sensitivity from ``robustness.json``."""
    path = run_dir / ROBUSTNESS_FILE
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    page.section("Robustness", "robustness-study")
    base = data["base"]
    page.note(f"python -m replay robustness around this run (seed {base['seed']}, {base['start']} → "
              f"{base['end']}). Every number below comes from a replay of the same bot code, or from resampling "
              "the base run's trades; all seeded.")

    seeds = data["seeds"]
    page.heading("Generator seeds")
    page.note("The same run over other seeds of the synthetic intrabar market, and the pessimistic path (inside "
              "each candle the extreme against the previous candle's direction comes first). "
              + seeds["rule"].capitalize() + ".")
    if seeds.get("flag"):
        page.html(f'<p class="neg"><b>Flag:</b> {esc(seeds["flag"])}</p>')
    page.html(table(("variant", *METRIC_HEADER), [[r["label"], *_metric_cells(r)] for r in seeds["rows"]]))
    summ = seeds["summary"]
    page.html(table(("over the plain seeds", "min", "median", "max", "share profitable"),
                    [[SEED_LABELS.get(k, k), fmt_num(v["min"]), fmt_num(v["median"]), fmt_num(v["max"]),
                      fmt_pct(v["share_positive"], ratio=True, digits=0) if k == "total_pnl_usdt" else ""]
                     for k, v in summ.items()]))
    page.figure(seed_figure(seeds["rows"]), "robust-seeds")

    mc = data["monte_carlo"]
    page.heading("Monte Carlo on the trade list")
    page.note(f"{mc['paths']} paths of the base run's {mc['trades']} trades (net PnL each, sizes as traded): "
              "bootstrap resamples with replacement (other outcomes of the same edge), shuffle reorders (same total, "
              f"path risk only). Ruin: a drawdown of {mc['ruin_dd_pct']:g}% of the running peak.")
    rows = []
    for method in ("bootstrap", "shuffle"):
        m = mc[method]
        rows.append([method, *[fmt_pct(m["max_dd_pct"][q]) for q in ("p5", "p50", "p95")],
                     *[fmt_usdt(m["net_pnl_usdt"][q], sign=True) for q in ("p5", "p50", "p95")],
                     fmt_pct(m["risk_of_ruin"], ratio=True, digits=1)])
    page.html(table(("method", "max DD p5", "p50", "p95", "net PnL p5", "p50", "p95", "risk of ruin"), rows))
    if mc["trades"]:
        page.figure(mc_figure(mc), "robust-mc")

    stress = data["stress"]
    page.heading("Stress windows")
    page.note("The most volatile UTC days (daily high−low range over the first open) and the largest 1m moves "
              f"(|close − previous close|, which includes any open gap; ±{stress['gap_hours']:g} h around it), each "
              "replayed alone from a cold start.")
    if stress["rows"]:
        page.html(table(("window", "from", "to", "size", *METRIC_HEADER),
                        [[r["label"], r["start"], r["end"],
                          f"range {fmt_num(r['day_range_pct'], 2)}%" if "day_range_pct" in r
                          else f"move {fmt_num(r.get('gap_pct'), 3)}%", *_metric_cells(r)] for r in stress["rows"]]))
    else:
        page.note("No stress window was replayed (--stress 0).")

    sens = data["sensitivity"]
    page.heading("Parameter sensitivity")
    page.note(sens["rule"].capitalize() + ". Each row moves one OPTIMIZABLE parameter (clipped to its range), all "
              "else as in the base run.")
    if sens["rows"]:
        verdict = "FRAGILE: a sharp peak" if sens["fragile"] else "not fragile by this rule"
        page.html(f'<p class="{"neg" if sens["fragile"] else "pos"}"><b>{esc(verdict)}</b></p>')
        page.html(table(("parameter", "base", "value", "move", "Δ net vs base", *METRIC_HEADER),
                        [[r["param"], fmt_text(r["base_value"]), fmt_text(r["value"]),
                          fmt_pct(r["move_pct"], sign=True, digits=1),
                          fmt_pct(r["pnl_change"], ratio=True, sign=True, digits=0), *_metric_cells(r)]
                         for r in sens["rows"]]))
        if sens.get("grid"):
            page.figure(grid_figure(sens["grid"]), "robust-grid")
    if sens.get("skipped"):
        page.note("Not moved: " + ", ".join(sens["skipped"]) + ".")
    if not sens["rows"] and not sens.get("skipped"):
        page.note("Sensitivity was not run (--sensitivity 0).")
    return True
