"""The virtual loop's inlined pass runs exactly what asyncio's own ``_run_once`` would, in the same order."""

from __future__ import annotations

import asyncio
import random

from replay.virtual_loop import VirtualSelector, VirtualTimeLoop


class StockVirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's own selector loop, unmodified (its pass, handles, timers and heap of timers; no ``claim_pass`` or
    ``jump_to``), waiting on the virtual selector: the reference the virtual loop must match."""

    def __init__(self, start: float = 0.0) -> None:
        sel = VirtualSelector(start)
        super().__init__(sel)
        sel.next_timer = lambda: self._scheduled[0].when() if self._scheduled else None  # type: ignore[attr-defined]
        sel.quiet_fds = frozenset((self._ssock.fileno(),))  # type: ignore[attr-defined]
        sel._update_poll()
        sel.loop_ready = self._ready  # type: ignore[attr-defined]
        self._clock_resolution = 1e-6
        self._vsel = sel

    def time(self) -> float:
        return self._vsel.vtime


def _workload(loop: asyncio.AbstractEventLoop, seed: int) -> list[tuple[float, int]]:
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
        stock = _workload(StockVirtualLoop(1.75e9), seed)
        assert len(fast) > 500
        assert fast == stock


def test_debug_mode_pass_matches_stock_pass() -> None:
    """Debug mode takes the loop's stock pass and the stock timer constructor, on its heap of (when, timer) pairs."""
    for seed in range(2):
        fast_loop, stock_loop = VirtualTimeLoop(1.75e9), StockVirtualLoop(1.75e9)
        fast_loop.set_debug(True)
        stock_loop.set_debug(True)
        assert _workload(fast_loop, seed) == _workload(stock_loop, seed)
