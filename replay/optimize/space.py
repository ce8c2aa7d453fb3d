"""The optimizer's search space: OPTIMIZABLE settings fields as Optuna distributions, FIXED ones refused by name.

Ranges come only from the settings metadata (``settings.search.search_space``), never from this module, so a range is
declared once next to its default. List-valued choices (threshold ladders, weight vectors) are not Optuna-storable
values, so they travel as the index of the choice and are decoded back here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from settings.fields import ParamSpec
from settings.model import Settings
from settings.search import fixed_fields, iter_fields, search_space

# Signal and exit parameters searched when ``--params`` is not given: the ones that shape entries and exits most,
# kept few so TPE has a chance within tens of trials (the full OPTIMIZABLE space has ~150 dimensions).
DEFAULT_PARAMS: tuple[str, ...] = (
    "trading.entry_signal_min_strength",
    "signals.base_threshold",
    "signals.min_imbalance_for_entry",
    "signals.cooldown_seconds",
    "risk.min_sl_pct",
    "risk.min_tp_pct",
    "risk.base_position_lifetime_minutes",
    "execution.passive_improve_bps",
)
# Names the optimizer must never touch whatever the metadata says (ARCHITECTURE.md §7); checked on every space.
NEVER_TUNED: frozenset[str] = frozenset({"position_size", "position_size_usdt", "leverage", "max_open_positions",
                                         "base_order_size", "base_order_usdt"})
_PRIMITIVE = (bool, int, float, str, type(None))


class FixedFieldError(ValueError):
    """A FIXED (or unknown) field was asked for as an optimizer dimension."""


def resolve(names: Iterable[str] | None) -> dict[str, ParamSpec]:
    """The ParamSpecs for ``names`` (default: :data:`DEFAULT_PARAMS`; ``["all"]``: every OPTIMIZABLE field).

    A FIXED field raises :class:`FixedFieldError` naming it (and every other one asked for), as does an unknown name.
    """
    space = search_space(Settings)
    chosen = list(DEFAULT_PARAMS) if not names else list(names)
    if chosen == ["all"]:
        chosen = sorted(space)
    fixed = fixed_fields(Settings)
    known = {path for path, _ in iter_fields(Settings)}
    bad_fixed = [n for n in chosen if n in fixed]
    if bad_fixed:
        raise FixedFieldError(f"{', '.join(bad_fixed)} {'is' if len(bad_fixed) == 1 else 'are'} FIXED and never "
                              f"optimized (only OPTIMIZABLE fields have search ranges)")
    unknown = [n for n in chosen if n not in space]
    if unknown:
        what = ["unknown settings field" if n not in known else "not OPTIMIZABLE" for n in unknown]
        raise FixedFieldError("; ".join(f"{n}: {w}" for n, w in zip(unknown, what, strict=True)))
    specs = {n: space[n] for n in chosen}
    never = [n for n in specs if n.rsplit(".", 1)[-1] in NEVER_TUNED]
    if never:
        raise FixedFieldError(f"{', '.join(never)}: position size, leverage and max open positions are never tuned")
    return specs


def _choices(spec: ParamSpec) -> tuple[Any, ...]:
    assert spec.choices is not None
    return tuple(spec.choices)


def _encoded(spec: ParamSpec) -> bool:
    """List-valued choices are stored as their index (Optuna stores only primitive categorical values)."""
    return spec.kind in ("bool", "categorical") and not all(isinstance(c, _PRIMITIVE) for c in _choices(spec))


def distribution(spec: ParamSpec) -> BaseDistribution:
    """The Optuna distribution of one dimension."""
    if spec.kind in ("bool", "categorical"):
        choices = _choices(spec)
        return CategoricalDistribution(list(range(len(choices))) if _encoded(spec) else list(choices))
    if spec.kind == "int":
        return IntDistribution(int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)  # type: ignore[arg-type]
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log,  # type: ignore[arg-type]
                             step=None if spec.log or spec.step is None else float(spec.step))


def distributions(specs: Mapping[str, ParamSpec]) -> dict[str, BaseDistribution]:
    return {n: distribution(s) for n, s in specs.items()}


def decode(specs: Mapping[str, ParamSpec], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's stored values → settings values (index → list choice; tuples → lists for pydantic)."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        spec = specs[name]
        if _encoded(spec):
            value = _choices(spec)[int(value)]
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def grid(specs: Mapping[str, ParamSpec], points: int = 3) -> dict[str, list[Any]]:
    """A grid for ``GridSampler``: every choice of a categorical, ``points`` evenly spaced values of a numeric range
    (on the int step, or geometric for log ranges), so the grid stays inside each distribution."""
    out: dict[str, list[Any]] = {}
    for name, spec in specs.items():
        if spec.kind in ("bool", "categorical"):
            out[name] = list(distribution(spec).choices)  # type: ignore[attr-defined]
            continue
        lo, hi = float(spec.low), float(spec.high)  # type: ignore[arg-type]
        vals = np.geomspace(lo, hi, points) if spec.log else np.linspace(lo, hi, points)
        if spec.kind == "int":
            step = int(spec.step or 1)
            out[name] = sorted({int(lo + round((v - lo) / step) * step) for v in vals})
        else:
            out[name] = [round(float(v), 10) for v in vals]
    return out


def grid_size(g: Mapping[str, Sequence[Any]]) -> int:
    n = 1
    for values in g.values():
        n *= len(values)
    return n
