"""``python -m replay runs list|show RUN|compare A B``: the run folders under ``{report_path}/runs`` at a glance.

A run is a folder holding ``manifest.json`` (written last, so a half-written run never shows). Everything printed
comes from the folder's ``manifest.json`` and ``summary.json``; nothing is re-computed, so what ``show`` prints is
what the run wrote. ``RUN`` is a run id (the folder name), a unique prefix or substring of one, ``latest``, or a path.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from replay.artifacts import RUN_MARKER, run_order_key
from replay.cli_args import OneLineParser
from replay.report.formatting import (
    HEADLINE,
    NA,
    as_float,
    fmt_bps,
    fmt_duration,
    fmt_num,
    fmt_pct,
    fmt_pf,
    fmt_text,
    fmt_usdt,
    headline_value,
)
from settings.toml_text import flatten

EPILOG = """examples:
  python -m replay runs list                    every complete run, oldest first
  python -m replay runs show latest             one run's facts and headline metrics
  python -m replay runs compare A B             metrics side by side with B − A, and the settings that differ
RUN is a run id (folder name), a unique prefix or part of one, 'latest', or a path to a run folder."""


class RunError(ValueError):
    """A run that cannot be found or read; the message says which and what exists instead."""


@dataclass(frozen=True, slots=True)
class Run:
    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def account(self) -> dict[str, Any]:
        """The account-level metrics (the portfolio account, or the one symbol's)."""
        return self.summary.get("aggregate") or {}

    def window(self) -> tuple[str, str] | None:
        spans = list((self.manifest.get("window") or {}).values())
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def days(self) -> float | None:
        w = self.window()
        if w is None:
            return None
        a, b = (datetime.fromisoformat(x.replace("Z", "+00:00")) for x in w)
        return (b - a).total_seconds() / 86_400.0


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def load_run(path: Path) -> Run:
    if not (path / RUN_MARKER).is_file():
        raise RunError(f"{path}: not a complete run folder (no {RUN_MARKER})")
    return Run(path, _read_json(path / RUN_MARKER), _read_json(path / "summary.json"))


def list_runs(report_path: Path) -> list[Run]:
    """Every complete run under ``report_path/runs``, oldest first (start second, then completion)."""
    runs = report_path / "runs"
    if not runs.is_dir():
        return []
    return [load_run(p) for p in sorted(runs.iterdir(), key=run_order_key) if (p / RUN_MARKER).is_file()]


def resolve(report_path: Path, ref: str) -> Run:
    """A run by id, unique prefix/substring, ``latest``, or path; an unknown one names what exists."""
    direct = Path(ref)
    if direct.is_dir() and (direct / RUN_MARKER).is_file():
        return load_run(direct)
    runs = list_runs(report_path)
    where = report_path / "runs"
    if not runs:
        raise RunError(f"unknown run {ref!r}: {where} holds no complete run")
    if ref == "latest":
        return runs[-1]
    ids = [r.run_id for r in runs]
    for match in (lambda i: i == ref, lambda i: i.startswith(ref), lambda i: ref in i):
        found = [r for r in runs if match(r.run_id)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RunError(f"run {ref!r} is ambiguous in {where}: {', '.join(r.run_id for r in found[:5])}"
                           f"{' …' if len(found) > 5 else ''}")
    near = difflib.get_close_matches(ref, ids, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise RunError(f"unknown run {ref!r} in {where} ({len(runs)} run{'s' if len(runs) != 1 else ''} there; "
                   f"`python -m replay runs list` shows them){hint}")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def cmd_list(report_path: Path) -> str:
    runs = list_runs(report_path)
    if not runs:
        return f"no runs in {report_path / 'runs'}"
    rows = []
    for r in runs:
        a = r.account
        days = r.days()
        rows.append([r.run_id, (r.manifest.get("created_utc") or "")[:16].replace("T", " "),
                     ",".join(r.manifest.get("symbols") or []), NA if days is None else f"{days:g}",
                     fmt_text(a.get("total_trades")), fmt_usdt(a.get("total_pnl_usdt"), sign=True),
                     fmt_pf(a.get("profit_factor")), fmt_pct(a.get("max_drawdown_pct"))])
    return text_table(("run", "created (UTC)", "symbols", "days", "trades", "net PnL", "PF", "max DD"), rows,
                      left=3)


def _metric_columns(run: Run) -> dict[str, Mapping[str, Any]]:
    """Per-symbol metrics (the full ones when the folder has them) and the account's for a portfolio."""
    cols: dict[str, Mapping[str, Any]] = {}
    for sym, headline in (run.summary.get("symbols") or {}).items():
        full = _read_json(run.path / f"metrics_{sym}.json")
        cols[sym] = full or headline
    if len(cols) != 1 and run.account:
        cols["portfolio"] = run.account
    return cols


def _facts(run: Run) -> list[tuple[str, str]]:
    m = run.manifest
    w = run.window()
    return [("run", run.run_id), ("created (UTC)", fmt_text(m.get("created_utc"))),
            ("command", fmt_text(m.get("command"))), ("symbols", fmt_text(m.get("symbols"))),
            ("window (UTC)", f"{w[0]} → {w[1]}" if w else NA), ("mode", fmt_text(m.get("mode"))),
            ("account", fmt_text(m.get("account"))), ("seed", fmt_text(m.get("seed"))),
            ("data source", fmt_text(m.get("data_source"))), ("git commit", fmt_text(m.get("git_commit"))),
            ("settings hash", fmt_text(m.get("settings_hash"))), ("calibration", calibration_fact(m))]


def calibration_fact(manifest: Mapping[str, Any]) -> str:
    """The generator calibration a run replayed with: ``none`` or its file and coefficient hash."""
    cal = manifest.get("calibration")
    if not cal:
        return "none (project defaults)"
    return f"{cal.get('file', NA)} (generator {str(cal.get('generator_hash') or NA)[:12]})"


def cmd_show(run: Run) -> str:
    facts = text_table(("fact", "value"), _facts(run), left=2)
    cols = _metric_columns(run)
    rows = [[label, *[headline_value(dict(m), key, fmt) for m in cols.values()]] for label, key, fmt in HEADLINE]
    notes = sorted({str(m["ratios_note"]) for m in cols.values() if m.get("ratios_note")})
    out = [facts, "", text_table(("metric", *cols), rows)]
    if any(str(m.get("profit_factor")) == "inf" or m.get("profit_factor") == math.inf for m in cols.values()):
        out.append("* profit factor ∞: no losing trade")
    out += [f"† n/a: {n}" for n in notes]
    report = run.path / "report.html"
    out += ["", f"folder: {run.path}"] + ([f"report: {report}"] if report.is_file() else [])
    return "\n".join(out)


def _signed(x: float, fmt: Callable[[float], str]) -> str:
    text = fmt(x)
    return text if x <= 0 or text.startswith("+") else "+" + text


# How a difference B − A reads: fractions and percents as percentage points, money in USDT, time as a duration.
_DIFF: dict[str, Callable[[float], str]] = {
    "total_pnl_usdt": lambda d: fmt_usdt(d), "final_equity": lambda d: fmt_usdt(d),
    "avg_win": lambda d: fmt_usdt(d), "avg_loss": lambda d: fmt_usdt(d), "largest_win": lambda d: fmt_usdt(d),
    "largest_loss": lambda d: fmt_usdt(d), "fees_paid_usdt": lambda d: fmt_usdt(d),
    "total_pnl_pct": lambda d: f"{fmt_num(d, 2)} pp", "max_drawdown_pct": lambda d: f"{fmt_num(d, 2)} pp",
    "win_rate": lambda d: f"{fmt_num(d * 100, 1)} pp", "maker_share": lambda d: f"{fmt_num(d * 100, 1)} pp",
    "fill_rate": lambda d: f"{fmt_num(d * 100, 1)} pp", "total_pnl_bps": fmt_bps, "avg_pnl_bps": fmt_bps,
    "avg_entry_slippage_bps": lambda d: fmt_bps(d, 2), "avg_hold_sec": fmt_duration,
    "total_trades": lambda d: fmt_num(d, 0), "open_positions_at_end": lambda d: fmt_num(d, 0),
}


def diff_cell(key: str, a: Any, b: Any) -> str:
    fa, fb = as_float(a), as_float(b)
    if fa is None or fb is None or not (math.isfinite(fa) and math.isfinite(fb)):
        return "" if a == b else "changed"
    d = fb - fa
    if d == 0:
        return "="
    return _signed(d, _DIFF.get(key, lambda x: fmt_num(x, 2)))


def cmd_compare(a: Run, b: Run) -> str:
    out = [text_table(("", "A", "B"), [("run", a.run_id, b.run_id),
                                       ("symbols", fmt_text(a.manifest.get("symbols")),
                                        fmt_text(b.manifest.get("symbols"))),
                                       ("window (UTC)", *[" → ".join(r.window() or (NA, NA)) for r in (a, b)])])]
    ca, cb = _metric_columns(a), _metric_columns(b)
    names = ["portfolio"] if "portfolio" in ca and "portfolio" in cb else []
    names += [s for s in ca if s in cb and s != "portfolio"]
    if not names and a.account and b.account:
        names = ["account"]
        ca, cb = {"account": a.account}, {"account": b.account}
    for name in names:
        ma, mb = dict(ca[name]), dict(cb[name])
        rows = []
        for label, key, fmt in HEADLINE:
            va, vb = headline_value(ma, key, fmt), headline_value(mb, key, fmt)
            rows.append([label, va, vb, diff_cell(key, ma.get(key), mb.get(key)) if key in ma or key in mb else
                         ("=" if va == vb else "changed")])
        out += ["", f"metrics: {name}", text_table(("metric", "A", "B", "B − A"), rows)]
    only = sorted(set(ca) ^ set(cb) - {"portfolio"})
    if only:
        out.append(f"symbols in one run only (not compared): {', '.join(only)}")
    sa = flatten(a.manifest.get("settings") or {})
    sb = flatten(b.manifest.get("settings") or {})
    run_keys = ("seed", "data_source", "mode", "account", "git_commit", "settings_hash")
    facts = [(k, fmt_text(a.manifest.get(k)), fmt_text(b.manifest.get(k))) for k in run_keys
             if a.manifest.get(k) != b.manifest.get(k)]
    ga, gb = ((r.manifest.get("calibration") or {}).get("generator_hash") for r in (a, b))
    if ga != gb:  # the file name alone may be the same (generator.json) with other coefficients
        facts.append(("calibration", calibration_fact(a.manifest), calibration_fact(b.manifest)))
    data = [(f"data_hash.{s}", str(a.manifest.get("data_hash", {}).get(s, NA))[:12],
             str(b.manifest.get("data_hash", {}).get(s, NA))[:12])
            for s in sorted(set(a.manifest.get("data_hash", {})) | set(b.manifest.get("data_hash", {})))
            if a.manifest.get("data_hash", {}).get(s) != b.manifest.get("data_hash", {}).get(s)]
    settings = [(k, fmt_text(sa.get(k, "(absent)")), fmt_text(sb.get(k, "(absent)")))
                for k in sorted(set(sa) | set(sb)) if sa.get(k, "(absent)") != sb.get(k, "(absent)")]
    differ = facts + data + settings
    out += ["", "settings and run facts that differ:" if differ else "settings and run facts: identical"]
    if differ:
        out.append(text_table(("key", "A", "B"), differ))
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m replay runs", description="List, show and compare replay run folders.",
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report-path", type=Path, metavar="DIR",
                   help="where the runs/ folder is (default: backtest.report_path, logs/backtest)")
    sub = p.add_subparsers(dest="command", required=True, metavar="list|show|compare")
    sub.add_parser("list", help="every complete run: id, date, symbols, days, trades, net PnL, PF, max DD")
    show = sub.add_parser("show", help="one run's facts and headline metrics")
    show.add_argument("run")
    cmp_ = sub.add_parser("compare", help="two runs side by side: metrics with B − A, settings that differ")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    return p


def _default_report_path() -> Path:
    from settings import load_settings

    return Path(load_settings().backtest.report_path)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        report_path = args.report_path or _default_report_path()
        if args.command == "list":
            print(cmd_list(report_path))
        elif args.command == "show":
            print(cmd_show(resolve(report_path, args.run)))
        else:
            print(cmd_compare(resolve(report_path, args.a), resolve(report_path, args.b)))
    except (RunError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
