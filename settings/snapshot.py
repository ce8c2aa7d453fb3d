"""Immutable record of exactly what a backtest ran with, so results can be reproduced and compared by hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from settings.model import Settings


def canonical_json(data: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, no NaN) so equal inputs always hash equal."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _deep_freeze(value: Any) -> Any:
    """Read-only mappings and tuples all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _deep_freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_deep_freeze(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Frozen snapshot of (non-secret settings, symbols, window, seed) for one backtest run.

    The settings are stored as canonical JSON text, which is immutable by construction; ``settings`` rebuilds a
    fresh validated Settings each time, so nothing handed out can alter the snapshot.
    """

    settings_json: str
    symbols: tuple[str, ...]
    start_ms: int
    end_ms: int
    seed: int

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("BacktestConfig.symbols must not be empty")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"BacktestConfig.symbols contains duplicates: {self.symbols}")
        if self.start_ms >= self.end_ms:
            raise ValueError(f"BacktestConfig.start_ms ({self.start_ms}) must be < end_ms ({self.end_ms})")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        symbols: Iterable[str],
        start_ms: int,
        end_ms: int,
        seed: int | None = None,
    ) -> BacktestConfig:
        """Capture ``settings`` (secrets excluded) with the run's symbols, window and seed (default backtest.seed)."""
        return cls(
            settings_json=canonical_json(settings.snapshot_dict()),
            symbols=tuple(symbols),
            start_ms=int(start_ms),
            end_ms=int(end_ms),
            seed=settings.backtest.seed if seed is None else int(seed),
        )

    @property
    def settings(self) -> Settings:
        """A fresh validated Settings equal to the captured one (without secrets; env is not consulted)."""
        return Settings.model_validate(json.loads(self.settings_json))

    @property
    def params(self) -> Mapping[str, Any]:
        """Deep read-only view of the captured settings dump."""
        return _deep_freeze(json.loads(self.settings_json))

    @property
    def settings_hash(self) -> str:
        """sha256 hex of the canonical non-secret settings JSON: equal settings ⇔ equal hash."""
        return hashlib.sha256(self.settings_json.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        """Canonical JSON of the whole snapshot, including the settings hash for quick comparison."""
        return canonical_json(
            {
                "settings": json.loads(self.settings_json),
                "settings_hash": self.settings_hash,
                "symbols": list(self.symbols),
                "start_ms": self.start_ms,
                "end_ms": self.end_ms,
                "seed": self.seed,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> BacktestConfig:
        """Inverse of ``to_json``; re-validates the settings and checks the stored hash."""
        raw = json.loads(text)
        cfg = cls.from_settings(
            Settings.model_validate(raw["settings"]),
            symbols=raw["symbols"],
            start_ms=raw["start_ms"],
            end_ms=raw["end_ms"],
            seed=raw["seed"],
        )
        if raw.get("settings_hash") not in (None, cfg.settings_hash):
            raise ValueError("BacktestConfig.from_json: settings_hash does not match the settings")
        return cfg
