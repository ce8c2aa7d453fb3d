"""``BacktestEngine``: a whole replay run, from settings to a run folder (ARCHITECTURE.md §7).

It snapshots the config (``BacktestConfig``), runs the symbols as one portfolio account (or, isolated, one account
per symbol fanned out over a process pool; :mod:`replay.engine`), writes the artifacts, the manifest and the report,
and rotates old runs. Nothing is written as a finished run unless every symbol succeeded:
the manifest — the marker of a complete run — is written last, and a failed run's folder is removed.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from replay.artifacts import PROJECT_ROOT, git_commit, new_run_dir, rotate_runs, versions, write_json
from replay.engine import (
    Job,
    PortfolioJob,
    PortfolioResult,
    SymbolJob,
    SymbolResult,
    aggregate,
    ordered_symbols,
    run_jobs,
    write_symbol_artifacts,
)
from replay.portfolio import correlation
from replay.report import write_report
from replay.results import write_equity
from settings import Settings
from settings.snapshot import BacktestConfig

QUICK_DAYS = 1.0
QUICK_MAX_SYMBOLS = 2
MODE_TEXT = {
    True: "strict no-repaint: evaluations at the live cadence, actions only at candle closes on completed candles",
    False: "live cadence: evaluations and actions at the live cadence inside candles (see generator dependence)",
}
ACCOUNT_TEXT = {
    False: "portfolio: one bot, one account for all symbols",
    True: "isolated: one account per symbol",
}


@dataclass(slots=True)
class RunOutcome:
    run_dir: Path
    results: dict[str, SymbolResult]
    summary: dict[str, Any]


class BacktestEngine:
    """Runs the real bot over bundled/cached/REST 1m data in virtual time and writes a run folder."""

    def __init__(self, settings: Settings | None = None, *, data_dir: Path | None = None,
                 isolated: bool = False, calibration: Path | None = None) -> None:
        self.settings = settings or Settings()
        self.calibration = calibration  # a calibration file: generator coefficients, copied into the run folder
        self._calibration_json = calibration_text(calibration) if calibration is not None else None
        self.report_path = Path(self.settings.backtest.report_path)
        self.executor: Executor | None = None
        self.data_dir = data_dir
        self.isolated = isolated  # one account per symbol (fanned out) instead of one portfolio account

    def configure_from_settings(self, settings: Settings) -> BacktestEngine:
        self.settings = settings
        rp = Path(settings.backtest.report_path)
        self.report_path = rp if rp.is_absolute() else Path.cwd() / rp
        return self

    def run_quick_test(self, symbols: Sequence[str] | None = None, *, seed: int | None = None,
                       progress: bool = False) -> RunOutcome:
        """A sanity check: the last day of at most two symbols."""
        chosen = list(symbols or self.settings.trading.trade_pairs)[:QUICK_MAX_SYMBOLS]
        return self.run_full_test(chosen, days=QUICK_DAYS, seed=seed, progress=progress, label="quick")

    def run_full_test(self, symbols: Sequence[str], *, days: float | None = None, start: str | None = None,
                      end: str | None = None, seed: int | None = None, progress: bool = False,
                      label: str = "") -> RunOutcome:
        """Every selected symbol; per-symbol and aggregate results in one run folder."""
        if not symbols:
            raise ValueError("no symbols selected")
        seed = self.settings.backtest.seed if seed is None else seed
        run_dir = new_run_dir(self.report_path, f"{label + '-' if label else ''}{'-'.join(symbols)}-s{seed}")
        sink = logger.add(run_dir / "backtest.log", level=self.settings.backtest.log_level_backtest,
                          format="{time:YYYY-MM-DDTHH:mm:ss.SSS}Z {level} {message}", enqueue=False)
        try:
            return self._run(run_dir, list(symbols), days, start, end, seed, progress)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        finally:
            logger.remove(sink)

    def _test_on_symbol(self, symbol: str, run_dir: Path, *, days: float | None, start: str | None,
                        end: str | None, seed: int, progress: bool = False,
                        pessimistic: bool = False) -> SymbolResult:
        job = self._job([symbol], run_dir, days, start, end, seed, progress, pessimistic)
        return run_jobs([job])[0]

    def _job(self, symbols: Sequence[str], run_dir: Path, days: float | None, start: str | None, end: str | None,
             seed: int, progress: bool, pessimistic: bool = False) -> Job:
        common = {"settings_json": self.settings.model_dump_json(), "out_dir": str(run_dir), "seed": seed,
                  "days": days, "start": start, "end": end, "pessimistic": pessimistic, "progress": progress,
                  "data_dir": str(self.data_dir) if self.data_dir else None,
                  "calibration_json": self._calibration_json}
        if len(symbols) == 1:
            return SymbolJob(symbol=symbols[0], **common)  # type: ignore[arg-type]
        return PortfolioJob(symbols=tuple(symbols), **common)  # type: ignore[arg-type]

    def _jobs(self, symbols: Sequence[str], run_dir: Path, days: float | None, start: str | None, end: str | None,
              seed: int, progress: bool, pessimistic: bool = False) -> list[Job]:
        """One portfolio job, or one job per symbol when isolated."""
        if self.isolated:
            return [self._job([s], run_dir, days, start, end, seed, progress, pessimistic) for s in symbols]
        return [self._job(symbols, run_dir, days, start, end, seed, progress, pessimistic)]

    def _results(self, jobs: Sequence[Job]) -> tuple[dict[str, SymbolResult], dict[str, Any], dict[str, Any],
                                                     list[Any]]:
        """Per-symbol results, the account-level metrics (the portfolio account, or isolated accounts summed), the
        symbol-return correlation, and the portfolio equity curve (empty for isolated runs)."""
        return self._collect(run_jobs(jobs, self.executor))

    def _collect(self, out: Sequence[Any]) -> tuple[dict[str, SymbolResult], dict[str, Any], dict[str, Any],
                                                     list[Any]]:
        initial = self.settings.backtest.initial_balance_usdt
        if len(out) == 1 and isinstance(out[0], PortfolioResult):
            p = out[0]
            return p.symbols, p.metrics, p.correlation, p.equity
        results = {r.symbol: r for r in out}
        return results, aggregate(results, initial), correlation({s: r.equity for s, r in results.items()}), []

    def _run(self, run_dir: Path, symbols: list[str], days: float | None, start: str | None, end: str | None,
             seed: int, progress: bool) -> RunOutcome:
        bt = self.settings.backtest
        symbols = ordered_symbols(self.settings, symbols)
        account = ACCOUNT_TEXT[self.isolated and len(symbols) > 1]
        logger.info("run {} symbols={} days={} start={} end={} seed={} mode={} account={}", run_dir.name, symbols,
                    days, start, end, seed, "strict" if bt.strict_repainting_check else "live-cadence", account)
        results, agg, corr, portfolio_equity = self._results(self._jobs(symbols, run_dir, days, start, end, seed,
                                                                         progress))
        robustness = [] if bt.strict_repainting_check else self._robustness(run_dir, symbols, days, start, end, seed)
        for r in results.values():
            write_symbol_artifacts(run_dir, r, self.settings)
            logger.info("{}: {} trades, net {} USDT, {} events", r.symbol, r.metrics["total_trades"],
                        r.metrics["total_pnl_usdt"], r.events)
        if portfolio_equity and len(symbols) > 1 and bt.save_equity_curve:
            write_equity(run_dir / "equity_portfolio.csv", portfolio_equity)
        summary = {
            "mode": MODE_TEXT[bt.strict_repainting_check],
            "account": account,
            "seed": seed,
            "symbols": {s: _headline(r) for s, r in results.items()},
            "aggregate": agg,
            "correlation": corr,
            "robustness": robustness,
        }
        write_json(run_dir / "summary.json", summary)
        if bt.generate_html_report:
            self.write_report(run_dir, symbols, summary, results, agg, corr, portfolio_equity)
        first = next(iter(results.values()))
        config = BacktestConfig.from_settings(self.settings, symbols=symbols, start_ms=int(first.start_ts * 1000),
                                              end_ms=int(first.end_ts * 1000), seed=seed)
        manifest = {
            "run_id": run_dir.name,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "settings_hash": run_settings_hash(config.settings_hash, self._calibration_json),
            "settings": self.settings.snapshot_dict(),
            "symbols": symbols,
            "window": {s: [_iso(r.start_ts), _iso(r.end_ts)] for s, r in results.items()},
            "data_hash": {s: r.data_hash for s, r in results.items()},
            "data_source": bt.data_source,
            "mode": summary["mode"],
            "account": account,
            "versions": versions(),
            "git_commit": git_commit(),
            "command": " ".join([Path(sys.executable).name, "-m", "replay", *sys.argv[1:]]),
            "project_root": str(PROJECT_ROOT),
            **self.provenance(),
        }
        if self.calibration is not None:  # ARCHITECTURE.md §7: the applied calibration travels with the run
            shutil.copyfile(self.calibration, run_dir / "calibration.json")
            manifest["calibration"] = {"file": str(self.calibration), "copied_to": "calibration.json",
                                       "generator_hash": calibration_hash(self._calibration_json)}
        write_json(run_dir / "manifest.json", manifest)
        if bt.auto_cleanup:
            rotate_runs(self.report_path, keep_last_n=bt.keep_last_n_runs, max_age_days=bt.cleanup_interval_days,
                        protect=run_dir)
        return RunOutcome(run_dir, results, summary)

    def provenance(self) -> dict[str, Any]:
        """Extra manifest entries naming the market data's origin (a recorded run adds its recording)."""
        return {}

    def report_facts(self) -> dict[str, str]:
        """Report facts that replace or add to the defaults (a recorded run names its recording)."""
        return {}

    def write_report(self, run_dir: Path, symbols: Sequence[str], summary: dict[str, Any],
                     results: dict[str, SymbolResult], agg: dict[str, Any], corr: dict[str, Any],
                     portfolio_equity: list[Any]) -> None:
        """report.html of a run folder; ``robustness`` re-renders it this way once robustness.json exists."""
        bt = self.settings.backtest
        account, seed, robustness = summary["account"], summary["seed"], summary.get("robustness", [])
        first = next(iter(results.values()))
        facts = {"mode": summary["mode"], "account": account, "seed": seed, "symbols": ", ".join(symbols),
                 "window (UTC)": f"{_iso(first.start_ts)} → {_iso(first.end_ts)}",
                 "data source": bt.data_source, "fees": f"maker {bt.maker_fee}, taker {bt.taker_fee}",
                 "latency": f"{bt.latency_model}: entry {bt.latency_entry_ms} ms, "
                            f"response {bt.latency_response_ms} ms",
                 "simplifications": "synthetic intrabar market from 1m OHLCV; positions open at the end are "
                                    "marked to market, not closed"} | self.report_facts()
        if self.calibration is not None:
            facts["generator calibration"] = f"{self.calibration} (copied as calibration.json)"
        write_report(run_dir / "report.html", title=f"Replay {run_dir.name}",
                     facts=facts, per_symbol={s: r.metrics for s, r in results.items()},
                     equity={s: r.equity for s, r in results.items()},
                     trades={s: r.trades for s, r in results.items()}, robustness=robustness,
                     portfolio=agg if len(symbols) > 1 else None, portfolio_equity=portfolio_equity,
                     correlation=corr if len(symbols) > 1 else None,
                     candles={s: r.extra.get("candles") for s, r in results.items()})

    def _robustness(self, run_dir: Path, symbols: list[str], days: float | None, start: str | None, end: str | None,
                    seed: int) -> list[dict[str, Any]]:
        """Live-cadence mode: the same run over other generator seeds and a pessimistic path (ARCHITECTURE.md §5)."""
        scratch = run_dir / "robustness"
        variants = [(seed + k, False) for k in range(1, self.settings.backtest.generator_seeds + 1)]
        variants.append((seed, True))
        groups = [self._jobs(symbols, scratch / f"{'pess' if p else 's' + str(v)}", days, start, end, v, False, p)
                  for v, p in variants]
        out = iter(run_jobs([j for g in groups for j in g], self.executor))  # every variant in one fan-out
        rows = []
        for (v, p), group in zip(variants, groups, strict=True):
            label = "pessimistic path" if p else f"seed {v}"
            results, agg, _, _ = self._collect([next(out) for _ in group])
            rows.extend(_robust_row(s, label, r.metrics) for s, r in results.items())
            if len(symbols) > 1:
                rows.append(_robust_row("portfolio", label, agg))
        shutil.rmtree(scratch, ignore_errors=True)
        return rows


def calibration_hash(calibration_json: str | None) -> str | None:
    """sha256 of the canonical generator coefficients a run replayed with (None: the uncalibrated generator)."""
    if calibration_json is None:
        return None
    return hashlib.sha256(calibration_json.encode("utf-8")).hexdigest()


def run_settings_hash(settings_hash: str, calibration_json: str | None) -> str:
    """The manifest's ``settings_hash``: the settings' own hash, or with ``--calibration`` the hash of the settings
    hash plus the generator coefficients, so two runs differing only in calibration never look identical. An
    uncalibrated run keeps exactly ``BacktestConfig.settings_hash``."""
    if calibration_json is None:
        return settings_hash
    return hashlib.sha256(f"{settings_hash}\n{calibration_json}".encode()).hexdigest()


def calibration_text(path: Path) -> str:
    """The generator coefficients of a calibration file as JSON text (jobs travel to worker processes), checked
    here so a bad file fails before any replay starts, naming the file."""
    import json

    from replay.synthetic import GeneratorParams

    if not path.is_file():
        raise FileNotFoundError(f"--calibration {path}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        gen = doc.get("generator") if isinstance(doc, dict) else None
        if not isinstance(gen, dict) or not gen:
            raise ValueError("no 'generator' block (write one with `python -m calibration fit --write`)")
        GeneratorParams.load_defaults().calibrate_from_ws_stats(gen)
    except ValueError as exc:  # JSONDecodeError is one
        raise ValueError(f"--calibration {path}: {exc}") from None
    return json.dumps(gen, sort_keys=True)


def _robust_row(name: str, variant: str, m: dict[str, Any]) -> dict[str, Any]:
    return {"symbol": name, "variant": variant, "trades": m["total_trades"], "net_pnl_usdt": m["total_pnl_usdt"],
            "pnl_bps": m["total_pnl_bps"], "win_rate": m["win_rate"], "max_dd_pct": m["max_drawdown_pct"]}


def _headline(r: SymbolResult) -> dict[str, Any]:
    keys = ("total_trades", "win_rate", "profit_factor", "total_pnl_usdt", "total_pnl_bps", "max_drawdown_pct",
            "sharpe", "ratios_note", "fees_paid_usdt", "open_positions_at_end")
    return {k: r.metrics.get(k) for k in keys} | {"events": r.events}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
