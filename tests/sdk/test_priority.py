"""The writer's priority over logging threads (:mod:`mltrail.sdk.priority`): its holds, the
summon of the sleeping writer's thread by the logging thread that wakes it, the drain's packing
of its batches (:func:`mltrail.sdk.outbox.build_outbox`) and the start of its sender's thread."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.sdk import outbox as outbox_module
from mltrail.sdk import priority as priority_module
from mltrail.sdk.outbox import PACK_AHEAD_POINTS, build_outbox
from mltrail.sdk.priority import DRAIN_SWITCH_SECONDS, WriterPriority, quick_switches
from mltrail.sdk.sender import Sender
from mltrail.sdk.spool import Spool
from mltrail.sdk.writer import Writer


@contextmanager
def _held_by_another_thread(priority: WriterPriority) -> Iterator[threading.Event]:
    """``priority`` held by a thread until the yielded event is set (at the latest on exit)."""
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with priority.hold():
            holding.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait()
    try:
        yield release
    finally:
        release.set()
        thread.join()


def test_a_logging_thread_waits_for_the_hold_to_end():
    priority = WriterPriority()
    with _held_by_another_thread(priority) as release:
        assert priority.held
        threading.Timer(0.05, release.set).start()
        priority.give_way()
        assert not priority.held  # returned once the hold had ended, not before


def test_the_holding_thread_itself_does_not_wait():
    priority = WriterPriority()
    with priority.hold():
        with priority.hold():
            priority.give_way()  # a log from inside the hold (reentrant): returns at once
        assert priority.held  # the inner hold's end leaves the outer one in place
    assert not priority.held


class _SignallingLock:
    """A lock that says when an acquire begins (before it waits)."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock, self.acquiring = lock, threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.acquiring.set()
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()


def test_a_hold_that_waited_for_another_threads_hold_ends_with_no_hold_left():
    # the drain's packer thread asks for the hold while the drain still has it: once both are
    # done, nothing is held, else every exp.log after gave way (an RLock round trip per call,
    # and with 8 logging threads a convoy on it)
    priority = WriterPriority()
    waited = threading.Event()

    def packer() -> None:
        with priority.hold():
            waited.set()

    with _held_by_another_thread(priority) as release:
        signalling = _SignallingLock(priority._lock)
        priority._lock = signalling  # type: ignore[assignment]
        thread = threading.Thread(target=packer)
        thread.start()
        assert signalling.acquiring.wait(10)
        assert not waited.is_set()  # still waiting for the first hold
        release.set()
        thread.join(10)
    assert waited.is_set()
    assert not priority.held


def test_a_hold_that_never_ends_stalls_a_logging_thread_at_most_the_limit(monkeypatch):
    monkeypatch.setattr(priority_module, "GIVE_WAY_SECONDS", 0.05)
    priority = WriterPriority()
    with _held_by_another_thread(priority):
        priority.give_way()  # returns: the writer stuck holding does not freeze training
        assert priority.held


def test_a_hold_that_never_ends_does_not_block_the_drain_forever(monkeypatch):
    # a hold leaked (an interrupt, a stuck thread): the drain's own hold, taken with no
    # timeout as the drain takes it, runs its block without priority once the wait is over
    monkeypatch.setattr(priority_module, "HOLD_WAIT_SECONDS", 0.05)
    priority, ran = WriterPriority(), threading.Event()

    def drain() -> None:
        with priority.hold():
            ran.set()

    with _held_by_another_thread(priority):
        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        thread.join(30)  # generous: only "it returns" is asserted
        assert ran.is_set() and not thread.is_alive()
        assert priority.held  # still the other thread's hold: the drain did not take it over


def test_a_forked_child_starts_without_the_parents_hold():
    # after fork, the thread holding in the parent does not exist in the child: the reset
    # run at fork gives the child a free lock
    priority = WriterPriority()
    with _held_by_another_thread(priority):
        priority_module._reset_in_child()
        assert not priority.held
        assert priority._lock.acquire(blocking=False)
        priority._lock.release()


def _chunk(key: str, n: int) -> SeriesChunk:
    it = np.arange(n, dtype=np.int64)
    return SeriesChunk(key, "train", it, np.full(n, -1, np.int64), it * 0.5, 1e9 + it * 0.01)


class _Store:
    def append_points(self, *args: object) -> int:
        raise AssertionError("not called by build_outbox")


class _Sink:
    """A store that takes every batch at once."""

    def __init__(self) -> None:
        self.points = 0

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        self.points += batch.point_count
        return batch.point_count


def test_a_lone_large_batch_is_packed_by_the_drain_a_small_one_by_its_store():
    for points, packed in ((PACK_AHEAD_POINTS, True), (PACK_AHEAD_POINTS - 1, False)):
        chunks = [_chunk("a", points // 2), _chunk("b", points - points // 2)]
        outbox = build_outbox(_Store(), "c", itertools.count(1), chunks, [], [], 50_000)  # type: ignore[arg-type]
        ((_, batch, _),) = outbox
        assert [c.packed is not None for c in batch.chunks] == [packed, packed], points
        assert [len(c) for c in batch.chunks] == [len(c) for c in chunks]


def test_a_drains_batches_are_packed_with_the_priority_held(monkeypatch, tmp_path):
    writer = Writer(_Sink(), 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    flush_interval=60)  # fmt: skip
    seen, original = [], outbox_module._packed

    def recording(batch):  # type: ignore[no-untyped-def]
        seen.append((threading.current_thread().name, writer._priority.held))
        packed = original(batch)
        assert all(c.packed is not None for c in packed.chunks)
        return packed

    monkeypatch.setattr(outbox_module, "_packed", recording)
    for i in range(300):  # three batches
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    writer.flush()
    # the first by the drain itself, the others by its packer while the drain sends
    assert seen == [(threading.current_thread().name, True)] + [("mltrail-packer", True)] * 2
    assert writer.store.points == 300  # type: ignore[attr-defined]
    assert not writer._priority.held  # logging threads no longer give way


class _SlowFirstSink(_Sink):
    """A store whose first call says it began and returns once the next batch is packed."""

    def __init__(self) -> None:
        super().__init__()
        self.sending, self.packed_second = threading.Event(), threading.Event()

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        self.sending.set()
        self.packed_second.wait(10)
        return super().append_points(project_id, experiment_id, batch)


def test_the_next_batch_is_packed_while_the_drain_sends(monkeypatch, tmp_path):
    # packing batch k+1 overlaps the store call of batch k (zlib and numpy release the GIL):
    # a drain of 1M points packing each batch in turn was 8-10% slower to commit
    sink, original, during_send = _SlowFirstSink(), outbox_module._packed, []

    def packing(batch):  # type: ignore[no-untyped-def]
        if batch.seq > 1:  # the batches after the first: packed while the first is sent?
            during_send.append(sink.sending.wait(2))
        packed = original(batch)
        if batch.seq == 2:
            sink.packed_second.set()
        return packed

    monkeypatch.setattr(outbox_module, "_packed", packing)
    writer = Writer(sink, 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    flush_interval=60)  # fmt: skip
    for i in range(300):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    writer.flush()
    assert during_send == [True, True]
    assert sink.points == 300 and writer.spooled_batches == 0


def test_a_slow_packing_is_not_a_stalled_store(monkeypatch, tmp_path):
    # packing a drain's batches is the writer's CPU work, not a store call: a training thread
    # past the memory cap must not take it for a stall (and spool the points)
    packing, release = threading.Event(), threading.Event()
    original = outbox_module._packed

    def slow(batch):  # type: ignore[no-untyped-def]
        packing.set()
        release.wait(10)
        return original(batch)

    monkeypatch.setattr(outbox_module, "_packed", slow)
    writer = Writer(_Sink(), 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    stall_seconds=0.01, flush_interval=60)  # fmt: skip
    for i in range(300):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    drain = threading.Thread(target=writer.flush)
    drain.start()
    try:
        assert packing.wait(10)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert not writer._stalled()
            time.sleep(0.01)
    finally:
        release.set()
        drain.join(10)
    assert writer.spooled_batches == 0 and writer.store.points == 300  # type: ignore[attr-defined]


@contextmanager
def _switch_interval_kept() -> Iterator[float]:
    found = sys.getswitchinterval()
    try:
        yield found
    finally:
        sys.setswitchinterval(found)


def test_a_drain_lowers_the_switch_interval_and_puts_it_back():
    with _switch_interval_kept() as found:
        assert found > DRAIN_SWITCH_SECONDS  # Python's default, 5 ms
        with quick_switches():
            assert sys.getswitchinterval() == DRAIN_SWITCH_SECONDS
            with quick_switches():  # a second writer's drain at the same time
                pass
            assert sys.getswitchinterval() == DRAIN_SWITCH_SECONDS  # the first still runs
        assert sys.getswitchinterval() == found


def test_a_switch_interval_the_user_sets_during_a_drain_stays():
    with _switch_interval_kept():
        with quick_switches():
            sys.setswitchinterval(0.02)
        assert sys.getswitchinterval() == 0.02
        sys.setswitchinterval(0.0002)  # lower than the drain's: left alone
        users = sys.getswitchinterval()
        with quick_switches():
            assert sys.getswitchinterval() == users
        assert sys.getswitchinterval() == users


def test_the_writers_thread_sends_with_quick_switches(tmp_path):
    # the writer's thread waits for the GIL after each answer behind every logging thread,
    # a switch interval each: while it drains, the interval is short, and afterwards as found
    with _switch_interval_kept() as found:
        seen: list[float] = []

        class Recording(_Sink):
            def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
                seen.append(sys.getswitchinterval())
                return super().append_points(project_id, experiment_id, batch)

        writer = Writer(Recording(), 1, 1, spool=Spool(tmp_path, 10**9), target="t",
                        batch_points=100, flush_interval=0.01).start()  # fmt: skip
        for i in range(300):
            writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
        writer.close()
        assert seen and set(seen) == {DRAIN_SWITCH_SECONDS}
        assert writer.store.points == 300  # type: ignore[attr-defined]
        assert sys.getswitchinterval() == found


class _CountingLock:
    """A lock that counts the acquires that gave up waiting."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock, self.gave_up = lock, 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self.lock.acquire(blocking, timeout)
        self.gave_up += not got
        return got

    def release(self) -> None:
        self.lock.release()


def test_a_drain_waits_for_a_leaked_hold_once(monkeypatch, tmp_path):
    # a hold that never ends (leaked) costs a drain HOLD_WAIT_SECONDS (5 s), once: the packing
    # inside the drain's hold must not wait for it all over again
    monkeypatch.setattr(priority_module, "HOLD_WAIT_SECONDS", 0.05)
    writer = Writer(_Sink(), 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    flush_interval=60)  # fmt: skip
    for i in range(300):  # three batches: packed by the drain
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    counting = _CountingLock(writer._priority._lock)
    writer._priority._lock = counting  # type: ignore[assignment]
    with _held_by_another_thread(writer._priority):
        drain = threading.Thread(target=writer.flush)
        drain.start()
        drain.join(30)
    assert not drain.is_alive() and counting.gave_up == 1
    assert writer.store.points == 300  # type: ignore[attr-defined]


def test_a_drain_without_a_packer_thread_sends_its_batches_unpacked(monkeypatch, tmp_path):
    # a process at its thread limit: the batches after the first go as they are (their store
    # call packs them), none lost and the drain not waiting for a packing that never runs
    class NoThread:
        def __init__(self, **_: object) -> None:
            pass

        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    sink = _Sink()
    writer = Writer(sink, 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                    flush_interval=60)  # fmt: skip
    for i in range(300):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
    monkeypatch.setattr(outbox_module.threading, "Thread", NoThread)  # the writer's is running
    writer.flush()
    assert sink.points == 300 and writer.spooled_batches == 0


def _summoning(priority: WriterPriority) -> threading.Thread:
    thread = threading.Thread(target=priority.summon, args=(lambda: True,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not priority._summoned and time.monotonic() < deadline:
        time.sleep(0.001)
    return thread


def test_logging_threads_give_way_until_the_summoned_writer_runs(monkeypatch):
    monkeypatch.setattr(priority_module, "SUMMON_SECONDS", 30.0)  # only arrive() ends it
    priority = WriterPriority()
    summoner = _summoning(priority)
    gave_way = threading.Event()

    def log() -> None:
        priority.give_way()
        gave_way.set()

    other = threading.Thread(target=log, daemon=True)
    other.start()
    assert priority.held  # every logging thread sees it at its next call
    assert not gave_way.wait(0.1)  # waits for the writer's thread...
    priority.arrive()  # ...which runs
    assert gave_way.wait(10)
    summoner.join(10)
    assert not summoner.is_alive()
    assert not priority.held  # nothing left to give way to


def test_a_summon_nobody_answers_holds_logging_up_at_most_the_limit(monkeypatch):
    monkeypatch.setattr(priority_module, "SUMMON_SECONDS", 0.05)
    priority = WriterPriority()
    started = time.monotonic()
    priority.summon(lambda: True)  # the writer's thread never runs: the summon ends by itself
    assert time.monotonic() - started < 5  # generous: only "it returns" is asserted
    assert not priority.held
    priority.give_way()  # returns at once: no hold, no summon


def test_a_summon_of_a_writer_that_woke_meanwhile_does_not_wait(monkeypatch):
    # the writer's thread woke (a flush interval) between the logging thread's look and its
    # summon: it has run already, so nobody gives way to it, no drain sees the flag up
    monkeypatch.setattr(priority_module, "SUMMON_SECONDS", 30.0)
    priority = WriterPriority()
    started = time.monotonic()
    priority.summon(lambda: False)
    assert time.monotonic() - started < 5  # generous: not the 30 s
    assert not priority.held


def test_a_summon_during_a_hold_leaves_the_hold_held():
    priority = WriterPriority()
    with priority.hold():
        summoner = _summoning(priority)
        priority.arrive()
        summoner.join(10)
        assert priority.held  # the hold still runs: logging threads still give way
    assert not priority.held


def _writer(tmp_path: Any) -> Writer:
    # a store without heartbeats: the writer's thread carries on without them
    return Writer(_Sink(), 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                  flush_interval=60)  # fmt: skip


def test_the_logging_thread_that_wakes_the_sleeping_writer_summons_it(monkeypatch, tmp_path):
    monkeypatch.setattr(priority_module, "SUMMON_SECONDS", 30.0)  # only its thread ends it
    writer = _writer(tmp_path).start()
    summons, original = [], WriterPriority.summon

    def recording(priority: WriterPriority, asleep: Any) -> None:
        original(priority, asleep)
        summons.append(priority._arrived.is_set())  # ended by the writer's thread running

    monkeypatch.setattr(WriterPriority, "summon", recording)
    try:
        deadline = time.monotonic() + 10
        while not writer._idle and time.monotonic() < deadline:
            time.sleep(0.001)
        for i in range(100):  # a batch: wakes the writer
            writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
        assert summons == [True]
    finally:
        writer.close()
    assert writer.store.points == 100  # type: ignore[attr-defined]
    assert not writer._priority.held


def test_the_writer_starts_its_senders_thread_with_the_priority_held(monkeypatch, tmp_path):
    writer = _writer(tmp_path).start()
    seen, original = [], Sender.hand_over

    def recording(sender: Sender, send: Any) -> bool:
        seen.append(writer._priority.held)
        return original(sender, send)

    monkeypatch.setattr(Sender, "hand_over", recording)
    try:
        for i in range(300):
            writer.add_points("train", i, -1, 1e9 + i, {"a": float(i)})
        deadline = time.monotonic() + 10
        while writer.store.points < 200 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
    finally:
        writer.close()
    assert seen and all(seen)
    assert writer.store.points == 300  # type: ignore[attr-defined]
    assert not writer._priority.held
