"""The writer's thread cuts the next drain while the one before is being sent, and still: one
store call at a time, batches in seq order, a flush waits for everything handed over, and a
close that gives up on a stuck store call spools the batch in that call and the drain cut ahead
instead of losing them."""

from __future__ import annotations

import threading
import time
import warnings

from mltrail.core.types import MetricBatch
from mltrail.core.wire import parse_json
from mltrail.sdk.records import decode_metrics
from mltrail.sdk.sender import Sender
from mltrail.sdk.spool import Spool, SpoolWarning
from mltrail.sdk.writer import Writer


class _Gated:
    """A store whose calls wait until the gate opens; notes calls that overlapped."""

    def __init__(self) -> None:
        self.batches: list[MetricBatch] = []
        self.entered, self.gate = threading.Event(), threading.Event()
        self.active, self.overlapped = 0, False
        self._lock = threading.Lock()

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        with self._lock:
            self.active += 1
            self.overlapped |= self.active > 1
        self.entered.set()
        try:
            assert self.gate.wait(60)
            self.batches.append(batch)
            return batch.point_count
        finally:
            with self._lock:
                self.active -= 1


def _writer(tmp_path, store: _Gated) -> Writer:  # type: ignore[no-untyped-def]
    # stall_seconds: a slow test machine must not make the gated call read as a stall
    return Writer(store, 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                  flush_interval=60, stall_seconds=60)  # fmt: skip


def _log(writer: Writer, start: int, stop: int) -> None:
    for i in range(start, stop):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i), "b": -float(i)})


def _until(condition, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _iterations(chunks_of) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    found: dict[str, list[int]] = {}
    for chunks in chunks_of:
        for chunk in chunks:
            found.setdefault(chunk.key, []).extend(chunk.iterations.tolist())
    return found


def _cut_ahead(writer: Writer, store: _Gated) -> None:
    """A full batch in the store's (waiting) call, the next one cut and waiting for it."""
    writer.start()
    _log(writer, 0, 50)  # 100 points: a full batch wakes the thread
    assert store.entered.wait(60)
    _log(writer, 50, 100)  # the next full batch, logged while the first is in the store
    assert _until(lambda: writer._waiting is not None), "the next drain was not cut meanwhile"
    assert writer.buffered_points == 0


def test_the_next_drain_is_cut_while_the_one_before_is_sent(tmp_path):
    store = _Gated()
    writer = _writer(tmp_path, store)
    try:
        _cut_ahead(writer, store)
        threading.Timer(0.2, store.gate.set).start()
        writer.flush()  # waits for both drains, not only its own (empty) one
        assert _iterations(b.chunks for b in store.batches) == {
            "a": list(range(100)),
            "b": list(range(100)),
        }
        seqs = [b.seq for b in store.batches]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 2
        assert not store.overlapped, "two store calls at once"
    finally:
        store.gate.set()
        writer.close()


def test_a_close_that_gives_up_on_a_stuck_send_spools_its_batch_and_the_drain_cut_ahead(
    tmp_path,
):
    # the stuck call's batch too: the script may exit before the call ends (the threads are
    # daemons), and a batch that call still stores is stored once, by its seq
    store = _Gated()
    writer = _writer(tmp_path, store)
    try:
        _cut_ahead(writer, store)
        _log(writer, 100, 130)  # and some in the buffer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpoolWarning)
            writer.close(timeout=0.5)  # gives up waiting for the stuck thread
        assert writer.wait_for_spooler(10)
        spooled = (
            decode_metrics(parse_json(path.read_bytes())).chunks
            for path in writer.spool.files(writer.client_id)
        )
        assert _iterations(spooled) == {"a": list(range(130)), "b": list(range(130))}
    finally:
        store.gate.set()
        assert writer._thread is not None
        writer._thread.join(60)
    assert writer._sender.wait(60)
    assert _iterations(b.chunks for b in store.batches) == {  # none twice
        "a": list(range(50)),
        "b": list(range(50)),
    }


def test_a_sender_without_a_thread_leaves_the_sending_to_the_caller(monkeypatch):
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    sent: list[int] = []
    sender = Sender("test-sender")
    assert sender.hand_over(lambda: sent.append(1)) is False
    assert sent == [] and not sender.busy and sender.wait(0)
