"""The parameter overlay file (``config/overlay.toml``, written by ``python -m replay apply|approve``) as the bot
reads it: OPTIMIZABLE fields only (a FIXED or unknown field is refused by ``apply_optimizer_params``), applied on top
of the settings the bot started with, and watched for changes while it runs.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

from loguru import logger

from settings import Settings, apply_optimizer_params
from settings.toml_text import flatten


def read(path: Path) -> dict[str, Any]:
    """The overlay's fields as dotted paths ({} when the file does not exist)."""
    if not path.exists():
        return {}
    with path.open("rb") as f:
        return flatten(tomllib.load(f))


def settings_with(base: Settings, path: Path) -> Settings:
    """``base`` with the overlay applied; raises ValueError naming a FIXED/unknown field or an invalid value."""
    flat = read(path)
    return apply_optimizer_params(base, flat) if flat else base


def changed_fields(old: Settings, new: Settings) -> dict[str, tuple[Any, Any]]:
    a, b = flatten(old.snapshot_dict()), flatten(new.snapshot_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


class OverlayWatcher:
    """``poll()`` returns the new effective settings once per content change of the file, else None.

    A file that cannot be read or validated is logged once per content and ignored (the bot keeps its parameters).
    """

    def __init__(self, path: Path, base: Settings) -> None:
        self.path = path
        self.base = base
        self._stat: tuple[int, int] | None = None
        self._digest: str | None = None

    def prime(self) -> None:
        """Remember the current content as already applied (the bot loaded it at start)."""
        self.poll()

    def poll(self) -> Settings | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stat = None
            return None
        sig = (st.st_mtime_ns, st.st_size)
        if sig == self._stat:
            return None
        self._stat = sig
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            return settings_with(self.base, self.path)
        except Exception as e:  # a broken or FIXED-touching overlay never reaches the bot
            logger.error("parameter overlay {} refused: {}", self.path, " ".join(str(e).split())[:300])
            return None
