"""A drain woken by a full batch sends whole batches only: the few points past the last one
wait for the next drain, in front of newer ones; a flush, a close or a timed drain sends all."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.core.wire import parse_json
from mltrail.sdk.outbox import full_batches
from mltrail.sdk.records import decode_metrics
from mltrail.sdk.spool import Spool, SpoolWarning
from mltrail.sdk.writer import Writer


class _Sink:
    """A store that keeps every batch it is sent."""

    def __init__(self) -> None:
        self.batches: list[MetricBatch] = []

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        self.batches.append(batch)
        return batch.point_count


def _chunk(key: str, start: int, n: int) -> SeriesChunk:
    it = np.arange(start, start + n, dtype=np.int64)
    return SeriesChunk(key, "train", it, np.full(n, -1, np.int64), it * 0.5, 1e9 + it)


def _writer(tmp_path, sink: _Sink) -> Writer:  # type: ignore[no-untyped-def]
    return Writer(sink, 1, 1, spool=Spool(tmp_path, 10**9), target="t", batch_points=100,
                  flush_interval=60)  # fmt: skip


def _log(writer: Writer, start: int, stop: int) -> None:
    for i in range(start, stop):
        writer.add_points("train", i, -1, 1e9 + i, {"a": float(i), "b": -float(i)})


def _stored(sink: _Sink) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for batch in sink.batches:
        for chunk in batch.chunks:
            found.setdefault(chunk.key, []).extend(chunk.iterations.tolist())
    return found


def test_full_batches_keeps_the_last_batch_back_only_when_it_is_not_full():
    chunks = [_chunk("a", 0, 130), _chunk("b", 0, 120)]  # 250 points: 100 + 100 + 50
    sent, held = full_batches(chunks, 100)
    assert sum(map(len, sent)) == 200 and sum(map(len, held)) == 50
    assert [(c.key, int(c.iterations[0]), len(c)) for c in held] == [("b", 70, 50)]
    for whole in ([_chunk("a", 0, 200)], [_chunk("a", 0, 60)]):  # full, or one batch only
        assert full_batches(whole, 100) == (whole, [])


def test_a_woken_drain_holds_the_partial_batch_for_the_next_drain(tmp_path):
    sink = _Sink()
    writer = _writer(tmp_path, sink)
    _log(writer, 0, 130)  # 260 points: two full batches and 60 more
    writer._drain(hold_partial=True)
    assert [b.point_count for b in sink.batches] == [100, 100]
    assert writer.buffered_points == 60
    _log(writer, 130, 150)
    writer._drain(hold_partial=True)  # 100 points: one full batch, the held ones first
    assert [b.point_count for b in sink.batches] == [100, 100, 100]
    assert writer.buffered_points == 0
    stored = _stored(sink)
    assert stored == {"a": list(range(150)), "b": list(range(150))}  # each once, in order
    assert [b.seq for b in sink.batches] == [1, 2, 3]  # no number skipped for the held ones


def test_flush_and_close_send_the_held_points(tmp_path):
    sink = _Sink()
    writer = _writer(tmp_path, sink)
    _log(writer, 0, 80)
    writer._drain(hold_partial=True)
    assert writer.buffered_points == 60
    writer.flush()
    assert writer.buffered_points == 0 and _stored(sink)["a"] == list(range(80))
    _log(writer, 80, 160)
    writer._drain(hold_partial=True)
    writer.close()
    assert writer.buffered_points == 0
    assert _stored(sink) == {"a": list(range(160)), "b": list(range(160))}


def test_nothing_is_held_once_points_went_to_the_spool(tmp_path):
    sink = _Sink()
    writer = _writer(tmp_path, sink)
    _log(writer, 0, 80)
    writer._overflowed = True  # the training thread spooled points since the last drain
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpoolWarning)
        writer._drain(hold_partial=True)  # so everything follows them, nothing stays behind
    assert writer.buffered_points == 0
    assert writer.wait_for_spooler(10)


class _Stalled(_Sink):
    """A store whose first call waits (a stalled server) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        self.entered.set()
        assert self.release.wait(60)
        return super().append_points(project_id, experiment_id, batch)


def _spooled(writer: Writer) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in writer.spool.files(writer.client_id):
        for chunk in decode_metrics(parse_json(path.read_bytes())).chunks:
            found.setdefault(chunk.key, []).extend(chunk.iterations.tolist())
    return found


def test_a_close_that_gives_up_on_a_stalled_drain_spools_the_held_points(tmp_path):
    """exp.end(timeout) on a stalled store returns while the writer thread is stuck in a store
    call; the points the drain held back, and that call's batches too, were left only in
    memory, lost when the script then exits (the thread is a daemon) before the call ends:
    they go to the spool. A batch the stuck call still stores is stored once (its seq)."""
    sink = _Stalled()
    writer = _writer(tmp_path, sink)
    _log(writer, 0, 130)  # 260 points, the wake set: the thread's first drain is a woken one
    writer.start()
    try:
        assert sink.entered.wait(60)  # the first full batch is stalled, 60 points held back
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpoolWarning)
            writer.close(timeout=0.5)  # gives up waiting for the stuck thread
        assert writer.buffered_points == 0, "held points left only in memory"
        assert _spooled(writer) == {"a": list(range(130)), "b": list(range(130))}
    finally:
        sink.release.set()
        assert writer._thread is not None
        writer._thread.join(60)
    stored = _stored(sink)  # the stuck call's batch; the rest went behind the spool
    assert stored and all(its == sorted(set(its)) for its in stored.values())  # none twice
