"""The packed body of a points batch (``MLTC``: the chunks as stored, what HttpStore sends):
values exact to the bit through a real server, the bytes kept as sent, and every malformed or
inflating body a 422 naming its field, never a 5xx."""

from __future__ import annotations

import sqlite3
import struct
import zlib

import numpy as np
import pytest

from mltrail.core.chunk_codec import encode_chunk, pack_chunks, unpack_chunk
from mltrail.core.errors import ValidationError
from mltrail.core.series_codec import (
    MAX_PACKED_POINTS,
    POINTS_MEDIA_TYPE,
    metric_batch_from_binary,
    metric_batch_to_packed,
    series_from_packed,
)
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore
from server.test_points_binary import ODD_BITS, _bits
from support.clients import error_of


def _pack(chunk: SeriesChunk) -> SeriesChunk:
    return pack_chunks([chunk])[0]


def _chunk(key: str = "loss", n: int = 6, start: int = 0) -> SeriesChunk:
    iterations = start + np.arange(n, dtype=np.int64) * 3
    epochs = np.where(iterations % 2 == 0, -1, iterations // 2)
    values = np.resize(ODD_BITS, n)
    values[6:] = np.random.default_rng(n).standard_normal(max(n - 6, 0))
    return SeriesChunk(key, "train", iterations, epochs, values, 1.7e9 + np.arange(n) * 0.125)


def _post(client, experiment: str, body: bytes):
    return client.post(experiment + "/points", content=body,
                       headers={"Content-Type": POINTS_MEDIA_TYPE})  # fmt: skip


def test_a_packed_batch_round_trips_and_keeps_the_bytes_sent():
    batch = MetricBatch("c", 7, (_chunk(), _chunk("acc", 1), _pack(_chunk("lr", 500))))
    body = metric_batch_to_packed(batch)
    assert body[:4] == b"MLTC"
    back = metric_batch_from_binary(body)
    assert (back.client_id, back.seq) == ("c", 7)
    for sent, got in zip(batch.chunks, back.chunks, strict=True):
        assert (got.key, got.phase, len(got)) == (sent.key, sent.phase, len(sent))
        assert got.iterations.tolist() == sent.iterations.tolist()
        assert got.epochs.tolist() == sent.epochs.tolist()
        assert _bits(got.values) == _bits(sent.values)
        assert got.times.tolist() == sent.times.tolist()  # whole milliseconds: kept exactly
        assert got.packed == encode_chunk(sent)  # the bytes a store keeps, as packed


def test_a_packed_batch_is_stored_exactly_and_once(client, experiment):
    body = metric_batch_to_packed(MetricBatch("c", 1, (_chunk(n=300),)))
    assert _post(client, experiment, body).json() == {"stored": 300}
    assert _post(client, experiment, body).json() == {"stored": 0}  # the same (client_id, seq)
    later = metric_batch_to_packed(MetricBatch("c", 2, (_chunk(n=50, start=900),)))
    assert _post(client, experiment, later).json() == {"stored": 50}
    read = client.get(experiment + "/series/read",
                      params={"key": "loss", "phase": "train", "format": "packed"})  # fmt: skip
    series = series_from_packed(read.json())
    want = [_chunk(n=300), _chunk(n=50, start=900)]
    assert _bits(series.values) == _bits(np.concatenate([c.values for c in want]))
    assert series.iterations.tolist() == [i for c in want for i in c.iterations.tolist()]
    summary = client.get(experiment + "/series").json()
    assert summary[0]["count"] == 350 and summary[0]["last_iteration"] == 900 + 49 * 3


def test_the_store_keeps_packed_bytes_only_for_a_chunk_stored_as_it_came(tmp_path):
    """Two chunks of one series in a batch, or a chunk out of iteration order, are merged or
    sorted and packed again: what is read back is the points, in iteration order."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'packed.db'}")
    project = store.create_project("p").id
    exp = store.create_experiment(project).experiment_id
    late, early = _pack(_chunk(n=4, start=100)), _pack(_chunk(n=4))
    backwards = _pack(SeriesChunk("b", "train", np.array([5, 1]), np.array([-1, -1]),
                                       np.array([0.5, 1.5]), np.array([1.7e9, 1.7e9])))  # fmt: skip
    kept = _pack(_chunk("kept", 9))
    batch = MetricBatch("c", 1, (late, early, backwards, kept))
    assert store.append_points(project, exp, batch) == 19
    with sqlite3.connect(tmp_path / "packed.db") as db:
        stored = {row[0] for row in db.execute("SELECT data FROM metric_chunks")}
    assert kept.packed in stored and backwards.packed not in stored
    loss = store.read_series(project, exp, "loss", "train")
    assert loss.iterations.tolist() == [0, 3, 6, 9, 100, 103, 106, 109]
    b = store.read_series(project, exp, "b", "train")
    assert (b.iterations.tolist(), b.values.tolist()) == ([1, 5], [1.5, 0.5])


def _packed_body(entries: list[dict], data: bytes) -> bytes:
    import json

    head = json.dumps({"client_id": "c", "seq": 1, "chunks": entries}).encode()
    head += b" " * (-(8 + len(head)) % 8)
    return b"MLTC" + struct.pack("<I", len(head)) + head + data


GOOD = encode_chunk(_chunk(n=6))


def _entry(n: int = 6, size: int = len(GOOD)) -> dict:
    return {"key": "loss", "phase": "train", "n": n, "size": size}


def _constant_chunk(n: int) -> bytes:
    """A chunk whose 32 planes are all constant: a few bytes whatever ``n`` announces."""
    return struct.pack("<BqqI", 1, 0, 0, 0xFFFFFFFF) + bytes(32) + zlib.compress(b"", 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_packed_body([{"key": "loss", "phase": "train", "n": 6}], GOOD), "chunks[0].size"),
        (_packed_body([_entry(size=-1)], GOOD), "chunks[0].size"),
        (_packed_body([_entry()], GOOD[:-1]), "body"),  # a byte short of what is announced
        (_packed_body([_entry()], GOOD + b"\0"), "body"),
        (_packed_body([_entry(size=10)], GOOD[:10]), "chunks[0].data"),  # shorter than a header
        (_packed_body([_entry()], b"\x09" + GOOD[1:]), "chunks[0].data"),  # another format
        (_packed_body([_entry()], b"\2" + GOOD[1:]), "chunks[0].data"),  # float32 of 64 bits
        (_packed_body([_entry()], GOOD[:-4] + b"abcd"), "chunks[0].data"),  # corrupt deflate
        (_packed_body([_entry(n=5)], GOOD), "chunks[0].data"),  # inflates past 5 points
        (_packed_body([_entry(n=7)], GOOD), "chunks[0].data"),  # short of 7 points
        (_packed_body([_entry(size=len(GOOD) + 3)], GOOD + b"xyz"), "chunks[0].data"),
        (_packed_body([_entry(n=MAX_PACKED_POINTS + 1, size=61)], _constant_chunk(1)), "chunks"),
        (_packed_body([_entry(n=0)], GOOD), "chunks[0].n"),
    ],
)
def test_a_malformed_packed_body_is_422_naming_its_field(client, experiment, body, field):
    error = error_of(_post(client, experiment, body), 422)
    assert (error["type"], error["field"]) == ("validation_error", field), error
    assert error["message"]


def test_the_points_inside_a_packed_chunk_are_checked_as_raw_ones_are(client, experiment):
    negative = SeriesChunk("loss", "train", np.array([-3]), np.array([-1]), np.array([1.0]),
                           np.array([1.7e9]))  # fmt: skip
    far = SeriesChunk("loss", "train", np.array([1]), np.array([-1]), np.array([1.0]),
                      np.array([1e14]))  # fmt: skip
    for chunk, field in ((negative, "loss.iteration"), (far, "loss.time")):
        body = metric_batch_to_packed(MetricBatch("c", 1, (chunk,)))
        assert error_of(_post(client, experiment, body), 422)["field"] == field
    assert client.get(experiment + "/series").json() == []


def test_a_chunk_announcing_more_points_than_it_holds_never_inflates():
    """Every plane constant: 61 bytes could stand for any number of points; the count a body
    may announce is capped, so a few bytes never take more memory than a raw body could."""
    assert len(_constant_chunk(1)) == 61
    ok = unpack_chunk(_constant_chunk(1000), 1000, "c")
    assert ok[0].tolist() == [0] * 1000
    body = _packed_body([_entry(n=MAX_PACKED_POINTS + 1, size=61)], _constant_chunk(1))
    with pytest.raises(ValidationError) as err:
        metric_batch_from_binary(body)
    assert err.value.field == "chunks" and f"at most {MAX_PACKED_POINTS}" in err.value.message
