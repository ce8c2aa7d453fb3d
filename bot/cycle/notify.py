"""Cycle notifications: always a log line; with ``backtest.webhook_url``, also a JSON POST to that URL.

The webhook runs in a worker thread with a timeout, so a slow or dead endpoint never blocks the trading loop, and any
failure is logged and swallowed: a notification is never worth stopping a bot for. The URL may carry a token
(Slack/Discord style), so only its scheme and host are ever logged.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from loguru import logger


def safe_host(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}"


class Notifier:
    """``await notify(event)``: log it, POST it (``{"source": "naporrr", **event}``) when a URL is set."""

    def __init__(self, url: str | None, timeout_sec: float = 5.0) -> None:
        self.url = url
        self.timeout_sec = timeout_sec
        self.sent = 0
        self.failed = 0

    async def notify(self, event: Mapping[str, Any]) -> bool:
        """True when the webhook accepted it (2xx) or there is no webhook; False after a logged failure."""
        logger.info("cycle notification {}: {}", event.get("event"), event.get("summary", ""))
        if not self.url:
            return True
        body = json.dumps({"source": "naporrr", **event}, default=str, sort_keys=True).encode()
        try:
            status = await asyncio.to_thread(self._post, body)
        except Exception as e:  # network errors, timeouts, HTTP errors: logged, never raised
            self.failed += 1
            logger.warning(
                "cycle webhook {} failed: {}: {}", safe_host(self.url), type(e).__name__, " ".join(str(e).split())[:200]
            )
            return False
        self.sent += 1
        logger.info("cycle webhook {} answered {}", safe_host(self.url), status)
        return True

    def _post(self, body: bytes) -> int:
        assert self.url is not None
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "naporrr-bot"},
        )
        host = urlsplit(self.url).hostname
        handlers = [urllib.request.ProxyHandler({})] if host in {"127.0.0.1", "localhost", "::1"} else []
        with urllib.request.build_opener(*handlers).open(req, timeout=self.timeout_sec) as r:
            return int(r.status)
