"""Settings as TOML text: flatten nested tables to dotted paths and write them back.

``tomllib`` reads TOML but the standard library cannot write it; presets, the parameter overlay and the in-bot
cycle's settings snapshot all write the same small subset (tables of scalars and lists), so it lives here once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["flatten", "to_toml", "toml_value"]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → ``{"risk.min_sl_pct": ...}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def toml_value(v: Any) -> str:
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
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} to TOML")


def to_toml(flat: Mapping[str, Any], header: str = "") -> str:
    """Dotted paths → TOML tables (``risk.min_sl_pct`` → ``[risk] min_sl_pct = ...``); None values are skipped
    (TOML has no null: such a field takes its default, ``None`` for every optional field)."""
    tables: dict[str, list[str]] = {}
    for path, value in sorted(flat.items()):
        if value is None:
            continue
        parent, _, leaf = path.rpartition(".")
        tables.setdefault(parent, []).append(f"{leaf} = {toml_value(value)}")
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    for parent, lines in tables.items():
        if out:
            out.append("")
        if parent:
            out.append(f"[{parent}]")
        out.extend(lines)
    return "\n".join(out) + "\n"
