"""The tick's yield between evaluations is skipped only where it would change nothing (the virtual loop says the
task's resumption would run alone in the next pass, and no cancellation waits for that yield)."""

from __future__ import annotations

import asyncio

from bot.orchestrator import _yield_is_void
from replay.virtual_loop import VirtualTimeLoop


def _answers(loop: asyncio.AbstractEventLoop, setup: str) -> bool:
    async def main() -> bool:
        if setup == "other_ready":
            loop.call_soon(lambda: None)
        elif setup == "timer_due":
            loop.call_at(loop.time(), lambda: None)
        elif setup == "cancelling":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            answer = _yield_is_void()
            try:
                await asyncio.sleep(0)  # where the cancellation is delivered
            except asyncio.CancelledError:
                task.uncancel()
            return answer
        return _yield_is_void()

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_void_only_when_the_resumption_would_run_alone() -> None:
    assert _answers(VirtualTimeLoop(1.75e9), "alone") is True
    assert _answers(VirtualTimeLoop(1.75e9), "other_ready") is False
    assert _answers(VirtualTimeLoop(1.75e9), "timer_due") is False
    assert _answers(VirtualTimeLoop(1.75e9), "cancelling") is False


def test_a_live_loop_always_yields() -> None:
    assert _answers(asyncio.new_event_loop(), "alone") is False
