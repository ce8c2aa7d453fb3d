"""A calibration file through the replay tools (issue 12 parts 4 and 6): the run manifest's ``settings_hash`` and
``runs compare`` tell calibrated runs apart, ``robustness`` re-applies a run's calibration, and ``optimize
--calibration`` hands it to every trial and records it in the study."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from replay.backtest import BacktestEngine, RunOutcome
from replay.runs import cmd_compare, load_run
from settings import Settings
from settings.snapshot import BacktestConfig

GEN = {"format": 1, "generator": {"fill_notional_coef": 50.0, "touch_fill_multiple": 3.0}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunOutcome, RunOutcome]:
    """Two real runs differing only in their calibration (the same settings, seed and window)."""
    tmp = tmp_path_factory.mktemp("calrep")
    cal = tmp / "gen.json"
    cal.write_text(json.dumps(GEN))
    settings = Settings(backtest={"report_path": str(tmp / "runs"), "generate_html_report": False})
    plain = BacktestEngine().configure_from_settings(settings).run_full_test(["BTCUSDT"], days=0.01, seed=3)
    calib = BacktestEngine(calibration=cal).configure_from_settings(settings).run_full_test(["BTCUSDT"], days=0.01,
                                                                                           seed=3)
    return cal, plain, calib


def test_runs_differing_only_in_calibration_do_not_look_identical(runs: tuple[Path, RunOutcome, RunOutcome]
                                                                  ) -> None:
    cal, plain, calib = runs
    a, b = load_run(plain.run_dir), load_run(calib.run_dir)
    assert a.manifest["settings"] == b.manifest["settings"]
    assert a.manifest["settings_hash"] != b.manifest["settings_hash"]
    # an uncalibrated run keeps the plain settings hash
    s = Settings.model_validate(a.manifest["settings"])
    assert a.manifest["settings_hash"] == BacktestConfig.from_settings(s, symbols=["BTCUSDT"], start_ms=0, end_ms=1,
                                                                       seed=3).settings_hash
    assert len(b.manifest["calibration"]["generator_hash"]) == 64
    text = cmd_compare(a, b)
    assert "settings and run facts: identical" not in text
    line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("calibration"))
    assert "none (project defaults)" in line and str(cal) in line
    assert next(ln for ln in text.splitlines() if ln.lstrip().startswith("settings_hash"))


def test_robustness_replays_the_runs_calibration(runs: tuple[Path, RunOutcome, RunOutcome]) -> None:
    """The base variant of a calibrated run reproduces that run (not the uncalibrated one): its calibration.json was
    re-applied."""
    from replay.robustness.run import Study, base_from_run

    _, plain, calib = runs
    base = base_from_run(load_run(calib.run_dir))
    assert base.calibration == calib.run_dir / "calibration.json"
    assert base_from_run(load_run(plain.run_dir)).calibration is None
    with ThreadPoolExecutor(1) as ex:
        study = Study(base, ex)
        v = study.variant("seed", "base")
        study.execute([v], "base")
    again = v.result[0]["BTCUSDT"]
    assert again.events == calib.results["BTCUSDT"].events != plain.results["BTCUSDT"].events
    assert again.metrics["total_trades"] == calib.results["BTCUSDT"].metrics["total_trades"]
    (calib.run_dir / "calibration.json").rename(calib.run_dir / "gone.json")
    try:
        with pytest.raises(FileNotFoundError, match=r"calibration\.json is missing"):
            base_from_run(load_run(calib.run_dir))
    finally:
        (calib.run_dir / "gone.json").rename(calib.run_dir / "calibration.json")


def test_optimize_hands_the_calibration_to_every_trial_and_records_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from replay.cli import main
    from replay.optimize import study as st

    cal = tmp_path / "gen.json"
    cal.write_text(json.dumps(GEN))
    settings_file = tmp_path / "s.toml"
    settings_file.write_text("[backtest.target_metrics]\nmin_trades = 0\n")  # every trial feasible: a preset
    base = ["optimize", "--settings", str(settings_file), "--symbol", "BTCUSDT", "--start", "2025-06-20T00:00",
            "--end", "2025-06-20T01:00", "--trials", "2", "--jobs", "1", "--mode", "random", "--params",
            "risk.min_sl_pct,risk.min_tp_pct", "--report-path", str(tmp_path / "bt"), "--overlay",
            str(tmp_path / "ov.toml"), "--no-progress", "--seed", "5"]
    seen: list[str | None] = []
    real_task = st._task

    def spy(spec: st.StudySpec, trial: object) -> object:  # records what each trial's worker gets, changes nothing
        t = real_task(spec, trial)  # type: ignore[arg-type]
        seen.append(getattr(t, "calibration_json", "refused"))
        return t

    monkeypatch.setattr(st, "_task", spy)
    assert main([*base, "--study", "c", "--calibration", str(cal)]) == 0, capsys.readouterr()
    want = json.dumps(GEN["generator"], sort_keys=True)
    assert seen == [want, want]
    folder = tmp_path / "bt" / "optimization" / "c"
    result = json.loads((folder / "result.json").read_text())
    assert result["calibration"]["file"] == str(cal) and json.loads((folder / "calibration.json").read_text()) == GEN
    preset = Path(result["targets"]["BTCUSDT"]["preset"]).read_text()
    assert f"generator calibration: {cal}" in preset and f"--calibration {folder / 'calibration.json'}" in preset
    # resuming the same study on another generator would mix two in one search: refused, one line
    assert main([*base, "--study", "c"]) == 2
    assert "was run with --calibration" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"generator": {"max_leverage": 5}}))
    assert main([*base, "--study", "d", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "max_leverage" in err and not (tmp_path / "bt" / "optimization" / "d").exists()
