"""The writer's CPU work goes first: threads calling ``exp.log`` give way while it runs.

With several threads logging, the writer's thread waits for the GIL behind all of them each
time it lets it go (numpy and zlib do, once per chunk packed), a switch interval (5 ms) per
thread queued ahead of it: with 8 threads logging, packing a 50,000-point batch took 0.35-0.56 s
instead of 17 ms, so batches reached the server only once logging stopped, and the server's
core idled meanwhile. While the writer cuts and packs a drain's batches, pure CPU work
bounded by the batch's size, logging threads wait on a lock instead of queueing for the GIL,
so the writer gets it back at once. Never while it sends, retries, spools or waits for the
buffer lock (an overflow holds that across the spool's disk), and a logging thread waits at
most :data:`GIVE_WAY_SECONDS`: a stall of the writer never freezes training.

Each time the writer's thread waits (for an answer, a lock, the packing's zlib), it queues
for the GIL again behind every logging thread, a switch interval each. So while the writer
drains, :func:`quick_switches` lowers the interpreter's switch interval to
:data:`DRAIN_SWITCH_SECONDS` (from Python's 5 ms), and puts back what it found once the last
drain of the process ends (unless something else changed it meanwhile). Measured with 8
threads running Python code and one waiting 15 ms at a time: its wait for the GIL afterwards
fell from a median of 19-20 ms to 4 ms, the busy threads' work per CPU second by 0-4%. This
is process-wide: other threads switch more often too, during drains only.

Waking the writer's thread is a wait for the GIL too: it was asleep, so it queues behind every
logging thread, a switch interval each (5 ms, not yet lowered: no drain runs). With 8 threads
logging, its first wait for the GIL was 30-100 ms, each time the buffer filled a batch: it cut
and sent a third of the batches while they logged and the rest after (the store idle, then
the run waiting for it). So the logging thread that wakes the idle writer :meth:`summons
<WriterPriority.summon>` it: logging threads give way until its thread runs
(:meth:`WriterPriority.arrive`), at most :data:`SUMMON_SECONDS`, and it takes the GIL at once.

The writer's other threads queue for the GIL the same way each time they wait: the sender after
each answer, the packer after each zlib call, the writer for a lock. With 8 threads logging,
the store's answers were read and the next cuts made late, the store idled, the buffer grew
past the writer's cap (compactions: more CPU, and a buffer lock the next cut waited for), and
most batches were sent after logging stopped: the bench's 8 threads waited 0.10-0.38 s for the
store at the end against 0.03 s for one thread. So past a batch and a fifth buffered, threads
logging at once wait for the writer's next take (:class:`CatchUp`), out of the GIL's queue, at
most :data:`CATCH_UP_SECONDS` a call, and only while the store answers fast. One thread
logging never waits there: the queue it makes is one deep. A slow store gets compacted records,
as before.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

GIVE_WAY_SECONDS = 1.0  # the longest a logging thread waits for the writer's CPU work
# the longest a drain waits for another holder: a hold leaked by an interrupt
# must not freeze the writer, so past it the drain runs without priority
HOLD_WAIT_SECONDS = 5.0
SUMMON_SECONDS = 0.02  # the longest logging threads wait for a summoned writer's thread to run
CATCH_UP_SECONDS = 0.02  # the longest one exp.log call waits for the writer's next take

DRAIN_SWITCH_SECONDS = 0.001  # the interpreter's switch interval while a writer drains

_ALL: weakref.WeakSet[WriterPriority] = weakref.WeakSet()
_switching = threading.Lock()  # guards the three below; held for no I/O, no waiting
_draining = 0  # drains running in the process under quick_switches
_found = 0.0  # the switch interval the first of them found
_lowered = 0.0  # the switch interval it set (0: it set none, the interval was lower already)


class WriterPriority:
    """While one thread runs :meth:`hold`, or a summoned writer's thread has not run yet
    (:meth:`summon`), other threads' :meth:`give_way` waits for it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # reentrant: a holder that logs does not wait on itself
        self._depth = 0  # holds running (nested ones of the owner); changed by the owner only
        self._arrived = threading.Event()  # set once a summoned writer's thread runs
        self._summoned = False
        self.held = False  # read without the lock by logging threads: a hint, checked per call
        _ALL.add(self)

    @contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[bool]:
        """Run the block ahead of logging threads (CPU work only: no I/O, no waiting); the
        block receives whether it got the priority.

        Args:
            timeout: the longest to wait for another holder, :data:`HOLD_WAIT_SECONDS` if
                None; past it, the block runs without priority.
        """
        wait = HOLD_WAIT_SECONDS if timeout is None else timeout
        lock = self._lock  # the one released: a fork's reset may replace self._lock meanwhile
        acquired = False
        try:  # acquired inside the try: an interrupt right after it still releases the lock
            acquired = lock.acquire(timeout=wait)
            if acquired:
                self._depth += 1
                self.held = True
            yield acquired
        finally:
            if acquired:
                # counted, not the flag found on entry put back: a hold that waited for another
                # thread's (the packer's for the drain's) found True, and put back, every
                # exp.log after gave way to no one
                self._depth -= 1
                self.held = self._depth > 0 or self._summoned
                lock.release()

    def give_way(self) -> None:
        """Wait until the holder is done, or a summoned writer's thread runs (at once for the
        holding thread itself)."""
        if self._summoned:
            self._arrived.wait(SUMMON_SECONDS)
        if self._lock.acquire(timeout=GIVE_WAY_SECONDS):
            if not self._depth:  # no hold running (held may be left from an ended summon)
                self.held = self._summoned
            self._lock.release()

    def summon(self, asleep: Callable[[], bool]) -> None:
        """Give way (this logging thread and the others) until the writer's thread, just woken
        by this one, runs (:meth:`arrive`): at most :data:`SUMMON_SECONDS`.

        Args:
            asleep: whether the writer's thread still sleeps, read once the summon is on: one
                that woke in between has arrived already, and is not waited for.
        """
        self._arrived.clear()
        self._summoned = True
        self.held = True
        if asleep():
            self._arrived.wait(SUMMON_SECONDS)
        self._end_summon()

    def arrive(self) -> None:
        """The writer's thread runs: logging threads waiting for it go on."""
        self._end_summon()
        self._arrived.set()

    def _end_summon(self) -> None:
        self._summoned = False
        self.held = self._depth > 0

    def _reset(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._arrived = threading.Event()
        self._summoned = False
        self.held = False


class CatchUp:
    """Threads logging past the writer's catch-up mark wait for its next take (:meth:`taken`),
    once more than one thread went past it since the last one. Wait and record take no lock:
    a race makes one call wait a little more or less, never longer than
    :data:`CATCH_UP_SECONDS`."""

    def __init__(self) -> None:
        self._taken = threading.Event()  # set, then replaced, at each take
        self._first: int | None = None  # the first thread past the mark since the last take
        self._several = False  # another one went past it too

    def wait(self) -> bool:
        """Called past the mark: True once the next take happened (this thread waited for it),
        False without waiting while this thread is the only one past it."""
        taken, me = self._taken, threading.get_ident()  # a take from now on ends the wait
        if self._first is None:
            self._first = me
            return False
        if self._first == me and not self._several:
            return False
        self._several = True
        return taken.wait(CATCH_UP_SECONDS)

    def taken(self) -> None:
        """The writer took the records: threads waiting go on, the count starts over."""
        self._first, self._several = None, False
        taken, self._taken = self._taken, threading.Event()
        taken.set()


@contextmanager
def quick_switches() -> Iterator[None]:
    """Run the block (a drain) with the switch interval at most :data:`DRAIN_SWITCH_SECONDS`,
    process-wide; the interval found is put back when the last such block ends, unless it
    was changed in between (by the user: theirs stays)."""
    _enter_quick_switches()
    try:
        yield
    finally:
        _leave_quick_switches()


def _enter_quick_switches() -> None:
    global _draining, _found, _lowered
    with _switching:
        if _draining == 0:
            _found, _lowered = sys.getswitchinterval(), 0.0
            if _found > DRAIN_SWITCH_SECONDS:
                sys.setswitchinterval(DRAIN_SWITCH_SECONDS)
                _lowered = sys.getswitchinterval()
        _draining += 1


def _leave_quick_switches() -> None:
    global _draining
    with _switching:
        _draining -= 1
        if _draining == 0 and _lowered and sys.getswitchinterval() == _lowered:
            sys.setswitchinterval(_found)


def _reset_in_child() -> None:
    """A forked child has none of the parent's threads: a hold taken by one never ends, nor
    does a drain (its switch interval is put back)."""
    global _switching, _draining
    for priority in list(_ALL):
        priority._reset()
    _switching = threading.Lock()
    if _draining and _lowered and sys.getswitchinterval() == _lowered:
        sys.setswitchinterval(_found)
    _draining = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
