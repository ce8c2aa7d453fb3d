"""Where settings come from: the strict TOML source, the ``.env`` filter and the environment-name check.

Precedence is assembled in :meth:`settings.model.Settings.settings_customise_sources`; this module holds the
pieces. API secrets are refused in TOML files; only names (never values) of environment variables are reported.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

ENV_PREFIX = "NAPORRR_"
SECRET_FIELDS: frozenset[str] = frozenset({"api_key", "api_secret"})
# NAPORRR_* variables read outside Settings (test tooling). Any other NAPORRR_* name must be a setting.
OTHER_ENV_NAMES: frozenset[str] = frozenset({"NAPORRR_UPDATE_GOLDEN"})
_SECRET_TOML_KEYS: frozenset[str] = SECRET_FIELDS | {"secrets"}


# --------------------------------------------------------------------------------------------------- TOML source
TOML_PATH: ContextVar[Path | None] = ContextVar("naporrr_settings_toml_path", default=None)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a settings TOML file with errors that name the file, and refuse secrets in it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"settings TOML file not found: {p}")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"malformed settings TOML file {p}: {exc}") from exc
    leaked = sorted(k for k in data if k.lower() in _SECRET_TOML_KEYS)
    if leaked:
        raise ValueError(
            f"settings TOML file {p} contains {leaked}: API secrets must come from the environment "
            f"({ENV_PREFIX}API_KEY / {ENV_PREFIX}API_SECRET) or the git-ignored .env file, never from a config file"
        )
    return data


class StrictTomlSource(TomlConfigSettingsSource):
    """TOML source that fails loudly on a missing or malformed file and on secrets (the stock one skips/raises raw)."""

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path | None) -> None:
        if toml_file is not None and not Path(toml_file).is_file():
            raise FileNotFoundError(f"settings TOML file not found: {toml_file}")
        super().__init__(settings_cls, toml_file=toml_file)

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        return read_toml(file_path)


@contextmanager
def toml_path(path: Path | None) -> Iterator[None]:
    """Scope the TOML path to one construction; a ContextVar keeps concurrent loads from seeing each other's file."""
    token = TOML_PATH.set(path)
    try:
        yield
    finally:
        TOML_PATH.reset(token)


# -------------------------------------------------------------------------------------------- environment names
class UnknownEnvVarError(ValueError):
    """A ``NAPORRR_*`` environment variable that names no setting (pydantic-settings would silently ignore it)."""


def check_env_names(environ: Mapping[str, str], settings_cls: type[BaseModel]) -> None:
    """Raise :class:`UnknownEnvVarError` naming every ``NAPORRR_*`` variable that is no setting of ``settings_cls``.

    Known: ``NAPORRR_<SECTION>`` and ``NAPORRR_<SECTION>__<FIELD...>`` for each section (a typo inside a section is
    pydantic's to report, with the field's name), the top-level fields (``NAPORRR_API_KEY``, ``NAPORRR_API_SECRET``)
    and :data:`OTHER_ENV_NAMES`. Only names are read and reported, never values (secrets live in these variables).
    """
    fields = settings_cls.model_fields
    sections = [n for n, f in fields.items() if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]
    plain = [n for n in fields if n not in sections]
    unknown: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV_NAMES:
            continue
        top, sep, rest = upper[len(ENV_PREFIX) :].lower().partition("__")
        if (top in sections and (rest or not sep)) or (top in plain and not sep):
            continue
        unknown.append((name, _guess_env_name(top, sep, rest, sections, plain)))
    if not unknown:
        return
    if len(unknown) == 1:
        name, guess = unknown[0]
        what = f"unknown environment variable {name}{f' (did you mean {guess}?)' if guess else ''}"
    else:
        what = "unknown environment variables " + ", ".join(
            f"{name}{f' (did you mean {guess}?)' if guess else ''}" for name, guess in unknown
        )
    raise UnknownEnvVarError(
        f"{what}: the known ones are {ENV_PREFIX}<SECTION>__<FIELD> with SECTION one of "
        f"{', '.join(s.upper() for s in sections)}, and {', '.join(ENV_PREFIX + p.upper() for p in plain)}"
    )


def _guess_env_name(top: str, sep: str, rest: str, sections: list[str], plain: list[str]) -> str | None:
    """The known variable a mistyped name most likely meant, or None."""
    for sec in sorted(sections, key=len, reverse=True):  # NAPORRR_RISK_MIN_SL_PCT: one underscore short
        if not sep and top.startswith(sec + "_"):
            return f"{ENV_PREFIX}{sec.upper()}__{top[len(sec) + 1 :].upper()}"
    match = difflib.get_close_matches(top, sections + plain, n=1, cutoff=0.75)
    if not match:
        return None
    if match[0] in sections:
        return f"{ENV_PREFIX}{match[0].upper()}{'__' + rest.upper() if rest else ''}"
    return f"{ENV_PREFIX}{match[0].upper()}"


class OwnDotEnvLines(PydanticBaseSettingsSource):
    """The ``.env`` source minus lines meant for other readers of the same file (``BYBIT_API_KEY`` /
    ``BYBIT_API_SECRET`` for the trading adapter's ``load_credentials``): with ``extra="forbid"`` pydantic-settings
    would reject every non-``NAPORRR_`` line. A mistyped ``NAPORRR_*`` line is still an error."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def _set_current_state(self, state: dict[str, Any]) -> None:
        super()._set_current_state(state)
        self.inner._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        super()._set_settings_sources_data(states)
        self.inner._set_settings_sources_data(states)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        own = set(self.settings_cls.model_fields)
        return {k: v for k, v in self.inner().items() if k in own or k.upper().startswith(ENV_PREFIX)}
