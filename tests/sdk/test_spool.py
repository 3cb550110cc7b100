"""The spool: bounded files of unsent batches, replayed exactly once."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from mltrail.core.types import LogBatch, LogLine, MetricBatch, Status
from mltrail.sdk.records import (
    decode_logs,
    decode_metrics,
    encode_logs,
    encode_metrics,
    encode_status,
    read_record,
)
from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning, target_of
from mltrail.sdk.sync import replay
from mltrail.sdk.writer import Writer
from mltrail.store.http import HttpStore
from support.factories import batch, chunk
from support.servers import free_port


def _batch(seq: int, n: int = 10, start: int = 0) -> MetricBatch:
    values = np.linspace(0, 1, n)
    values[0] = math.nan
    return batch(
        seq, chunk("loss", range(start, start + n), values, t0=time.time()), client="client"
    )


def test_metric_and_log_records_round_trip_exactly():
    batch = _batch(3)
    back = decode_metrics({"client_id": "client", **encode_metrics(batch)})
    assert back.seq == 3 and back.client_id == "client"
    [chunk] = back.chunks
    np.testing.assert_array_equal(chunk.values, batch.chunks[0].values)  # NaN included
    np.testing.assert_array_equal(chunk.iterations, batch.chunks[0].iterations)
    logs = LogBatch("c", 4, (LogLine(1.5, "stdout", "INFO", "hé\tllo"),))
    assert decode_logs({"client_id": "c", **encode_logs(logs)}) == logs


def test_spool_over_limit_drops_oldest_with_a_warning(tmp_path):
    spool = Spool(tmp_path / "spool", limit_bytes=1_000_000)
    first = spool.write(RunAddress("t", (1, 1)), "c", encode_metrics(_batch(1, n=100)))
    size = first.stat().st_size
    spool.limit_bytes = int(size * 2.5)
    spool.write(RunAddress("t", (1, 1)), "c", encode_metrics(_batch(2, n=100)))
    with pytest.warns(SpoolWarning, match="dropped the oldest unsent batch"):
        spool.write(RunAddress("t", (1, 1)), "c", encode_metrics(_batch(3, n=100)))
    assert not first.exists()
    assert len(spool.files()) == 2
    assert spool.size_bytes() <= spool.limit_bytes


def test_a_batch_larger_than_the_limit_is_dropped_with_a_warning(tmp_path):
    spool = Spool(tmp_path / "spool", limit_bytes=100)
    with pytest.warns(SpoolWarning, match="over the spool limit"):
        assert spool.write(RunAddress("t", (1, 1)), "c", encode_metrics(_batch(1))) is None
    assert spool.files() == []


def test_writer_spools_when_the_store_is_unreachable_and_sync_stores_once(settings, store):
    exp = store.create_experiment(store.create_project("offline").id)
    dead = HttpStore(f"http://127.0.0.1:{free_port()}", "token", retries=0)
    spool = Spool.from_settings(settings)
    target = target_of(settings)
    writer = Writer(
        dead, exp.project_id, exp.experiment_id, spool=spool, target=target, retry_delays=(0.01,)
    )
    writer.add_points("train", 0, -1, time.time(), {"loss": 1.0, "acc": 0.5})
    writer.add_line(LogLine(time.time(), "stdout", "INFO", "offline line"))
    writer.add_link("a" * 40, 0, None)
    with pytest.warns(SpoolWarning, match="unreachable"):
        writer.flush()
    spool.write(
        RunAddress(target, (exp.project_id, exp.experiment_id)),
        writer.client_id,
        encode_status(Status.DONE),
    )
    assert len(spool.files()) == 4 and writer.spooled_batches == 3
    bodies = [f.read_bytes() for f in spool.files()]

    result = replay(spool, store, target)
    assert (result.sent, result.points, result.lines, result.remaining) == (4, 2, 1, 0)
    assert spool.files() == []
    p, e = exp.project_id, exp.experiment_id
    assert sorted((s.name, s.count) for s in store.list_series(p, e)) == [
        ("train/acc", 1),
        ("train/loss", 1),
    ]
    assert [ln.message for ln in store.read_logs(p, e)] == ["offline line"]
    assert [w.weights_hash for w in store.list_weights_links(p, e)] == ["a" * 40]
    assert store.get_experiment(p, e).status is Status.DONE

    # a second copy of a stored batch (a replay after a lost answer) is not stored again
    records = [read_record(b) for b in bodies[:2]]
    assert [r.kind for r in records] == ["metrics", "logs"]
    assert all(r.send(store, p, e) == 0 for r in records)
    assert sorted(s.count for s in store.list_series(p, e)) == [1, 1]
    assert len(store.read_logs(p, e)) == 1
    dead.close()


def test_files_for_another_target_are_left_alone(settings, store):
    spool = Spool.from_settings(settings)
    spool.write(RunAddress("http://elsewhere:5870", (1, 1)), "c", encode_metrics(_batch(1)))
    result = replay(spool, store, target_of(settings))
    assert (result.sent, result.other_target) == (0, 1)
    assert len(spool.files()) == 1


def test_refused_and_unreadable_files_move_aside_and_the_rest_goes_on(settings, store):
    """A 4xx-refused batch, an unreadable file and valid JSON missing a field each go to
    rejected/ with the reason beside them; the good batches around them are stored."""
    exp = store.create_experiment(store.create_project("poison").id)
    p, e = exp.project_id, exp.experiment_id
    spool, target = Spool.from_settings(settings), target_of(settings)
    spool.write(RunAddress(target, (p, e)), "c", encode_metrics(_batch(1, start=0)))
    spool.write(RunAddress(target, (99, 1)), "c", encode_metrics(_batch(2)))  # no project 99: a 404
    broken = spool.write(RunAddress(target, (p, e)), "c", encode_metrics(_batch(3, start=10)))
    broken.write_bytes(b"\x00\xffnot json")
    partial = spool.write(RunAddress(target, (p, e)), "c", encode_metrics(_batch(4, start=20)))
    body = json.loads(partial.read_bytes())
    del body["chunks"]
    partial.write_bytes(json.dumps(body).encode())
    spool.write(RunAddress(target, (p, e)), "c", encode_metrics(_batch(5, start=30)))
    with pytest.warns(SpoolWarning, match="set aside") as caught:
        result = replay(spool, store, target)
    assert (result.sent, result.rejected, result.remaining, result.points) == (2, 3, 0, 20)
    assert len(caught) == 3
    assert spool.files() == []
    reasons = [f.with_suffix(".error").read_text() for f in spool.rejected()]
    assert "refused by the store" in reasons[0] and "project" in reasons[0]
    assert "not JSON" in reasons[1]
    assert "missing field 'chunks'" in reasons[2]
    assert store.read_series(p, e, "loss", "train").iterations.tolist() == [
        *range(10),
        *range(30, 40),
    ]
