"""Unknown ``NAPORRR_*`` environment variables are errors naming them (issue 13, defect 3).

pydantic-settings reads only the variables it knows, so a typo in a section name (``NAPORRR_RISKK__MIN_SL_PCT``) used to
be dropped and the run went ahead on defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer NAPORRR_* variables or .env file may leak into a test."""
    for key in list(os.environ):
        if key.upper().startswith("NAPORRR_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("NAPORRR_")}
    return env | extra


def test_section_typo_in_cli_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = _clean_env(NAPORRR_RISKK__MIN_SL_PCT="0.003")
    out = subprocess.run([sys.executable, "-m", "replay", "--symbol", "BTCUSDT", "--days", "1", "--no-progress",
                          "--report-path", str(tmp_path / "bt")], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120, check=False)
    assert out.returncode == 2, out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), out.stderr
    assert "NAPORRR_RISKK__MIN_SL_PCT" in err[0]
    assert "did you mean NAPORRR_RISK__MIN_SL_PCT?" in err[0]
    assert "RISK" in err[0] and "NAPORRR_API_KEY" in err[0], "the message says which names are known"
    assert not (tmp_path / "bt").exists(), "nothing may run or be written"


@pytest.mark.parametrize(("name", "guess"), [
    ("NAPORRR_RISKK__MIN_SL_PCT", "NAPORRR_RISK__MIN_SL_PCT"),
    ("NAPORRR_RISK_MIN_SL_PCT", "NAPORRR_RISK__MIN_SL_PCT"),   # one underscore short
    ("naporrr_backtst__seed", "NAPORRR_BACKTEST__SEED"),        # the prefix is case-insensitive, like the settings
    ("NAPORRR_API_KEY__X", "NAPORRR_API_KEY"),                 # a secret has no fields
    ("NAPORRR_RISK__", "NAPORRR_RISK"),
    ("NAPORRR_SEED", None),
])
def test_unknown_names_raise_naming_them(name: str, guess: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "0.003")
    with pytest.raises(ValueError) as exc:
        Settings(_env_file=None)
    msg = str(exc.value)
    assert name in msg
    assert (f"did you mean {guess}?" in msg) if guess else ("did you mean" not in msg)


def test_every_unknown_name_is_listed_and_no_value_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_API_SECRETT", "secret-DDDD4444")
    monkeypatch.setenv("NAPORRR_TRADNG__LEVERAGE", "7")
    with pytest.raises(ValueError) as exc:
        Settings(_env_file=None)
    msg = str(exc.value)
    assert "NAPORRR_API_SECRETT (did you mean NAPORRR_API_SECRET?)" in msg
    assert "NAPORRR_TRADNG__LEVERAGE (did you mean NAPORRR_TRADING__LEVERAGE?)" in msg
    assert "secret-DDDD4444" not in msg and "=7" not in msg


def test_known_names_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_RISK__MIN_SL_PCT", "0.003")
    monkeypatch.setenv("NAPORRR_BACKTEST__TARGET_METRICS__MIN_TRADES", "25")
    monkeypatch.setenv("NAPORRR_API_KEY", "key-EEEE5555")
    monkeypatch.setenv("NAPORRR_API_SECRET", "secret-FFFF6666")
    monkeypatch.setenv("NAPORRR_UPDATE_GOLDEN", "0")  # test tooling, not a setting
    monkeypatch.setenv("NAPORRRX", "1")  # not our prefix
    s = Settings(_env_file=None)
    assert s.risk.min_sl_pct == 0.003 and s.backtest.target_metrics.min_trades == 25
    assert s.api_key is not None and s.api_key.get_secret_value() == "key-EEEE5555"


def test_a_field_typo_still_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPORRR_RISK__MIN_SL_PCTT", "0.003")
    with pytest.raises(ValueError, match="min_sl_pctt"):
        Settings(_env_file=None)


def test_dotenv_lines_for_the_trading_adapter_are_left_to_it(tmp_path: Path) -> None:
    """``BYBIT_API_KEY``/``BYBIT_API_SECRET`` in .env belong to ``load_credentials``; a NAPORRR_ typo still fails."""
    (tmp_path / ".env").write_text("BYBIT_API_KEY=k\nBYBIT_API_SECRET=s\nNAPORRR_RISK__MIN_SL_PCT=0.004\n")
    assert Settings().risk.min_sl_pct == 0.004
    (tmp_path / ".env").write_text("BYBIT_API_KEY=k\nNAPORRR_RISKK__MIN_SL_PCT=0.004\n")
    with pytest.raises(ValueError, match="naporrr_riskk__min_sl_pct"):
        Settings()
