"""Decision cadence and entry/exit gating (STRATEGY.md §10).

Tick ``k`` runs at ``t_k = t_0 + k·decision_interval_sec`` on the injected clock, with ``t_0`` the next multiple of the
interval in epoch time. Each tick processes one batch of ``symbol_batch_size`` symbols (round-robin over
``trade_pairs`` in order), all with ``now = t_k``: every symbol is evaluated every ⌈N/batch⌉·interval.

A tick at ``t_k`` sees exactly the market events with ``ts <= t_k``: it wakes :data:`SETTLE_SEC` after ``t_k`` and
first awaits the feed consumer's barrier (``sync``), so every batch the feed released up to then is in storage.

Acting on closed candles (``trading.act_on_closed_candles``; live: off, replay's strict no-repaint mode: on). Every
evaluation still runs at its tick, so analyzer state (book-imbalance EMA, history ring, Bayesian decay, composite
EMA, cooldown) advances exactly as live and every signal is logged at its own time. What changes is *when a signal
acts*: its maybe_open / maybe_close (and so REVERSE) is deferred to the close of the candle it was computed in, the
first multiple of ``candle_sec`` at or after its ``ts``, and runs there (a tick time: the setting requires the candle
to be a whole number of intervals) after that tick's evaluations, in evaluation order, with ``now`` = the close. So
an action uses only what completed candles produced: signals stamped ≤ the close, the executor's state at the close,
the book at the close. The executor's own timers (chase, fallback, monitor, protection) are not decisions and keep
running in continuous time. With the setting off, a signal acts in its own tick, as STRATEGY.md §10 says; both paths
are the same code (:meth:`Orchestrator.act`).

Overruns: a tick that ends after the next grid time is counted and logged, the next tick starts immediately (its
``now`` is the actual clock time, because storage already holds events up to it), and the grid points that passed
meanwhile are counted as missed, never replayed. Batch rotation advances by one per tick actually run, so an overrun
cannot starve a batch. (A late tick still acts on every deferred signal up to the last candle close it has passed.)

The orchestrator owns only cadence and gating state (last open attempt, last close per symbol, deferred signals).
Positions are read from the executor's book; the executor's ``on_closed`` callback feeds
:meth:`Orchestrator.on_closed`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from loguru import logger

from bot.analysis import evaluate
from bot.execution.positions import PositionState
from bot.risk import side_dir

if TYPE_CHECKING:
    from bot.analysis import ImbalanceAnalyzer, Signal, SignalGenerator, VolumeAnalyzer
    from bot.clock import Clock
    from bot.storage import DataStorage
    from settings import Settings

OPEN_STATE = PositionState.OPEN
SETTLE_SEC = 1e-5
"""A tick scheduled for ``t_k`` wakes this much later, still evaluating with ``now = t_k``. Converting epoch time to
loop time rounds at ~1e-7 s (float ulp near 1.7e9), so a feed release due exactly at ``t_k`` may be scheduled a hair
after the tick's own wake-up; waking 10 µs late lets it land first. Exchange timestamps have 1 ms resolution, so no
event can fall inside the margin (live, 10 µs is noise)."""
_DIR = {"BUY": 1, "SELL": -1}  # signal action → direction; HOLD (absent) → 0

# maybe_open / maybe_close outcomes (also the keys of Orchestrator.outcomes)
OPENED = "opened"
OPEN_REFUSED = "open_refused"  # executor.open returned False (sizing, book, ...)
WAIT_OPEN_GAP = "min_time_between_trades"  # check 1
WAIT_REOPEN = "reopen_cooldown"  # check 2
NOT_ACTIONABLE = "not_actionable"  # check 3
OHARA_LOW = "ohara_too_low"  # check 4
NO_SLOT = "no_free_slot"  # check 5
HOLD_TOO_SHORT = "min_hold"
HAS_INTENT = "close_pending"
NO_EXIT = "no_exit"
REVERSE = "REVERSE"
OPPOSITE_SIGNAL = "OPPOSITE_SIGNAL"
CLOSE_REFUSED = "close_refused"
SKIP_BOOK = "book_invalid"
BUSY = "position_busy"  # the symbol's record is OPENING or CLOSING: the signal neither opens nor closes


class PositionView(Protocol):
    """What the orchestrator reads from an executor record."""

    state: Any
    side: Any
    opened_at: float | None
    close_intent: Any


class ExecutorPort(Protocol):
    def record(self, sym: str) -> Any: ...
    def live_count(self) -> int: ...
    def open(self, sym: str, direction: int, signal: Signal) -> bool: ...
    def close(self, sym: str, reason: str, *, reenter_signal: Signal | None = None) -> bool: ...


class SignalSink(Protocol):
    def append(self, sig: Signal) -> None: ...


class Decision(NamedTuple):
    """One signal's action: when it was taken, for which signal, and the gate outcome (see the constants above)."""

    ts: float
    symbol: str
    signal_ts: float
    outcome: str


def batches_of(symbols: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Split symbols, in order, into consecutive batches of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"symbol_batch_size must be >= 1, got {size}")
    if not symbols:
        raise ValueError("no symbols to trade")
    return [tuple(symbols[i:i + size]) for i in range(0, len(symbols), size)]


def first_tick_time(now: float, interval: float) -> float:
    """The next multiple of ``interval`` in epoch seconds at or after ``now`` (60 s lands on minute opens)."""
    if not interval > 0:
        raise ValueError(f"decision_interval_sec must be > 0, got {interval}")
    return math.ceil(now / interval) * interval


def _yield_is_void(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True when ``await asyncio.sleep(0)`` here would change nothing: the running loop (the replay's virtual loop,
    through its optional ``claim_pass``) says the task's resumption would run alone in the next pass, and no
    cancellation of this task is pending (it would be delivered at that yield). Then the yield is only a wasted loop
    pass and task step (one per working tick of a replay); a live loop has no ``claim_pass`` and always yields.
    ``loop``: the running loop when the caller already knows it (see :attr:`Orchestrator._loop`)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    claim = getattr(loop, "claim_pass", None)
    if claim is None:
        return False
    task = asyncio.current_task(loop)
    return task is not None and not task.cancelling() and bool(claim())


class Orchestrator:
    """Runs the §10 loop: cadence, per-symbol evaluation, signal logging, maybe_close / maybe_open."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        storage: DataStorage,
        volume: VolumeAnalyzer,
        imbalance: ImbalanceAnalyzer,
        signals: SignalGenerator,
        executor: ExecutorPort,
        *,
        signal_log: SignalSink | None = None,
        symbols: Sequence[str] | None = None,
        sync: Callable[[], Awaitable[None]] | None = None,
        synced: Callable[[], bool] | None = None,
    ) -> None:
        t = settings.trading
        self._clock = clock
        self._storage = storage
        self._vol = volume
        self._imb = imbalance
        self._gen = signals
        self.executor = executor
        self.signal_log = signal_log
        self._sync = sync
        self._synced = synced  # True when ``sync`` would return at once (enables idle ticks without a wake-up)
        self.symbols: tuple[str, ...] = tuple(symbols if symbols is not None else t.trade_pairs)
        self.batches = batches_of(self.symbols, t.symbol_batch_size)
        self.interval = float(t.decision_interval_sec)
        # gating parameters, read once (the settings object is frozen)
        self._min_gap = t.min_time_between_trades_sec
        self._reopen = t.reopen_cooldown_sec
        self._min_hold = t.min_position_hold_time_sec
        self._entry_strength = t.entry_signal_min_strength
        self._close_strength = t.close_on_opposite_strength
        self._reverse = t.reverse_on_opposite
        self._min_ohara = settings.ohara.min_ohara_score_for_trade
        self._max_open = settings.risk.max_open_positions
        self._defer = bool(t.act_on_closed_candles)
        self._candle = float(t.candle_sec)
        self.pending: deque[Signal] = deque()  # signals whose action waits for their candle's close
        # gating state
        self.last_open_attempt: dict[str, float] = {}
        self.last_close: dict[str, float] = {}
        # cadence accounting
        self.t0: float | None = None
        self.ticks = 0
        self.idle_ticks = 0  # ticks run in their timer callback (nothing to do; see _sleep_to_work)
        self.overruns = 0
        self.missed_ticks = 0
        self.tick_times: list[float] | None = None  # set to [] to record each tick's now (tests, diagnostics)
        self._dark: list[bool] | None = None  # per batch: no symbol of it is served by the feed (see ``served``)
        self._owed: list[float] = []  # times of dark ticks passed without a timer, accounted when time reaches them
        self.decisions: list[Decision] | None = None  # set to [] to record every action taken (tests, diagnostics)
        self.outcomes: dict[str, int] = {}
        self.last_signal: dict[str, Signal] = {}
        # called with ``now`` at the start of every working tick, before any evaluation: the one point where nothing
        # is mid-decision (bot.cycle swaps tuned parameters here)
        self.before_tick: list[Callable[[float], None]] = []
        self._stopping = False
        # the loop ``run`` runs on, while it runs: ``asyncio.get_running_loop()`` checks the process id by a system
        # call each time (~3 µs on a virtual machine, twice per working tick otherwise)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------------------------------------ cadence
    async def run(self, until: float | None = None) -> None:
        """Tick until ``stop()``, cancellation, or the next tick would start after ``until`` (epoch seconds)."""
        self._loop = asyncio.get_running_loop()
        try:
            clock, iv = self._clock, self.interval
            self._stopping = False
            t0 = self.t0 = first_tick_time(clock.now(), iv)
            g = 0  # grid index of the next on-time tick
            late_now: float | None = None  # set when the previous tick overran: run the next one right away
            while not self._stopping:
                if late_now is None:
                    skip = self._dark_run(g, until)
                    if skip:
                        self._owed.extend(t0 + (g + i) * iv for i in range(skip))
                        g += skip
                    now = t0 + g * iv
                    if until is not None and now > until:
                        return
                    delay = now - clock.now() + SETTLE_SEC
                    if delay > 0:
                        woke = await self._sleep_to_work(g, delay, until)
                        if woke is None:
                            return
                        g = woke
                        now = t0 + g * iv
                else:
                    now = late_now
                    if until is not None and now > until:
                        return
                if self._owed:
                    self._pay_owed(math.inf)  # passed dark ticks, all before now (a stop would have dropped them)
                await self.tick(now)
                end = clock.now()
                if late_now is None:
                    g += 1
                else:
                    g = math.floor((now - t0) / iv) + 1
                    if t0 + g * iv <= now:
                        g += 1
                t_next = t0 + g * iv
                if end > t_next:
                    missed = math.floor((end - t0) / iv) - g + 1
                    self.overruns += 1
                    self.missed_ticks += missed
                    logger.warning("tick overrun: tick at {:.3f} ended at {:.3f} (+{:.3f}s); {} grid tick(s) missed, "
                                   "overruns so far {}", now, end, end - now, missed, self.overruns)
                    late_now = end
                else:
                    late_now = None
        finally:
            self._loop = None

    async def _sleep_to_work(self, g: int, delay: float, until: float | None) -> int | None:
        """Sleep ``delay`` to grid tick ``g``, then on to the first grid tick with work; return its index, or None
        to stop (``stop()`` or the next tick after ``until``).

        A tick without work (every symbol of its batch has no valid book, the feed barrier is already passed, no
        deferred action is due) is run right in its timer callback instead of waking this task: it has no await and
        changes only the tick accounting, so the outcome is the one the full tick would give, without the task
        wake-up it costs (most ticks of a replay of a few of many trade_pairs). Waits are computed exactly as
        ``asyncio.sleep(delay)`` would schedule them.
        """
        loop = self._loop  # (called from ``run`` only)
        assert loop is not None
        fut: asyncio.Future[int | None] = loop.create_future()
        clock, t0, iv = self._clock, self.t0, self.interval
        assert t0 is not None
        handle: asyncio.TimerHandle | None = None

        def fire(k: int) -> None:
            nonlocal handle
            handle = None
            if fut.done():
                return
            if self._owed:
                self._pay_owed(math.inf)  # all before now: stop() would have paid and dropped them otherwise
            if self._stopping:
                fut.set_result(None)
                return
            if not self._idle_tick(t0 + k * iv):
                fut.set_result(k)
                return
            k += 1
            skip = self._dark_run(k, until)
            if skip:
                self._owed.extend(t0 + (k + i) * iv for i in range(skip))
                k += skip
            nxt = t0 + k * iv
            if until is not None and nxt > until:
                fut.set_result(None)
                return
            handle = loop.call_later(nxt - clock.now() + SETTLE_SEC, fire, k)

        handle = loop.call_later(delay, fire, g)
        try:
            return await fut
        finally:
            if handle is not None:
                handle.cancel()
            if self._owed:
                self._pay_owed(clock.now())
            # ``fire`` re-arms itself, so it holds a reference to itself (through its closure): a cycle that only the
            # cyclic GC would free, a dozen objects per working tick (most of a replay's cyclic garbage). Break it.
            fire = None  # type: ignore[assignment]

    def _idle_tick(self, now: float) -> bool:
        """Run the tick at ``now`` here if it has nothing to do (see :meth:`_sleep_to_work`); False if it has work."""
        if self._synced is None or not self._synced():
            return False
        batch = self.batches[self.ticks % len(self.batches)]
        valid = self._storage.book_valid
        for sym in batch:
            if valid(sym, now):
                return False
        if self._defer and self.pending and self.pending[0].ts <= self.last_close_time(now):
            return False
        self._account_idle(now)
        return True

    def _dark_run(self, k: int, until: float | None) -> int:
        """How many grid ticks from ``k`` on can pass without a timer: dark batches (see :meth:`serve`) before the
        first deferred action falls due (``pending`` changes only in a working tick, so not meanwhile), each followed
        by a tick still within ``until``. Such a tick does nothing whatever the feed has delivered by then."""
        dark = self._dark
        if dark is None:
            return 0
        n, base, t0, iv = len(dark), self.ticks, self.t0, self.interval
        assert t0 is not None
        due = self.pending[0].ts if self._defer and self.pending else math.inf  # first deferred action's stamp
        j = 0
        # (with nothing deferred, ``due > last_close_time(...)`` holds for every finite time: not computed)
        while (j < n and dark[(base + j) % n] and (until is None or t0 + (k + j + 1) * iv <= until)
               and (due == math.inf or due > self.last_close_time(t0 + (k + j) * iv))):
            j += 1
        return 0 if j == n else j  # every batch dark: keep one timer per tick (nothing can ever work anyway)

    def serve(self, symbols: Collection[str] | None) -> None:
        """The symbols the market feed can ever deliver (None: unknown, maybe all). A batch holding none of them can
        never have a valid book, so its ticks are idle by construction: a replay of one of ten ``trade_pairs`` spends
        four of every five ticks on such batches, and :meth:`_sleep_to_work` passes them without a timer each."""
        self._dark = None if symbols is None else [not any(s in symbols for s in b) for b in self.batches]

    def _pay_owed(self, upto: float) -> None:
        """Account the dark ticks passed without a timer whose time is ``<= upto``, in order, as idle ticks; forget
        the rest (a stop or cancellation before them: the tick-per-timer loop would not have run them either)."""
        owed, self._owed = self._owed, []
        for t in owed:
            if t > upto:
                break
            self._account_idle(t)

    def _account_idle(self, now: float) -> None:
        batch = self.batches[self.ticks % len(self.batches)]
        self.ticks += 1
        self.idle_ticks += 1
        if self.tick_times is not None:
            self.tick_times.append(now)
        self.outcomes[SKIP_BOOK] = self.outcomes.get(SKIP_BOOK, 0) + len(batch)

    def stop(self) -> None:
        """Stop after the current tick (a sleeping loop returns when it wakes; callers usually cancel the task)."""
        self._pay_owed(self._clock.now())
        self._stopping = True

    async def tick(self, now: float) -> None:
        """One decision tick: catch up with the feed, then the next batch's symbols in order, all with ``now``."""
        if self._sync is not None and not (self._synced is not None and self._synced()):
            await self._sync()  # (``synced`` True: it would return at once; no coroutine to make and await)
        for hook in self.before_tick:
            hook(now)
        batch = self.batches[self.ticks % len(self.batches)]
        self.ticks += 1
        if self.tick_times is not None:
            self.tick_times.append(now)
        worked = False
        for sym in batch:
            if worked and not _yield_is_void(self._loop):
                await asyncio.sleep(0)  # after an evaluation, let socket readers run (§10: CPU work must not block)
            worked = self.process_symbol(sym, now) is not None  # a skipped symbol (no valid book) did no work
        if self._defer and self.pending:
            self.act_on_closed_candles(now)

    def last_close_time(self, now: float) -> float:
        """The latest candle close at or before ``now`` (a multiple of ``candle_sec`` in epoch time)."""
        c = self._candle
        return math.floor(now / c + 1e-9) * c

    def act_on_closed_candles(self, now: float) -> int:
        """Act, in evaluation order and with ``now``, on every deferred signal stamped at or before the last candle
        close; returns how many acted. Signals of the candle still in progress stay deferred."""
        close = self.last_close_time(now)
        pending = self.pending
        n = 0
        while pending and pending[0].ts <= close:
            sig = pending.popleft()
            self.act(sig.symbol, sig, now)
            n += 1
        return n

    # ----------------------------------------------------------------------------------------------- per symbol
    def process_symbol(self, sym: str, now: float) -> Signal | None:
        """§10 per-symbol steps 1–3 (step 3 deferred when acting on closed candles). Returns the signal, or None when
        the book is invalid or stale (nothing runs)."""
        if not self._storage.book_valid(sym, now):
            self._count(SKIP_BOOK)
            return None
        sig = evaluate(sym, now, self._storage, self._vol, self._imb, self._gen)
        self.last_signal[sym] = sig
        if self.signal_log is not None:
            self.signal_log.append(sig)
        if self._defer:
            self.pending.append(sig)  # acts at its candle's close (act_on_closed_candles)
        else:
            self.act(sym, sig, now)
        return sig

    def act(self, sym: str, sig: Signal, now: float) -> str:
        """§10 step 3: route ``sig`` by the symbol's position state at ``now`` (OPEN → maybe_close, none →
        maybe_open, OPENING/CLOSING → nothing) and return the outcome."""
        rec = self.executor.record(sym)
        if rec is None:
            outcome = self.maybe_open(sym, sig, now)
        elif rec.state is OPEN_STATE:
            outcome = self.maybe_close(sym, sig, rec, now)
        else:
            outcome = BUSY
        if self.decisions is not None:
            self.decisions.append(Decision(now, sym, sig.ts, outcome))
        return outcome

    def maybe_close(self, sym: str, sig: Signal, pos: PositionView, now: float) -> str:
        """Opposite-signal exits on pre-cooldown values; REVERSE when the re-entry would pass the entry gates."""
        opened_at = pos.opened_at
        if opened_at is not None and now - opened_at < self._min_hold:
            return self._count(HOLD_TOO_SHORT)
        if pos.close_intent:
            return self._count(HAS_INTENT)
        pos_dir = side_dir(pos.side)
        raw_dir = _DIR.get(sig.raw_action, 0)
        if raw_dir != -pos_dir or sig.raw_strength < self._close_strength:
            return self._count(NO_EXIT)
        if self._reverse and _DIR.get(sig.action, 0) == -pos_dir and self._entry_ok(sig):
            ok = self.executor.close(sym, REVERSE, reenter_signal=sig)
            return self._count(REVERSE if ok else CLOSE_REFUSED)
        ok = self.executor.close(sym, OPPOSITE_SIGNAL)
        return self._count(OPPOSITE_SIGNAL if ok else CLOSE_REFUSED)

    def maybe_open(self, sym: str, sig: Signal, now: float) -> str:
        """The five entry checks in order; the first failing one is returned (and counted)."""
        last = self.last_open_attempt.get(sym)
        if last is not None and now - last < self._min_gap:
            return self._count(WAIT_OPEN_GAP)
        closed = self.last_close.get(sym)
        if closed is not None and now - closed < self._reopen:
            return self._count(WAIT_REOPEN)
        d = _DIR.get(sig.action, 0)
        if d == 0 or sig.strength < self._entry_strength:
            return self._count(NOT_ACTIONABLE)
        if sig.ohara_score < self._min_ohara:
            return self._count(OHARA_LOW)
        if self.executor.live_count() >= self._max_open:
            return self._count(NO_SLOT)
        ok = self.executor.open(sym, d, sig)
        self.last_open_attempt[sym] = now
        if ok:
            logger.info("{} open {} requested: strength {} ohara {}", sym, sig.action, sig.strength, sig.ohara_score)
        return self._count(OPENED if ok else OPEN_REFUSED)

    def _entry_ok(self, sig: Signal) -> bool:
        """maybe_open checks 3–4 (actionable and strong enough; O'Hara score) for a REVERSE re-entry."""
        return (_DIR.get(sig.action, 0) != 0 and sig.strength >= self._entry_strength
                and sig.ohara_score >= self._min_ohara)

    def on_closed(self, rec: Any) -> None:
        """Executor callback when a position reaches CLOSED: starts the symbol's reopen cooldown."""
        self.last_close[rec.symbol] = self._clock.now()

    def _count(self, outcome: str) -> str:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        return outcome
