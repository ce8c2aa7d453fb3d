"""The one task that moves market batches from the feed queue into DataStorage (ARCHITECTURE.md §4).

Every feed (live WS collector, recorded, synthetic) puts ``EventBatch``es on one asyncio queue; this consumer applies
each batch to storage, then hands the same batch to optional extra sinks (paper trading tees it into the simulated
exchange's ``on_market``). It also offers :meth:`FeedConsumer.caught_up`, the barrier the orchestrator awaits before a
decision: everything the feed had enqueued when a tick starts is in storage before the tick reads it, so a tick at
``t_k`` sees exactly the events released up to ``t_k`` whether the loop is real or virtual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from bot.events import EventBatch

BatchSink = Callable[[EventBatch], None]


class BatchStore(Protocol):
    def apply_batch(self, batch: EventBatch) -> None: ...


class FeedQueue(asyncio.Queue[EventBatch]):
    """An unbounded asyncio queue that counts what was ever put on it (``put`` goes through ``put_nowait``)."""

    def __init__(self) -> None:
        super().__init__()
        self.put_count = 0
        self._direct: Callable[[EventBatch], None] | None = None  # the running consumer's apply, while it waits

    def put_nowait(self, item: EventBatch) -> None:
        super().put_nowait(item)
        self.put_count += 1

    def release(self, item: EventBatch) -> None:
        """Put ``item``, or, when the consumer is idle (running, nothing queued), have it apply the batch right here.

        That is the state the consumer would reach on its next wake-up, one loop pass earlier and with no other
        task in between: for a feed that runs on the consumer's own loop and releases on a timer (the replay), it
        saves a task wake-up per batch. A failure still stops the consumer task (it re-raises it).
        """
        direct = self._direct
        if direct is None or self._queue:  # type: ignore[attr-defined]  # asyncio.Queue's deque
            self.put_nowait(item)
            return
        self.put_count += 1
        direct(item)


class FeedConsumer:
    """Applies queued batches to storage and extra sinks, in queue order, one batch per queue item."""

    def __init__(self, queue: FeedQueue, storage: BatchStore, sinks: Iterable[BatchSink] = ()) -> None:
        self.queue = queue
        self._apply = storage.apply_batch
        self._sinks = tuple(sinks)
        self.applied = 0
        self.events = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._error: BaseException | None = None

    async def run(self) -> None:
        """Consume until cancelled. An exception from storage or a sink is a bug: it propagates (the bot stops)."""
        queue, apply, sinks = self.queue, self._apply, self._sinks
        direct = isinstance(queue, FeedQueue)
        if direct:
            queue._direct = self._apply_direct
        try:
            while True:
                batch = await queue.get()
                try:
                    if self._error is not None:  # a direct application failed: fail here, as a queued one would
                        raise self._error
                    apply(batch)
                    for sink in sinks:
                        sink(batch)
                finally:
                    queue.task_done()
                self.applied += 1
                self.events += len(batch)
                if self._waiters:
                    self._wake()
        finally:
            if direct and queue._direct == self._apply_direct:
                queue._direct = None

    def _apply_direct(self, batch: EventBatch) -> None:
        try:
            self._apply(batch)
            for sink in self._sinks:
                sink(batch)
        except Exception as e:
            self._error = e
            self.queue._direct = None
            asyncio.Queue.put_nowait(self.queue, [])  # wake the consumer task to raise it (not counted as a batch)
            return
        self.applied += 1
        self.events += len(batch)
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, fut in self._waiters:
            if self.applied >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep

    def is_caught_up(self) -> bool:
        """True when :meth:`caught_up` would return at once (every batch enqueued so far is applied)."""
        return self.applied >= self.queue.put_count

    async def caught_up(self) -> None:
        """Return once every batch enqueued before this call has been applied (at once if none is pending).

        Batches enqueued later are not waited for, so a busy live feed can never starve a tick.
        """
        target = self.queue.put_count
        if self.applied >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        await fut
