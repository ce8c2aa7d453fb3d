"""The bot's effective settings as a TOML file for the cycle's child processes.

Why a snapshot and not the bot's own ``--settings`` file: the bot may have been built from code, an env that changes
later, or a file edited since start; the children must replay, optimize and apply with exactly the settings the
running bot started from (before the overlay, which they read separately). Secrets are never written (the snapshot
dump excludes them; children that need keys read the environment as the bot does). ``None`` values are left out
(TOML has no null): such a field takes its default, which is ``None`` for every optional field. The webhook URL is left
out too (:data:`OMIT`): the children never notify, and a URL may hold a token that must not land in their files.
"""

from __future__ import annotations

from settings import Settings, toml_text
from settings.toml_text import flatten

OMIT = frozenset({"backtest.webhook_url"})


def to_toml(settings: Settings) -> str:
    flat = {k: v for k, v in flatten(settings.snapshot_dict()).items() if k not in OMIT}
    return toml_text.to_toml(flat, header="settings snapshot of the running bot, written for the backtest cycle's "
                                          "child processes")
