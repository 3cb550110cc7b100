"""The log shipper against a real SqlStore: order, batching, and retried batches stored once."""

from __future__ import annotations

import io
import time

import pytest

from mltrail.agent.logship import LogShipper, pump_lines
from mltrail.core.errors import TransportError
from mltrail.core.types import LogBatch
from mltrail.store.sql import SqlStore


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def test_lines_arrive_once_and_in_order_across_batches(store: SqlStore) -> None:
    project = store.create_project("logs").id
    experiment = store.create_experiment(project).experiment_id
    batches: list[int] = []

    def append(batch: LogBatch) -> int:
        batches.append(len(batch.lines))
        return store.append_logs(project, experiment, batch)

    shipper = LogShipper(append, "test-client", flush_seconds=0.05)
    pump_lines(io.BytesIO(b"".join(b"line %d\n" % i for i in range(12_000))), "stdout", shipper)
    shipper.close()
    lines = store.read_logs(project, experiment, limit=100_000)
    assert [x.message for x in lines] == [f"line {i}" for i in range(12_000)]
    assert len(batches) >= 3 and max(batches) <= 5_000  # batched, bounded


def test_a_batch_retried_after_a_transport_fault_is_stored_once(store: SqlStore) -> None:
    project = store.create_project("logs").id
    experiment = store.create_experiment(project).experiment_id
    calls: list[int] = []

    def flaky_append(batch: LogBatch) -> int:
        stored = store.append_logs(project, experiment, batch)
        calls.append(batch.seq)
        if len(calls) == 1:  # stored, but the answer is "lost"
            raise TransportError("connection reset")
        return stored

    shipper = LogShipper(flaky_append, "flaky", flush_seconds=0.05)
    for i in range(5):
        shipper.put("stderr", f"e{i}")
    shipper.close()
    assert calls[:2] == [1, 1]
    assert [x.message for x in store.read_logs(project, experiment)] == [f"e{i}" for i in range(5)]
    assert shipper.lines_sent == 5 and shipper.lines_dropped == 0


def test_lines_wait_at_most_the_flush_interval(store: SqlStore) -> None:
    project = store.create_project("logs").id
    experiment = store.create_experiment(project).experiment_id
    shipper = LogShipper(
        lambda b: store.append_logs(project, experiment, b), "c", flush_seconds=0.2
    )
    shipper.put("stdout", "early")
    deadline = time.monotonic() + 5
    while not store.read_logs(project, experiment) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [x.message for x in store.read_logs(project, experiment)] == ["early"]
    shipper.close()


def test_pump_decodes_bad_bytes_and_strips_line_endings(store: SqlStore) -> None:
    project = store.create_project("logs").id
    experiment = store.create_experiment(project).experiment_id
    shipper = LogShipper(
        lambda b: store.append_logs(project, experiment, b), "c", flush_seconds=0.05
    )
    pump_lines(io.BytesIO(b"caf\xc3\xa9\r\n\xff\xfe\nno newline"), "stdout", shipper)
    shipper.close()
    assert [x.message for x in store.read_logs(project, experiment)] == [
        "café",
        "\ufffd\ufffd",
        "no newline",
    ]


def test_a_job_printing_faster_than_lines_are_sent_waits_and_loses_nothing(
    store: SqlStore,
) -> None:
    """The queue is bounded in bytes: past it the pump waits (backpressure on the job's pipe)."""
    import threading

    from mltrail.agent.logship import MAX_QUEUED_BYTES

    project = store.create_project("logs").id
    experiment = store.create_experiment(project).experiment_id
    gate = threading.Event()

    def stalled_append(batch: LogBatch) -> int:
        gate.wait(60)  # the server is slow: nothing leaves the queue meanwhile
        return store.append_logs(project, experiment, batch)

    shipper = LogShipper(stalled_append, "flood", flush_seconds=0.05)
    line = "x" * 1000
    total = 3 * MAX_QUEUED_BYTES // 1000  # three times what the queue holds
    produced = [0]

    def flood() -> None:
        for _ in range(total):
            shipper.put("stdout", line)
            produced[0] += 1

    producer = threading.Thread(target=flood, daemon=True)
    producer.start()
    producer.join(3)
    assert producer.is_alive(), "the pump should wait while the queue is full"
    assert produced[0] * len(line) <= MAX_QUEUED_BYTES
    gate.set()
    producer.join(120)
    shipper.close()
    assert not producer.is_alive()
    stored = store.read_logs(project, experiment, limit=100_000)
    assert len(stored) == total and shipper.lines_dropped == 0
