"""pybit's exceptions → the port's errors, so the executor handles live and simulated refusals alike.

Tree of what callers of the adapter see::

    ExchangeError(code, msg)   Bybit refused: ``retCode``/``retMsg`` unchanged (110001, 110017, 10001 ...);
                               an HTTP 403/429 rate-limit answer becomes code 10006 like its JSON twin
    TimeoutError               no answer within the adapter's timeout (the request may still have executed)
    ConnectionError            transport failure, HTTP 5xx, unreadable body: retryable, state unknown

pybit raises ``InvalidRequestError`` with ``status_code`` = retCode for a non-zero retCode, and
``FailedRequestError`` for a non-200 HTTP status (``status_code`` = HTTP status) or an undecodable body (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from bot.ports import ERR_RATE_LIMIT, ExchangeError

HTTP_RATE_LIMITED = frozenset({403, 429})
ERR_TIMESTAMP = 10002  # signed request outside [server − recv_window, server + 1 s): clock drift or a slow request


def to_port_error(exc: BaseException) -> BaseException:
    """The port-level exception for ``exc`` (returned, not raised, so the caller keeps the chain)."""
    if isinstance(exc, InvalidRequestError):
        return ExchangeError(int(exc.status_code), str(exc.message))
    if isinstance(exc, FailedRequestError):
        if int(exc.status_code) in HTTP_RATE_LIMITED:
            return ExchangeError(ERR_RATE_LIMIT, f"HTTP {exc.status_code}: {exc.message}")
        return ConnectionError(f"HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, requests.Timeout):
        return TimeoutError(f"request timed out: {type(exc).__name__}")
    if isinstance(exc, requests.RequestException):
        return ConnectionError(f"request failed: {type(exc).__name__}")
    return exc


def response_headers(exc: BaseException) -> Mapping[str, Any]:
    """The HTTP headers an error response carried (rate-limit reset time), or ``{}``."""
    headers = getattr(exc, "resp_headers", None)
    return headers if headers is not None else {}
