"""The bot's effective settings as a TOML file for the cycle's child processes.

Why a snapshot and not the bot's own ``--settings`` file: the bot may have been built from code, an env that changes
later, or a file edited since start; the children must replay, optimize and apply with exactly the settings the
running bot started from (before the overlay, which they read separately). Secrets are never written (the snapshot
dump excludes them; children that need keys read the environment as the bot does). ``None`` values are left out
(TOML has no null): such a field takes its default, which is ``None`` for every optional field. The webhook URL is left
out too (:data:`OMIT`): the children never notify, and a URL may hold a token that must not land in their files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from settings import Settings

OMIT = frozenset({"backtest.webhook_url"})


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} to TOML")


def _table(name: str, d: Mapping[str, Any], out: list[str]) -> None:
    subs = {k: v for k, v in d.items() if isinstance(v, Mapping)}
    out.append(f"[{name}]")
    out.extend(
        f"{k} = {_value(v)}" for k, v in d.items() if v is not None and k not in subs and f"{name}.{k}" not in OMIT
    )
    for k, v in subs.items():
        out.append("")
        _table(f"{name}.{k}", v, out)


def to_toml(settings: Settings) -> str:
    out = ["# settings snapshot of the running bot, written for the backtest cycle's child processes"]
    for section, fields in settings.snapshot_dict().items():
        if isinstance(fields, Mapping):
            out.append("")
            _table(section, fields, out)
        elif fields is not None:
            raise ValueError(f"unexpected top-level settings field {section!r}")
    return "\n".join(out) + "\n"
