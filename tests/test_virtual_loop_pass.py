"""The virtual loop's inlined pass runs exactly what asyncio's own ``_run_once`` would, in the same order."""

from __future__ import annotations

import asyncio
import random

from replay.virtual_loop import VirtualTimeLoop


class StockPassLoop(VirtualTimeLoop):
    """The same virtual loop with CPython's unmodified pass."""

    def _run_once(self) -> None:
        asyncio.BaseEventLoop._run_once(self)  # type: ignore[attr-defined]


def _workload(loop: VirtualTimeLoop, seed: int) -> list[tuple[float, int]]:
    """Timers with many exact ties, cancellations (enough to trigger heap rebuilds), call_soon chains, and tasks
    sleeping: returns (loop time, callback id) in the order they ran."""
    rng = random.Random(seed)
    seen: list[tuple[float, int]] = []
    handles: list[asyncio.TimerHandle] = []
    counter = iter(range(10**9))

    def cb(ident: int, depth: int) -> None:
        seen.append((loop.time(), ident))
        if depth > 5:
            return
        for _ in range(rng.randint(0, 3)):
            r = rng.random()
            if r < 0.5:
                handles.append(loop.call_at(loop.time() + rng.choice((0.0, 0.5, 1.0, 1.0, 2.0)), cb, next(counter),
                                            depth + 1))
            elif r < 0.7:
                loop.call_soon(cb, next(counter), depth + 1)
            elif handles:
                handles.pop(rng.randrange(len(handles))).cancel()

    async def sleeper(ident: int) -> None:
        for _ in range(20):
            await asyncio.sleep(rng.choice((0.0, 0.5, 1.0)))
            seen.append((loop.time(), -ident))

    async def main() -> None:
        for _ in range(300):
            handles.append(loop.call_at(loop.time() + rng.choice((0.5, 1.0, 1.5)), cb, next(counter), 0))
        await asyncio.gather(*(sleeper(i) for i in range(1, 6)))
        await asyncio.sleep(100.0)

    loop.run_until_complete(main())
    loop.close()
    return seen


def test_inlined_pass_matches_stock_pass() -> None:
    for seed in range(5):
        fast = _workload(VirtualTimeLoop(1.75e9), seed)
        stock = _workload(StockPassLoop(1.75e9), seed)
        assert len(fast) > 500
        assert fast == stock
