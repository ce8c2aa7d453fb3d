"""One cycle run: ``python -m replay fetch`` → ``optimize`` → ``apply``, each a child process at low priority.

With ``calibration.calibration_ws_enabled`` a calibration session comes first (``python -m calibration record`` →
``stats`` → ``fit``, :mod:`bot.cycle.calibrate`); a calibration step that fails is logged and the backtest runs on
the uncalibrated generator.

Why child processes: the optimizer replays days of market per trial (CPU-heavy, seconds to hours); in the bot's
process it would stall the trading loop, and ``bot`` must never import the harness anyway. Each step runs as
``sys.executable -m replay ...`` under ``os.nice(backtest.cycle_nice)`` in its own process group (so a stop can end
the optimizer's worker pool with it), with stdout/stderr in the run folder. A step that exits non-zero ends the run
as failed, with its exit code and the tail of its stderr.

Run folder ``{report_path}/cycle/{run_id}/``: ``data/`` (the candle snapshot the study replays), ``{step}.out`` /
``{step}.err``, ``calibration.json`` / ``generator.json`` (a calibration session), ``settings.toml`` (the bot's
settings, :mod:`bot.cycle.snapshot`; every step gets it as ``--settings``), ``cycle.json`` (what happened).
The study is ``{report_path}/optimization/cycle-{run_id}/``; the kline cache is
``{report_path}/cycle/kline_cache/`` (shared by all runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from bot.cycle import calibrate
from bot.cycle.snapshot import to_toml
from settings import Settings

STUDY_PREFIX = "cycle-"
KLINE_CACHE = "kline_cache"  # under {report_path}/cycle: shared by all runs, pruned by rotation
SETTINGS_SNAPSHOT = "settings.toml"
WEBHOOK_ENV = "NAPORRR_BACKTEST__WEBHOOK_URL"
_PROPOSAL = re.compile(r"^proposal (\S+): (\w+)", re.M)
STDERR_TAIL_LINES = 12


@dataclass(frozen=True)
class CycleConfig:
    """Everything a run needs besides the settings: where things are and what to pass on."""

    symbols: tuple[str, ...]
    overlay: Path
    python: str = sys.executable
    ws_url: str | None = None  # the bot's public WS endpoint override: a calibration session records from it too

    def root(self, settings: Settings) -> Path:
        return Path(settings.backtest.report_path).resolve()


@dataclass
class StepResult:
    name: str
    argv: list[str]
    returncode: int
    seconds: float
    stderr_tail: str = ""


@dataclass
class CycleResult:
    run_id: str
    status: str = "running"  # completed | failed | cancelled
    study: str = ""
    steps: list[StepResult] = field(default_factory=list)
    result: dict[str, Any] | None = None  # the study's result.json
    proposal: dict[str, Any] | None = None  # the apply step's proposal JSON
    error: str | None = None
    calibration: calibrate.Calibration | None = None  # None: calibration_ws_enabled is off
    started_at: float | None = None  # bot clock
    ended_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "study": self.study,
            "error": self.error,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "steps": [s.__dict__ for s in self.steps],
            "proposal": self.proposal,
            "calibration": self.calibration.to_json() if self.calibration else None,
            "targets": summarize_targets(self.result),
        }


def summarize_targets(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per target: improvement, best/current out-of-sample score, the best parameters."""
    if not result:
        return {}
    out = {}
    for name, t in result.get("targets", {}).items():
        best = t.get("best") or {}
        out[name] = {
            "improvement": t.get("improvement"),
            "best_oos": (best.get("oos") or {}).get("score"),
            "current_oos": t["current"]["oos"]["score"],
            "params": best.get("params"),
            "preset": t.get("preset"),
        }
    return out


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The bot's environment for a child, without the webhook URL (children never notify; it may hold a token)."""
    return {**{k: v for k, v in os.environ.items() if k.upper() != WEBHOOK_ENV}, **extra}


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class CycleRunner:
    """Builds the three commands from the settings and runs them in order (one run at a time per instance)."""

    def __init__(self, settings: Settings, config: CycleConfig) -> None:
        self.settings = settings
        self.config = config
        self.root = config.root(settings)
        self.proc: asyncio.subprocess.Process | None = None

    def run_dir(self, run_id: str) -> Path:
        return self.root / "cycle" / run_id

    def commands(self, run_id: str, calibration: str | None = None) -> list[tuple[str, list[str], dict[str, str]]]:
        """``(step, argv, extra env)`` of a run; ``apply`` only with ``auto_apply_params`` (else presets only);
        ``calibration``: the generator file ``optimize`` replays with (``--calibration``)."""
        bt, cfg = self.settings.backtest, self.config
        py, d = [cfg.python, "-m", "replay"], self.run_dir(run_id)
        common = ["--settings", str(d / SETTINGS_SNAPSHOT)]  # the bot's own settings (env inherited on top)
        syms = ",".join(cfg.symbols)
        days = repr(float(bt.data_lookback_days))
        fetch = [
            *py,
            "fetch",
            "--symbols",
            syms,
            "--days",
            days,
            "--out",
            str(d / "data"),
            "--cache-dir",
            str(self.root / "cycle" / KLINE_CACHE),
            *common,
        ]
        study = STUDY_PREFIX + run_id
        optimize = [
            *py,
            "optimize",
            "--symbols",
            syms,
            "--days",
            days,
            "--study",
            study,
            "--data-dir",
            str(d / "data"),
            "--overlay",
            str(cfg.overlay),
            "--report-path",
            str(self.root),
            "--no-progress",
            "--jobs",
            str(bt.cycle_jobs),
            *(["--calibration", calibration] if calibration else []),
            *common,
        ]
        # the snapshot is bundled-format CSV, and the cycle decides on apply itself (its proposal is notified)
        opt_env = {"NAPORRR_BACKTEST__DATA_SOURCE": "bundled", "NAPORRR_BACKTEST__AUTO_APPLY_PARAMS": "false"}
        steps = [("fetch", fetch, {}), ("optimize", optimize, opt_env)]
        if bt.auto_apply_params:
            steps.append(
                (
                    "apply",
                    [*py, "apply", study, "--overlay", str(cfg.overlay), "--report-path", str(self.root), *common],
                    {},
                )
            )
        return steps

    async def run(self, run_id: str, now: Callable[[], float]) -> CycleResult:
        """Run the steps; ``now`` is the bot clock's ``now`` (step durations). Never raises for a failed step."""
        res = CycleResult(run_id, study=STUDY_PREFIX + run_id, started_at=now())
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        try:
            (d / SETTINGS_SNAPSHOT).write_text(to_toml(self.settings), encoding="utf-8")
            if self.settings.calibration.calibration_ws_enabled:
                res.calibration = await self._calibrate(run_id, res, now)
            generator = res.calibration.file if res.calibration and res.calibration.status == "applied" else None
            for name, argv, env in self.commands(run_id, generator):
                if name == "apply" and not self._single_target(res):
                    logger.info(
                        "cycle {}: {} targets (per-symbol study): presets written, nothing applied (the "
                        "overlay is one parameter set; apply one with python -m replay apply {} --target SYM)",
                        run_id,
                        len((res.result or {}).get("targets", {})),
                        res.study,
                    )
                    continue
                t0 = now()
                rc = await self._step(name, argv, env, d)
                step = StepResult(name, argv, rc, round(now() - t0, 3))
                res.steps.append(step)
                if rc != 0:
                    step.stderr_tail = tail(d / f"{name}.err")
                    res.status, res.error = "failed", f"{name} exited with code {rc}"
                    return res
                if name == "optimize":
                    res.result = json.loads((self.root / "optimization" / res.study / "result.json").read_text())
                if name == "apply":
                    res.proposal = self._proposal(d / "apply.out")
            res.status = "completed"
            return res
        except asyncio.CancelledError:
            res.status, res.error = "cancelled", "the bot stopped during the cycle"
            raise
        except Exception as e:  # unreadable results and the like: a failed cycle, never a failed bot
            res.status, res.error = "failed", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
            return res
        finally:
            res.ended_at = now()
            (d / "cycle.json").write_text(json.dumps(res.to_json(), indent=2, default=str) + "\n", encoding="utf-8")

    async def _calibrate(self, run_id: str, res: CycleResult, now: Callable[[], float]) -> calibrate.Calibration:
        """record → stats → fit; the first step that exits non-zero ends the session (never the run)."""
        d = self.run_dir(run_id)
        steps = calibrate.commands(self.settings, d, self.config.python, d / SETTINGS_SNAPSHOT, self.config.ws_url)
        cal = self.settings.calibration
        logger.info("cycle {}: calibration session: {:g} min of {} into {}", run_id, cal.calibration_ws_duration_min,
                    ",".join(cal.calibration_ws_symbols), calibrate.calibration_root(self.settings))
        for name, argv, env in steps:
            t0 = now()
            rc = await self._step(name, argv, env, d)
            step = StepResult(name, argv, rc, round(now() - t0, 3))
            res.steps.append(step)
            if rc != 0:
                step.stderr_tail = tail(d / f"{name}.err")
                out = calibrate.Calibration("failed", error=f"calibration {name} exited with code {rc}", step=name)
                logger.error("cycle {}: {}; stderr tail:\n{}", run_id, out.text, step.stderr_tail)
                return out
        out = calibrate.outcome(self.settings, d)
        (logger.error if out.status == "failed" else logger.info)("cycle {}: {}", run_id, out.text)
        return out

    @staticmethod
    def _single_target(res: CycleResult) -> bool:
        return len((res.result or {}).get("targets", {})) == 1

    def _proposal(self, out: Path) -> dict[str, Any] | None:
        m = _PROPOSAL.search(out.read_text(encoding="utf-8"))
        if m is None:
            return None
        path = self.root / "optimization" / "proposals" / f"{m.group(1)}.json"
        return json.loads(path.read_text()) if path.exists() else {"id": m.group(1), "status": m.group(2)}

    async def _step(self, name: str, argv: Sequence[str], env: Mapping[str, str], d: Path) -> int:
        nice = self.settings.backtest.cycle_nice
        nice_bin = shutil.which("nice")
        # coreutils' nice execs the child (same pid); preexec_fn (Python code between fork and exec, unsafe with
        # threads) only where there is no nice binary
        prefix = [nice_bin, "-n", str(nice)] if nice and nice_bin else []
        preexec = (lambda: os.nice(nice)) if nice and not nice_bin else None
        with (d / f"{name}.out").open("wb") as out, (d / f"{name}.err").open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *prefix,
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=child_env(env),
                start_new_session=True,
                preexec_fn=preexec,
            )
            try:
                return await self.proc.wait()
            except asyncio.CancelledError:
                await self.kill()
                raise
            finally:
                self.proc = None

    async def kill(self) -> None:
        """End the running step and its process group (the optimizer's workers): SIGTERM, then SIGKILL after 5 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), wait)
                return
