"""An asyncio event loop whose time is virtual (ARCHITECTURE.md §3).

``loop.time()`` returns virtual seconds. When no callback is ready, asyncio's ``_run_once`` asks the selector to
wait until the next timer; :class:`VirtualSelector` polls the real file descriptors without blocking and, if none
is ready, adds the timeout to virtual time and returns at once. So ``await asyncio.sleep(2.0)`` costs no wall time
while timers, timeouts and cadences keep their exact live order. The bot runs on it unmodified; its
:class:`bot.clock.LoopClock` reads ``epoch0 + loop.time()``.

Real I/O still works (registered sockets are polled every pass; a callback from another thread, e.g.
``run_in_executor``, is seen in the ready queue before any time jump), but a blocking wait with no timer at all means
nothing can ever wake the loop except another thread: we wait for that a bounded wall time and then fail loudly
rather than hang. :meth:`VirtualTimeLoop.claim_pass` lets a timer callback run its follow-up in its own pass when
nothing else would run in between (the replay feed and the executor monitor use it to skip a pass per period), and
:meth:`VirtualTimeLoop.jump_to` lets a callback skip arming such a timer at all when that timer's pass would run only
it (the replay feed: about half its releases). Timers and handles are built by the loop itself (same fields, same heap
operations), which costs half of asyncio's generic constructors.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import selectors
from asyncio import base_events, events, format_helpers
from asyncio.log import logger
from collections.abc import Callable, Coroutine
from contextvars import Context, copy_context
from typing import Any, TypeVar

from bot.clock import LoopClock

T = TypeVar("T")

DEADLOCK_WALL_TIMEOUT_SEC = 5.0


class VirtualTimeDeadlock(RuntimeError):
    """No task is ready, no timer is pending and no thread woke the loop: the run can never progress."""


class VirtualSelector(selectors.BaseSelector):
    """Delegates registration to a real selector; turns waits into virtual-time jumps."""

    def __init__(self, start: float = 0.0) -> None:
        self._real = selectors.DefaultSelector()
        self.vtime = start
        self.next_timer: Callable[[], float | None] = lambda: None
        self.quiet_fds: frozenset[int] = frozenset()  # fds not worth a poll per pass (the loop's self-pipe)
        self._poll = True  # a registered fd outside quiet_fds: poll the real selector every pass
        self.loop_ready: Any = ()  # the loop's ready queue (a thread's call_soon_threadsafe lands there)

    def _update_poll(self) -> None:
        self._poll = any(key.fd not in self.quiet_fds for key in self._real.get_map().values())

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self._real.register(fileobj, events, data)
        self._update_poll()
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self._real.unregister(fileobj)
        self._update_poll()
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Real I/O first, then the virtual wait. Sockets are polled every pass; the self-pipe alone is not: a
        callback from another thread is already in the loop's ready queue when its pipe byte is written (checked
        before time jumps), and the byte only matters to wake a blocking wait."""
        if self._poll:
            ready = self._real.select(0)
            if ready:
                return ready
        if timeout is None:
            ready = self._real.select(DEADLOCK_WALL_TIMEOUT_SEC)
            if not ready:
                raise VirtualTimeDeadlock(
                    "virtual-time loop has no ready task and no pending timer: every task waits on something "
                    "that can never happen (a queue nobody feeds, a future nobody resolves)")
            return ready
        if timeout > 0 and not self.loop_ready:
            # Land exactly on the timer's own ``when`` (not vtime + timeout, which float rounding can leave an ulp
            # short), so an event released at ``ts`` is seen at a clock that reads exactly ``ts``.
            when = self.next_timer()
            self.vtime = when if when is not None and when > self.vtime else self.vtime + timeout
        return []


class _Timer(events.TimerHandle):
    """asyncio's ``TimerHandle``, ordered by a plain ``_when`` compare. The loop's heap holds ``(when, timer)`` pairs
    (see :class:`VirtualTimeLoop`), so a timer is compared only when two share a time, and then equality is identity:
    the stock ``__eq__`` compares callbacks and arguments, which a tie in the heap must never do (it could call an
    argument's ``__eq__``)."""

    __slots__ = ()

    def __lt__(self, other: Any) -> bool:
        try:
            return self._when < other._when  # type: ignore[no-any-return]
        except AttributeError:
            return NotImplemented

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = events.TimerHandle.__hash__


_new = object.__new__
_heappush = heapq.heappush
_heappop = heapq.heappop


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time; starts at ``start`` (epoch seconds in replay) and advances only by
    waiting. Starting at the replay's start epoch makes ``loop.time()`` *be* the bot's clock, with no offset arithmetic
    to round.

    Its timer heap (``_scheduled``) holds ``(when, timer)`` pairs, not the timers themselves: a pair compares in C
    (``when`` first; a timer only on a tie, where it is never less than another, as asyncio's ``when`` compare says),
    so every push and pop makes the same compares with the same answers as asyncio's heap of timers (same layout,
    same order of equal times) without a Python ``__lt__`` call per compare (~400k a replay day). Everything that
    reads the heap is here: the inlined pass, the stock pass for the rare paths, ``call_at``, ``claim_pass`` and
    ``jump_to``."""

    def __init__(self, start: float = 0.0) -> None:
        self._vselector = VirtualSelector(start)
        super().__init__(self._vselector)
        self._vselector.next_timer = self._next_timer_when
        self._vselector.quiet_fds = frozenset((self._ssock.fileno(),))  # type: ignore[attr-defined]
        self._vselector._update_poll()
        self._vselector.loop_ready = self._ready  # type: ignore[attr-defined]
        # asyncio runs a timer once ``when < time() + _clock_resolution``. Its default (the monotonic clock's 1 ns) is
        # below the float spacing of epoch seconds (~2.4e-7 at 1.7e9), so ``time() + 1e-9 == time()`` and a timer due
        # exactly now would never run. 1 µs is above that spacing and far below anything the bot schedules.
        self._clock_resolution = 1e-6
        self._probe = _new(_Timer)  # stands in for the timer :meth:`jump_to` saves, in the heap's push and pop
        self._probe._cancelled = False
        # :meth:`time` as a C-level callable (the selector's ``vtime``, no Python frame): the bot's clock is this
        # method (see :class:`bot.clock.LoopClock`) and a replay day reads it ~300k times
        self.time = functools.partial(getattr, self._vselector, "vtime")  # type: ignore[method-assign]

    def claim_pass(self) -> bool:
        """For a timer callback that would only queue one follow-up callback: True if that follow-up would run alone
        in the next pass (nothing else ready, not stopping, no timer due in it), so the caller may run it right now
        instead, one pass early with nothing observable in between. Before answering it does what that pass does
        first, dropping cancelled timers from the head of the heap, so the heap sees the same operations in the same
        order either way."""
        if self._ready or self._stopping or self._vselector._poll:  # type: ignore[attr-defined]
            return False  # (real file descriptors: that pass polls them first)
        scheduled = self._scheduled  # type: ignore[attr-defined]
        n = len(scheduled)
        if (n > base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
                and self._timer_cancelled_count / n  # type: ignore[attr-defined]
                > base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION):  # type: ignore[attr-defined]
            return False  # that pass rebuilds the heap: let it
        while scheduled and scheduled[0][1]._cancelled:
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            _heappop(scheduled)[1]._scheduled = False
        return not (scheduled and scheduled[0][0] < self._vselector.vtime + self._clock_resolution)

    def jump_to(self, when: float) -> bool:
        """For a callback about to arm a timer at ``when`` (later than now) whose callback would claim its pass (see
        :meth:`claim_pass`) and then run a follow-up: True if that timer's pass would run it alone, that is when
        nothing else is ready or due before ``when`` + the clock resolution and no heap rebuild intervenes. Then
        time is already at ``when`` and the heap has seen what the timer's push, its pass and its claim do (the push
        and pop of the earliest timer, the cancelled heads dropped), so the caller runs the follow-up at once: one
        timer and one loop pass fewer, nothing observable in between. False: arm the timer as usual."""
        sel = self._vselector
        if self._ready or self._stopping or self._debug or sel._poll or not when > sel.vtime:  # type: ignore[attr-defined]
            return False
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if scheduled and scheduled[0][0] < when + self._clock_resolution:
            return False  # another timer runs in (or before) that pass
        n = len(scheduled)
        cancelled = self._timer_cancelled_count  # type: ignore[attr-defined]
        if n >= base_events._MIN_SCHEDULED_TIMER_HANDLES and (  # type: ignore[attr-defined]
                cancelled / (n + 1) > base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION  # type: ignore[attr-defined]
                or (n and cancelled / n > base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION)):  # type: ignore[attr-defined]
            return False  # the timer's pass, or its claim, would rebuild the heap: let them
        # the timer's push and pop (it is the strict minimum: it goes to the root and comes straight back out); with
        # distinct times the heap is left as it was, with ties the layout may move, so do exactly that
        _heappush(scheduled, (when, self._probe))
        _heappop(scheduled)
        sel.vtime = when
        while scheduled and scheduled[0][1]._cancelled:  # what the claim does first
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            _heappop(scheduled)[1]._scheduled = False
        return True

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,
                context: Context | None = None) -> asyncio.TimerHandle:
        """``BaseEventLoop.call_at`` with the handle's fields set here instead of through the generic
        ``Handle``/``TimerHandle`` constructors (same fields; debug mode builds it the stock way), pushed as its
        ``(when, timer)`` pair (see the class docstring). Errors go the stock way (raised before any push)."""
        if when is None or self._closed:  # type: ignore[attr-defined]
            return super().call_at(when, callback, *args, context=context)
        if self._debug:  # type: ignore[attr-defined]
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
            timer = _Timer(when, callback, args, self, context)
            if timer._source_traceback:  # type: ignore[attr-defined]
                del timer._source_traceback[-1]  # type: ignore[attr-defined]
        else:
            timer = _fill(_new(_Timer), self, callback, args, context)
            timer._when = when
        _heappush(self._scheduled, (when, timer))  # type: ignore[attr-defined]
        timer._scheduled = True
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any,
                   context: Context | None = None) -> asyncio.TimerHandle:
        """``BaseEventLoop.call_later``: a timer at ``time() + delay`` (read straight from the selector)."""
        if delay is None or self._debug:  # type: ignore[attr-defined]
            return super().call_later(delay, callback, *args, context=context)
        return self.call_at(self._vselector.vtime + delay, callback, *args, context=context)

    def _call_soon(self, callback: Callable[..., object], args: tuple[Any, ...],
                   context: Context | None) -> events.Handle:
        """``BaseEventLoop._call_soon`` with the handle's fields set here (as :meth:`call_at`)."""
        if self._debug:  # type: ignore[attr-defined]
            return super()._call_soon(callback, args, context)  # type: ignore[misc, no-any-return]
        handle = _fill(_new(events.Handle), self, callback, args, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def _run_once(self) -> None:
        """Passes of asyncio's ``BaseEventLoop._run_once`` (CPython 3.11), step for step: the same heap operations in
        the same order, so timers due at the same instant run in the same order as under the stock pass. Inlined
        because a replay day is ~100k passes and the stock pass's method calls (``time()``, ``select()``, an empty
        ``_process_events``) cost about as much as the callbacks themselves. The rare paths (debug mode, a heap
        rebuild after many cancellations, real file descriptors to poll, no timer at all) run the stock pass
        (:meth:`_stock_pass`).

        One call runs pass after pass until a callback stops the loop: ``run_forever`` does nothing between two passes
        but test ``_stopping``, so looping here runs the same passes without its call and this method's set-up per
        pass (every check of the pass is still made at the start of each)."""
        scheduled = self._scheduled  # type: ignore[attr-defined]
        sel = self._vselector
        ready = self._ready  # type: ignore[attr-defined]
        heappop = _heappop
        min_handles = base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
        max_cancelled = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION  # type: ignore[attr-defined]
        append, popleft = ready.append, ready.popleft
        while True:
            n = len(scheduled)
            if (self._debug or sel._poll or not scheduled  # type: ignore[attr-defined]
                    or (n > min_handles and self._timer_cancelled_count / n > max_cancelled)):  # type: ignore[attr-defined]
                self._stock_pass()
                return
            while scheduled and scheduled[0][1]._cancelled:
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
                heappop(scheduled)[1]._scheduled = False
            if scheduled and not ready and not self._stopping:  # type: ignore[attr-defined]
                when = scheduled[0][0]
                if when > sel.vtime:
                    sel.vtime = when  # what VirtualSelector.select does for this wait: land on the timer's own time
            elif not scheduled and not ready and not self._stopping:  # type: ignore[attr-defined]
                self._stock_pass()  # only cancelled timers were left: a blocking wait
                return
            end_time = sel.vtime + self._clock_resolution
            while scheduled and scheduled[0][0] < end_time:
                handle = heappop(scheduled)[1]
                handle._scheduled = False
                append(handle)
            for _ in range(len(ready)):
                handle = popleft()
                if not handle._cancelled:
                    try:  # Handle._run, inlined
                        handle._context.run(handle._callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        _report(handle, exc)
            if self._stopping:  # type: ignore[attr-defined]
                return  # run_forever ends here

    def _stock_pass(self) -> None:
        """One pass of asyncio's ``BaseEventLoop._run_once`` (CPython 3.11), line for line, on the heap of ``(when,
        timer)`` pairs: the rare paths of :meth:`_run_once` (debug mode, a heap rebuild after many cancellations, real
        file descriptors to poll, a blocking wait)."""
        if (len(self._scheduled) > base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
                and self._timer_cancelled_count / len(self._scheduled)  # type: ignore[attr-defined]
                > base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION):  # type: ignore[attr-defined]
            new_scheduled = []
            for entry in self._scheduled:  # type: ignore[attr-defined]
                if entry[1]._cancelled:
                    entry[1]._scheduled = False
                else:
                    new_scheduled.append(entry)
            heapq.heapify(new_scheduled)
            self._scheduled = new_scheduled
            self._timer_cancelled_count = 0
        else:
            while self._scheduled and self._scheduled[0][1]._cancelled:  # type: ignore[attr-defined]
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
                heapq.heappop(self._scheduled)[1]._scheduled = False  # type: ignore[attr-defined]
        timeout = None
        if self._ready or self._stopping:  # type: ignore[attr-defined]
            timeout = 0
        elif self._scheduled:  # type: ignore[attr-defined]
            when = self._scheduled[0][0]  # type: ignore[attr-defined]
            timeout = min(max(0, when - self.time()), base_events.MAXIMUM_SELECT_TIMEOUT)  # type: ignore[attr-defined]
        event_list = self._selector.select(timeout)  # type: ignore[attr-defined]
        self._process_events(event_list)  # type: ignore[attr-defined]
        event_list = None
        end_time = self.time() + self._clock_resolution
        while self._scheduled and self._scheduled[0][0] < end_time:  # type: ignore[attr-defined]
            handle = heapq.heappop(self._scheduled)[1]  # type: ignore[attr-defined]
            handle._scheduled = False
            self._ready.append(handle)  # type: ignore[attr-defined]
        for _ in range(len(self._ready)):  # type: ignore[attr-defined]
            handle = self._ready.popleft()  # type: ignore[attr-defined]
            if handle._cancelled:
                continue
            if self._debug:  # type: ignore[attr-defined]
                try:
                    self._current_handle = handle
                    t0 = self.time()
                    handle._run()
                    dt = self.time() - t0
                    if dt >= self.slow_callback_duration:
                        logger.warning("Executing %s took %.3f seconds", base_events._format_handle(handle), dt)  # type: ignore[attr-defined]
                finally:
                    self._current_handle = None
            else:
                handle._run()
        handle = None  # breaks cycles when an exception occurs (as the stock pass does)

    def _next_timer_when(self) -> float | None:
        scheduled = self._scheduled  # the timer heap of (when, timer) pairs; earliest first
        return scheduled[0][0] if scheduled else None

    def time(self) -> float:
        """Virtual seconds (instances answer through the equivalent C-level partial set in ``__init__``)."""
        return self._vselector.vtime


_H = TypeVar("_H", bound=events.Handle)


def _fill(handle: _H, loop: asyncio.AbstractEventLoop, callback: Callable[..., object], args: tuple[Any, ...],
          context: Context | None) -> _H:
    """The fields ``Handle.__init__`` sets outside debug mode, on a handle made with ``object.__new__``."""
    handle._context = copy_context() if context is None else context  # type: ignore[attr-defined]
    handle._loop = loop  # type: ignore[attr-defined]
    handle._callback = callback  # type: ignore[attr-defined]
    handle._args = args  # type: ignore[attr-defined]
    handle._cancelled = False  # type: ignore[attr-defined]
    handle._repr = None  # type: ignore[attr-defined]
    handle._source_traceback = None  # type: ignore[attr-defined]
    return handle


def _report(handle: events.Handle, exc: BaseException) -> None:
    """What ``Handle._run`` does with a callback's exception: hand it to the loop's exception handler."""
    cb = format_helpers._format_callback_source(handle._callback, handle._args)  # type: ignore[attr-defined]
    context = {"message": f"Exception in callback {cb}", "exception": exc, "handle": handle}
    if handle._source_traceback:  # type: ignore[attr-defined]
        context["source_traceback"] = handle._source_traceback  # type: ignore[attr-defined]
    handle._loop.call_exception_handler(context)  # type: ignore[attr-defined]


def run_virtual(coro: Coroutine[Any, Any, T], *, start: float = 0.0, debug: bool = False) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop` starting at ``start`` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start), debug=debug) as runner:
        return runner.run(coro)


def virtual_clock(epoch0: float | None = None) -> LoopClock:
    """The bot's clock on the running virtual loop. With ``epoch0`` omitted the loop time *is* epoch time (the loop
    was started at the replay's start epoch); otherwise ``now() = epoch0 + (loop.time() - loop time at creation)``."""
    loop = asyncio.get_running_loop()
    return LoopClock(loop.time() if epoch0 is None else epoch0, loop)


async def sleep_until(when: float) -> None:
    """Sleep until the running loop's time is exactly ``when`` (no relative-delay rounding)."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        return
    fut = loop.create_future()
    handle = loop.call_at(when, fut.set_result, None)
    try:
        await fut
    finally:
        handle.cancel()
