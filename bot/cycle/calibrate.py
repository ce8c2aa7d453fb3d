"""The cycle's optional calibration session (``calibration.calibration_ws_enabled``): record → stats → fit.

Before its backtest, a run records ``calibration_ws_duration_min`` minutes of the public streams of
``calibration_ws_symbols`` (``python -m calibration record``; the same child-process handling as the replay steps:
low priority, own process group, stdout/stderr in the run folder), pools every session and ingested aggregate under
``calibration.calibration_path`` into the run folder's ``calibration.json`` (``stats``), and checks its generator
coefficients (``fit``). Only with ``calibration.auto_correct_param`` does ``fit`` write ``generator.json`` into the
run folder, and only then does the run's ``optimize`` get ``--calibration`` with it, so every trial's synthetic
market uses the calibrated generator and the study records which file it was.

A calibration step that exits non-zero never fails the run: the steps after it are skipped, and the backtest runs on
the uncalibrated generator (:class:`Calibration` says why; the service logs and notifies it). ``bot`` never imports
``calibration``: these are argv lists for ``sys.executable -m calibration``.

Simplified: ``fit`` gets no ``--judge`` recording (a session of a few minutes has too few complete minutes for the
fidelity table to mean much), so the run checks and writes the coefficients but prints no before/after table; run
``python -m calibration fit --judge FILE`` by hand for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import Settings

STEPS = ("record", "stats", "fit")
CALIBRATION_FILE = "calibration.json"  # stats' output in the run folder
GENERATOR_FILE = "generator.json"  # fit's output in the run folder (only with auto_correct_param)


@dataclass
class Calibration:
    """What the calibration part of a run did, for cycle.json, the log and the notification.

    ``status``: ``applied`` (optimize got ``file``), ``not_applied`` (the steps ran, ``auto_correct_param`` is off:
    coefficients checked, nothing written), ``failed`` (a step exited non-zero: ``error``; uncalibrated backtest).
    """

    status: str
    file: str | None = None
    error: str | None = None
    step: str | None = None  # the step that failed

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def text(self) -> str:
        """One line for the log and the notification."""
        if self.status == "applied":
            return f"calibration session done: the backtest uses the calibrated generator {self.file}"
        if self.status == "not_applied":
            return ("calibration session done, coefficients checked; calibration.auto_correct_param is off: the "
                    "backtest runs on the uncalibrated generator")
        return f"calibration failed ({self.error}): the backtest runs on the uncalibrated generator"


def calibration_root(settings: Settings) -> Path:
    """The calibration folder (sessions, ingested aggregates), absolute so every child and log line names the same."""
    return Path(settings.calibration.calibration_path).resolve()


def commands(settings: Settings, run_dir: Path, python: str, settings_file: Path, ws_url: str | None = None
             ) -> list[tuple[str, list[str], dict[str, str]]]:
    """``(step, argv, extra env)`` of the calibration session; ``ws_url`` is the bot's public WS endpoint override
    (else the children read ``websocket.ws_public_linear`` from the settings, as the bot does)."""
    cal = settings.calibration
    py = [python, "-m", "calibration"]
    common = ["--settings", str(settings_file), "--root", str(calibration_root(settings))]
    record = [*py, "record", "--symbols", ",".join(cal.calibration_ws_symbols), "--minutes",
              repr(float(cal.calibration_ws_duration_min)), "--no-progress", *common]
    if ws_url:
        record += ["--url", ws_url]
    stats = [*py, "stats", "--out", str(run_dir / CALIBRATION_FILE), *common]
    fit = [*py, "fit", "--calibration", str(run_dir / CALIBRATION_FILE), *common]
    if cal.auto_correct_param:
        fit += ["--write", str(run_dir / GENERATOR_FILE)]
    return [("record", record, {}), ("stats", stats, {}), ("fit", fit, {})]


def outcome(settings: Settings, run_dir: Path) -> Calibration:
    """After every step exited 0: which generator the backtest uses."""
    if not settings.calibration.auto_correct_param:
        return Calibration("not_applied")
    gen = run_dir / GENERATOR_FILE
    if not gen.is_file():  # fit said it wrote it; refuse to pass a missing file on to optimize
        return Calibration("failed", error=f"fit exited 0 but wrote no {gen.name}", step="fit")
    return Calibration("applied", file=str(gen))
