"""Retries of one order-mutating request (rate limits, timeouts), kept apart from the executor's state machine."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from loguru import logger

from bot.execution.rate_limit import OrderRateLimiter
from bot.ports import ERR_DUPLICATE_LINK_ID, ERR_RATE_LIMIT, ExchangeError, OrderAck, OrderRequest

T = TypeVar("T")


async def send_with_retries(limiter: OrderRateLimiter, attempts: int, requests: Counter[str], name: str,
                            fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
    """Token buckets, then up to ``attempts`` retries on rate-limit codes and timeouts (exponential back-off).

    A retry after an unanswered attempt that meets ``ERR_DUPLICATE_LINK_ID`` means that attempt was placed: the order
    is ours (same link id) and is acknowledged rather than raised, so it keeps being tracked."""
    unanswered = False  # an earlier attempt timed out: it may have reached the exchange
    for i in range(attempts + 1):
        await limiter.acquire()
        requests[name] += 1
        try:
            return await fn(*args, **kw)
        except ExchangeError as e:
            if e.code == ERR_DUPLICATE_LINK_ID and unanswered and args and isinstance(args[0], OrderRequest):
                logger.warning("{} {}: the timed-out attempt was placed; tracking that order", name,
                               args[0].order_link_id)
                return cast(T, OrderAck("", args[0].order_link_id))
            if e.code != ERR_RATE_LIMIT or i == attempts:
                raise
            logger.warning("{} rate-limited ({}), retry {}", name, e, i + 1)
        except (TimeoutError, ConnectionError) as e:
            if i == attempts:
                raise
            unanswered = True
            logger.warning("{} failed transiently ({!r}), retry {}", name, e, i + 1)
        await asyncio.sleep(0.25 * 2 ** i)
    raise AssertionError("unreachable")
