"""Optimizer-facing view of Settings: the search space and validated, FIXED-safe overrides.

The optimizer only ever sees ``search_space()`` and only ever writes through ``apply_optimizer_params``; both refuse
FIXED fields (position size, leverage, max open positions, base order sizes, infrastructure), so a tuned run can
never change risk sizing by accident.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from settings.fields import FIXED, OPTIMIZABLE, ParamKind, ParamSpec, extra_of, tunable_of
from settings.model import SECRET_FIELDS, Settings


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class behind an annotation, if it is one (nested sections like target_metrics)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def iter_fields(model_cls: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every leaf field of ``model_cls`` as (dotted path, FieldInfo), descending into nested models."""
    for name, info in model_cls.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_type(info.annotation)
        if sub is not None:
            yield from iter_fields(sub, f"{path}.")
        else:
            yield path, info


def _kind(info: FieldInfo, has_choices: bool) -> ParamKind:
    """Map a field's annotation to an optimizer dimension kind."""
    ann = info.annotation
    if ann is bool:
        return "bool"
    if has_choices:
        return "categorical"
    if ann is int:
        return "int"
    if ann is float:
        return "float"
    origin = typing.get_origin(ann)
    if origin in (Literal, list, tuple, types.UnionType, typing.Union) or ann is str:
        return "categorical"
    raise TypeError(f"no optimizer kind for annotation {ann!r}")


def _spec(path: str, info: FieldInfo) -> ParamSpec:
    """Build a ParamSpec from the optimizable() metadata; fails if a field has no usable range."""
    extra = extra_of(info)
    raw_choices = extra.get("choices")
    choices = tuple(tuple(c) if isinstance(c, list) else c for c in raw_choices) if raw_choices is not None else None
    kind = _kind(info, choices is not None)
    if kind in ("bool", "categorical") and not choices:
        raise ValueError(f"{path}: OPTIMIZABLE {kind} field needs choices")
    if kind in ("int", "float") and (extra.get("low") is None or extra.get("high") is None):
        raise ValueError(f"{path}: OPTIMIZABLE numeric field needs low/high")
    low, high, step = extra.get("low"), extra.get("high"), extra.get("step")
    if kind == "int":
        low, high = int(low), int(high)  # type: ignore[arg-type]
        step = int(step) if step is not None else 1
    return ParamSpec(
        path=path, kind=kind, low=low, high=high, choices=choices, step=step, log=bool(extra.get("log", False))
    )


def search_space(settings_cls: type[Settings] = Settings) -> dict[str, ParamSpec]:
    """All OPTIMIZABLE fields keyed by dotted path ("risk.min_sl_pct"); FIXED and untagged fields never appear."""
    return {path: _spec(path, info) for path, info in iter_fields(settings_cls) if tunable_of(info) == OPTIMIZABLE}


def fixed_fields(settings_cls: type[Settings] = Settings) -> frozenset[str]:
    """Dotted paths of every FIXED field (for reports and assertions)."""
    return frozenset(path for path, info in iter_fields(settings_cls) if tunable_of(info) == FIXED)


def _field_at(path: str, settings_cls: type[Settings]) -> FieldInfo:
    """Resolve a dotted path to its FieldInfo or raise a ValueError naming it."""
    parts = path.split(".")
    model: type[BaseModel] | None = settings_cls
    info: FieldInfo | None = None
    for i, part in enumerate(parts):
        if model is None or part not in model.model_fields:
            raise ValueError(f"unknown settings field {path!r}")
        info = model.model_fields[part]
        model = _model_type(info.annotation)
        if i == 0 and len(parts) == 1 and model is not None:
            raise ValueError(f"{path!r} is a whole section; override individual fields like '{path}.<field>'")
    assert info is not None
    return info


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Assign ``value`` at a dotted path inside a nested dict dump."""
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = value


def with_overrides(settings: Settings, params: Mapping[str, Any], *, optimizer: bool = False) -> Settings:
    """Return a new, fully validated Settings with dotted-path fields replaced; ``settings`` is untouched.

    With ``optimizer=True`` only OPTIMIZABLE fields are accepted, and any FIXED field raises a ValueError naming it.
    Secrets can never be overridden here (they come from the environment only).
    """
    settings_cls = type(settings)
    for path in params:
        if path in SECRET_FIELDS:
            raise ValueError(f"{path!r} is a secret and must come from the environment, not an override")
        info = _field_at(path, settings_cls)
        if optimizer and tunable_of(info) != OPTIMIZABLE:
            tag = tunable_of(info) or "untagged"
            raise ValueError(f"{path!r} is {tag} and must never be set by the optimizer")
    data = settings.model_dump()  # secrets are excluded from dumps; carried over explicitly below
    for path, value in params.items():
        _set_path(data, path, value)
    for name in SECRET_FIELDS:
        data[name] = getattr(settings, name)
    # model_validate bypasses the env/TOML sources, so the result is exactly ``settings`` + ``params``.
    return settings_cls.model_validate(data)


def apply_optimizer_params(settings: Settings, params: Mapping[str, Any]) -> Settings:
    """The optimizer's only write path: ``with_overrides(..., optimizer=True)``."""
    return with_overrides(settings, params, optimizer=True)
