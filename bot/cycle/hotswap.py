"""Swap tuned (OPTIMIZABLE) parameters into a running bot without losing its state.

Every component reads its parameters from the frozen settings once, at construction, into plain attributes (the
orchestrator's gates, the signal generator's thresholds, the risk manager's distances, ...), next to its state
(EMAs, histories, cooldowns, the position book). To find which attributes a settings change touches, each component
is built twice from scratch, once with the current settings and once with the new ones, around the bot's live
dependencies: the attributes that differ between the two fresh instances are exactly the settings-derived ones the
change alters. Those are copied onto the live component; nothing else is touched, so state survives.

An attribute that differs but is not a plain value (a per-symbol tracker built with a window size, say) cannot be
swapped without resetting state: the whole swap is then refused with the field names, and the overlay applies at the
next start. Open positions keep their exits: stop/take-profit distances and the lifetime are stored on each position
record at entry, and records are state, never swapped.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

from bot.analysis import ImbalanceAnalyzer, SignalGenerator, VolumeAnalyzer
from bot.execution.executor import Executor
from bot.orchestrator import Orchestrator
from bot.risk import RiskManager
from bot.storage import DataStorage
from settings import Settings

_SCALAR = (int, float, str, bytes, bool, type(None), Decimal, Enum)
_MAX_DEPTH = 8


class NotSwappable(ValueError):
    """The change alters a component's structure, not just its parameters; it needs a restart."""


def _state(obj: Any) -> dict[str, Any] | None:
    """An object's attributes (``__dict__`` and ``__slots__``), or None for opaque ones (C objects, locks)."""
    out: dict[str, Any] = dict(getattr(obj, "__dict__", {}) or {})
    for klass in type(obj).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if isinstance(name, str) and name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                out[name] = getattr(obj, name)
    return out if out or hasattr(obj, "__dict__") else None


def same(a: Any, b: Any, depth: int = 0) -> bool:
    """Structural equality of two freshly built objects (identity short-cuts; NaN equals NaN)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (*_SCALAR, BaseModel, set, frozenset)):
        return bool(a == b)
    if isinstance(a, list | tuple | deque):
        return len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], depth + 1) for k in a)
    if hasattr(a, "__func__") and hasattr(a, "__self__"):  # bound methods of the two fresh objects
        return a.__func__ is b.__func__
    if callable(a) and not hasattr(a, "__dict__"):
        return True  # builtins, C callables: never settings-derived
    if depth >= _MAX_DEPTH:
        return True
    sa, sb = _state(a), _state(b)
    if sa is None or sb is None:
        return True  # opaque (locks, loops, C objects): cannot carry a settings value
    return same(sa, sb, depth + 1)


def plain(v: Any) -> bool:
    """A value that is all parameter and no state: safe to copy onto a live component."""
    if isinstance(v, (*_SCALAR, BaseModel)):
        return True
    if isinstance(v, tuple | frozenset):
        return all(plain(x) for x in v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        params = getattr(type(v), "__dataclass_params__", None)
        return bool(params and params.frozen) and all(plain(getattr(v, f.name)) for f in dataclasses.fields(v))
    return False


Builder = Callable[[Settings], Any]


def _builders(bot: Any) -> dict[str, tuple[Any, Builder]]:
    """Live component → how to build a fresh one around the live dependencies (the composition of build_bot)."""
    syms = bot.symbols
    reg = bot.instruments
    o = bot.orchestrator
    return {
        "storage": (bot.storage, lambda s: DataStorage(s, bot.clock, syms)),
        "volume": (bot.volume, lambda s: VolumeAnalyzer(s, bot.storage)),
        "imbalance": (bot.imbalance, lambda s: ImbalanceAnalyzer(s, bot.storage, reg)),
        "signals": (bot.signals, lambda s: SignalGenerator(s)),
        "risk": (bot.risk, lambda s: RiskManager(s, reg)),
        "executor": (
            bot.executor,
            lambda s: Executor(s, bot.clock, bot.exchange, bot.storage, bot.risk, reg, None, symbols=syms),
        ),
        "orchestrator": (
            o,
            lambda s: Orchestrator(
                s, bot.clock, bot.storage, bot.volume, bot.imbalance, bot.signals, bot.executor, symbols=o.symbols
            ),
        ),
    }


def plan(bot: Any, new: Settings) -> dict[str, dict[str, Any]]:
    """``{component: {attribute: new value}}`` to go from ``bot.settings`` to ``new``; raises :class:`NotSwappable`."""
    old = bot.settings
    out: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    for name, (_live, build) in _builders(bot).items():
        a, b = _state(build(old)) or {}, _state(build(new)) or {}
        for attr in sorted(a.keys() | b.keys()):
            if attr in a and attr in b and same(a[attr], b[attr]):
                continue
            if attr in b and plain(b[attr]):
                out.setdefault(name, {})[attr] = b[attr]
            else:
                refused.append(f"{name}.{attr}")
    if refused:
        raise NotSwappable(f"the change rebuilds component state ({', '.join(refused)}); it applies at the next start")
    return out


def apply_plan(bot: Any, changes: Mapping[str, Mapping[str, Any]], new: Settings) -> int:
    """Copy the planned attributes onto the live components and make ``new`` the bot's settings; returns how many."""
    live = {name: comp for name, (comp, _) in _builders(bot).items()}
    n = 0
    for name, attrs in changes.items():
        for attr, value in attrs.items():
            setattr(live[name], attr, value)
            n += 1
    bot.settings = new
    return n


def entry_in_flight(bot: Any) -> list[str]:
    """Symbols whose entry is still being worked (OPENING): no swap until they are resolved."""
    from bot.execution.positions import PositionState

    return [r.symbol for r in bot.executor.book.live_records() if r.state is PositionState.OPENING]
