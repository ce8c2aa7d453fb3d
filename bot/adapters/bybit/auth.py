"""API credentials and Bybit request signing.

Keys come only from the environment or a git-ignored ``.env`` (never from settings files, never logged): the
:class:`Credentials` repr masks both values, and nothing in the adapter formats them into a message. The private
WebSocket authenticates with ``{"op": "auth", "args": [key, expires_ms, hex(HMAC_SHA256(secret,
"GET/realtime" + expires_ms))]}``; ``expires`` is taken from the injected Clock (the wall clock when live).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_API_KEY = "BYBIT_API_KEY"
ENV_API_SECRET = "BYBIT_API_SECRET"
# Settings' own names for the same keys (``NAPORRR_API_KEY``/``NAPORRR_API_SECRET``), accepted as a fallback.
FALLBACK_NAMES = {ENV_API_KEY: "NAPORRR_API_KEY", ENV_API_SECRET: "NAPORRR_API_SECRET"}
AUTH_EXPIRES_AHEAD_SEC = 10.0


class MissingCredentialsError(RuntimeError):
    """A required API variable is absent from both the environment and ``.env``."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key pair; ``repr``/``str`` never show either value."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(api_key=***, api_secret=***)"

    __str__ = __repr__


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (``export`` prefixes, comments and quotes handled); ``{}`` if absent."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        out[name.strip()] = value
    return out


def load_credentials(env: Mapping[str, str] | None = None, dotenv: Path | str = ".env") -> Credentials:
    """``BYBIT_API_KEY``/``BYBIT_API_SECRET`` from the environment, else from ``dotenv``; settings' names
    ``NAPORRR_API_KEY``/``NAPORRR_API_SECRET`` (same sources) are the fallback.

    Raises:
        MissingCredentialsError: naming every missing variable (never echoing a value).
    """
    environ = os.environ if env is None else env
    file_vars = read_dotenv(Path(dotenv))
    values = {n: (environ.get(n) or file_vars.get(n) or environ.get(FALLBACK_NAMES[n])
                  or file_vars.get(FALLBACK_NAMES[n]) or "").strip() for n in (ENV_API_KEY, ENV_API_SECRET)}
    missing = [n for n, v in values.items() if not v]
    if missing:
        raise MissingCredentialsError(
            f"missing {' and '.join(missing)}: set {'them' if len(missing) > 1 else 'it'} in the environment or in "
            f"a git-ignored .env file ({Path(dotenv).resolve()}) to trade on Bybit")
    return Credentials(values[ENV_API_KEY], values[ENV_API_SECRET])


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ws_auth_message(creds: Credentials, now: float, req_id: str = "auth") -> dict[str, Any]:
    """The private stream's ``auth`` op, valid until ``now + AUTH_EXPIRES_AHEAD_SEC``."""
    expires = int((now + AUTH_EXPIRES_AHEAD_SEC) * 1000)
    return {"req_id": req_id, "op": "auth",
            "args": [creds.api_key, expires, hmac_hex(creds.api_secret, f"GET/realtime{expires}")]}
