"""Shared pieces of the settings sections: the frozen strict model config and the cross-field checks."""

from __future__ import annotations

import itertools

from pydantic import ConfigDict

SECTION_CONFIG = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def ascending(values: list[float], name: str, *, strict: bool = True) -> None:
    """Raise naming ``name`` unless ``values`` ascend (strictly by default)."""
    for a, b in itertools.pairwise(values):
        if (b <= a) if strict else (b < a):
            raise ValueError(f"{name} must be {'strictly ' if strict else ''}ascending, got {values}")


def ordered(lo: float, hi: float, lo_name: str, hi_name: str, *, strict: bool = False) -> None:
    """Raise naming both fields unless ``lo <= hi`` (or ``lo < hi`` when strict)."""
    if (lo >= hi) if strict else (lo > hi):
        op = "<" if strict else "<="
        raise ValueError(f"{lo_name} ({lo}) must be {op} {hi_name} ({hi})")


def nonneg_weights(values: list[float], name: str) -> None:
    """Weights must be non-negative and not all zero, else a weighted sum is meaningless."""
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{name} must be non-negative with a positive sum, got {values}")
