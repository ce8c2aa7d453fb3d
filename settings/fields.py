"""Field helpers that tag every setting as OPTIMIZABLE or FIXED (STRATEGY.md §2).

The tag lives in the field's ``json_schema_extra`` so one declaration carries the default, the validation
constraints and the optimizer search range; ``settings.search.search_space`` reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo

OPTIMIZABLE = "OPTIMIZABLE"
FIXED = "FIXED"

Tunable = Literal["OPTIMIZABLE", "FIXED"]
ParamKind = Literal["float", "int", "bool", "categorical"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One optimizer dimension; ``choices`` is set for bool/categorical kinds, ``low``/``high`` for numeric ones."""

    path: str
    kind: ParamKind
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] | None = None
    step: float | int | None = None
    log: bool = False


def _freeze_choice(value: Any) -> Any:
    """Lists become tuples so choices are hashable and cannot be mutated by a sampler."""
    if isinstance(value, list | tuple):
        return tuple(_freeze_choice(v) for v in value)
    return value


def optimizable(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[Any] | None = None,
    step: float | None = None,
    log: bool = False,
    **kw: Any,
) -> Any:
    """Declare a field the optimizer may tune; the search range is checked against the default right here.

    Checking at declaration time means a typo in a range fails on import instead of producing a silently
    useless search space. Bool fields get ``choices=(False, True)`` when none are given.
    """
    if choices is None and isinstance(default, bool):
        choices = (False, True)
    if choices is not None:
        if low is not None or high is not None:
            raise ValueError("optimizable(): give either low/high or choices, not both")
        frozen_choices = [_freeze_choice(c) for c in choices]
        if _freeze_choice(default) not in frozen_choices:
            raise ValueError(f"optimizable(): default {default!r} is not among choices {list(choices)!r}")
        choices_out: list[Any] | None = [list(c) if isinstance(c, tuple | list) else c for c in choices]
    else:
        choices_out = None
        if low is None or high is None:
            raise ValueError(f"optimizable(): default {default!r} needs low/high or choices")
        if not low <= default <= high:
            raise ValueError(f"optimizable(): default {default!r} outside [{low}, {high}]")
        if log and low <= 0:
            raise ValueError("optimizable(): log scale needs low > 0")
    extra = {"tunable": OPTIMIZABLE, "low": low, "high": high, "choices": choices_out, "step": step, "log": log}
    return _field(default, extra, kw)


def fixed(default: Any, **kw: Any) -> Any:
    """Declare a field that is never tuned (sizes, leverage, exchange facts, endpoints, infrastructure)."""
    return _field(default, {"tunable": FIXED}, kw)


def _field(default: Any, extra: dict[str, Any], kw: dict[str, Any]) -> Any:
    """Mutable defaults go through a factory so no two instances ever share a list."""
    if isinstance(default, list | dict):
        snapshot = default.copy()
        return Field(default_factory=lambda: snapshot.copy(), json_schema_extra=extra, **kw)
    return Field(default=default, json_schema_extra=extra, **kw)


def tunable_of(info: FieldInfo) -> Tunable | None:
    """The OPTIMIZABLE/FIXED tag of a field, or None for untagged fields (sections, secrets)."""
    extra = info.json_schema_extra
    if isinstance(extra, dict):
        tag = extra.get("tunable")
        if tag in (OPTIMIZABLE, FIXED):
            return tag  # type: ignore[return-value]
    return None


def extra_of(info: FieldInfo) -> dict[str, Any]:
    """The raw metadata dict of a tagged field (empty for untagged fields)."""
    extra = info.json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}
