"""The binary body of a points batch (``application/vnd.mltrail.points``): values exact to the
bit through a real server, and every malformed body a 4xx naming its field, never a 5xx."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from mltrail.core.errors import ValidationError
from mltrail.core.series_codec import (
    MAX_HEADER_BYTES,
    POINTS_MEDIA_TYPE,
    metric_batch_from_binary,
    metric_batch_to_binary,
    metric_batch_to_packed,
)
from mltrail.core.types import MAX_BATCH_CHUNKS, MetricBatch, SeriesChunk
from mltrail.core.validation import MAX_KEY_LEN
from mltrail.store.http import HttpStore
from support.clients import error_of
from support.servers import unique_name

# NaN with a payload, a negative NaN, infinities, -0.0, the smallest subnormal
ODD_BITS = np.array(
    [0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
     0x8000000000000000, 0x0000000000000001],
    dtype="<u8",
).view("<f8")  # fmt: skip


def _chunk(key: str = "loss", n: int = 6, values: np.ndarray | None = None) -> SeriesChunk:
    iterations = np.arange(n, dtype=np.int64) * 3
    epochs = np.where(iterations % 2 == 0, -1, iterations // 2)
    times = 1.7e9 + np.arange(n) * 0.125
    return SeriesChunk(key, "train", iterations, epochs,
                       ODD_BITS[:n] if values is None else values, times)  # fmt: skip


def _batch(*chunks: SeriesChunk, seq: int = 1) -> MetricBatch:
    return MetricBatch("client-binary", seq, chunks or (_chunk(),))


def _bits(a: np.ndarray) -> list[int]:
    return np.asarray(a, dtype="<f8").view("<u8").tolist()


def test_the_codec_round_trips_every_bit():
    strided = np.linspace(-1.0, 1.0, 20)[::2]  # not contiguous: packed as its values
    batch = _batch(_chunk(), _chunk("acc", 1), _chunk("lr", 10, strided), seq=2**63 - 1)
    body = metric_batch_to_binary(batch)
    assert body[:4] == b"MLTP" and (8 + struct.unpack_from("<I", body, 4)[0]) % 8 == 0
    back = metric_batch_from_binary(body)
    assert (back.client_id, back.seq) == (batch.client_id, batch.seq)
    assert [(c.key, c.phase, len(c)) for c in back.chunks] == [("loss", "train", 6),
                                                                ("acc", "train", 1),
                                                                ("lr", "train", 10)]  # fmt: skip
    for sent, got in zip(batch.chunks, back.chunks, strict=True):
        for column in ("iterations", "epochs"):
            assert getattr(got, column).tolist() == getattr(sent, column).tolist()
        assert _bits(got.values) == _bits(sent.values)
        assert _bits(got.times) == _bits(sent.times)


def _post(client, experiment: str, body: bytes, media_type: str = POINTS_MEDIA_TYPE):
    return client.post(experiment + "/points", content=body, headers={"Content-Type": media_type})


def test_a_binary_batch_is_stored_exactly_and_once(client, experiment):
    body = metric_batch_to_binary(_batch())
    assert _post(client, experiment, body).json() == {"stored": 6}
    assert _post(client, experiment, body).json() == {"stored": 0}  # the same (client_id, seq)
    read = client.get(experiment + "/series/read",
                      params={"key": "loss", "phase": "train", "format": "packed"})  # fmt: skip
    assert read.status_code == 200
    from mltrail.core.series_codec import series_from_packed

    series = series_from_packed(read.json())
    assert _bits(series.values) == _bits(ODD_BITS)
    assert series.iterations.tolist() == [0, 3, 6, 9, 12, 15]
    assert series.epochs.tolist() == [-1, 1, -1, 4, -1, 7]


def test_http_store_sends_binary_and_reads_back_every_bit(shared_server):
    token = shared_server.make_token(unique_name())
    with HttpStore(shared_server.url, token) as store:
        project = store.create_project("binary store").id
        exp = store.create_experiment(project).experiment_id
        values = np.concatenate([ODD_BITS, np.random.default_rng(0).standard_normal(5000)])
        chunk = SeriesChunk("v", "train", np.arange(values.size, dtype=np.int64),
                            np.full(values.size, -1, dtype=np.int64), values,
                            1.7e9 + np.arange(values.size) * 0.5)  # fmt: skip
        assert store.append_points(project, exp, MetricBatch("c", 1, (chunk,))) == values.size
        assert store._FORMS[store._form] == "packed"  # the packed body was taken, no fallback
        series = store.read_series(project, exp, "v", "train")
        assert _bits(series.values) == _bits(values)


def _head(head: bytes, pad: bool = True) -> bytes:
    head += b" " * ((-(8 + len(head)) % 8) if pad else 0)
    return b"MLTP" + struct.pack("<I", len(head)) + head


def _many_chunks(count: int, n: int = 0) -> bytes:
    chunk = b'{"key":"a","phase":"train","n":%d}' % n
    return b'{"client_id":"c","seq":1,"chunks":[' + b",".join([chunk] * count) + b"]}"


GOOD_HEAD = b'{"client_id":"c","seq":1,"chunks":[{"key":"loss","phase":"train","n":2}]}'
COLUMNS = np.zeros(8, dtype="<i8").tobytes()  # 2 points x 4 columns


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"MLT", "body"),
        (b"XXXX" + struct.pack("<I", 2) + b"{}", "body"),  # not the format's magic
        (b"MLTP" + struct.pack("<I", 2**32 - 1) + b"{}", "header"),  # runs past the body
        (_head(b"\xff\xfe{") + COLUMNS, "header"),  # not UTF-8 JSON
        (_head(b"[1, 2]"), "header"),
        (_head(b'{"seq":1,"chunks":[]}'), "client_id"),
        (_head(b'{"client_id":"","seq":1,"chunks":[]}'), "client_id"),
        (_head(b'{"client_id":"c","seq":true,"chunks":[]}'), "seq"),
        (_head(b'{"client_id":"c","seq":-1,"chunks":[]}'), "seq"),
        (_head(b'{"client_id":"c","seq":99999999999999999999999,"chunks":[]}'), "seq"),
        (_head(b'{"client_id":"c","seq":1,"chunks":{}}'), "chunks"),
        (_head(b'{"client_id":"c","seq":1,"chunks":[7]}'), "chunks[0]"),
        (
            _head(b'{"client_id":"c","seq":1,"chunks":[{"key":1,"phase":"train","n":0}]}'),
            "chunks[0].key",
        ),
        (
            _head(b'{"client_id":"c","seq":1,"chunks":[{"key":"a","phase":null,"n":0}]}'),
            "chunks[0].phase",
        ),
        (
            _head(b'{"client_id":"c","seq":1,"chunks":[{"key":"a","phase":"train","n":-1}]}'),
            "chunks[0].n",
        ),
        (
            _head(b'{"client_id":"c","seq":1,"chunks":[{"key":"a","phase":"train","n":2.0}]}'),
            "chunks[0].n",
        ),
        (
            _head(
                b'{"client_id":"c","seq":1,"chunks":[{"key":"a","phase":"train",'
                b'"n":1099511627776}]}'
            ),
            "body",
        ),
        (
            _head(b'{"client_id":"c","seq":1,"chunks":[{"key":"a","phase":"train","n":0}]}'),
            "chunks[0].n",  # an empty chunk means nothing
        ),
        (_head(_many_chunks(MAX_BATCH_CHUNKS + 1)), "chunks"),  # refused before it is read
        (_head(GOOD_HEAD + b" " * MAX_HEADER_BYTES) + COLUMNS, "header"),  # too long to parse
        (_head(GOOD_HEAD) + COLUMNS[:-1], "body"),  # a byte short
        (_head(GOOD_HEAD) + COLUMNS + b"\0", "body"),  # a byte over
        (_head(GOOD_HEAD, pad=False) + COLUMNS[:40], "body"),
        (_head(GOOD_HEAD.replace(b'"train"', b'"dev"')) + COLUMNS, "phase"),  # the store's check
        # a newer client's field is refused by name, not dropped
        (_head(GOOD_HEAD.replace(b'"seq":1', b'"seq":1,"ordered":true')) + COLUMNS, "ordered"),
        (_head(GOOD_HEAD.replace(b'"n":2', b'"n":2,"unit":"s"')) + COLUMNS, "chunks[0].unit"),
        (_head(GOOD_HEAD.replace(b'"n":2', b'"n":2,"size":0')) + COLUMNS, "chunks[0].size"),
    ],
)
def test_a_malformed_binary_body_is_422_naming_its_field(client, experiment, body, field):
    error = error_of(_post(client, experiment, body), 422)
    assert (error["type"], error["field"]) == ("validation_error", field), error
    assert error["message"]


def test_a_header_is_refused_by_its_length_before_it_is_parsed(monkeypatch):
    """A header longer than the cap (what 10,000 chunks of the longest keys take) is refused
    before its JSON is read, however valid; one of exactly the cap is read."""
    from mltrail.core import series_codec

    exact = _head(GOOD_HEAD.ljust(MAX_HEADER_BYTES))
    assert len(metric_batch_from_binary(exact + COLUMNS).chunks) == 1
    parsed: list[int] = []
    monkeypatch.setattr(series_codec, "parse_json", lambda b: parsed.append(len(b)))
    with pytest.raises(ValidationError) as err:
        metric_batch_from_binary(_head(GOOD_HEAD.ljust(MAX_HEADER_BYTES + 1)) + COLUMNS)
    assert err.value.field == "header" and f"at most {MAX_HEADER_BYTES}" in err.value.message
    assert parsed == []
    longest = "\U0001f600" * MAX_KEY_LEN  # 4 UTF-8 bytes a character
    chunk = dataclasses.replace(_chunk(longest, 1), phase="validation")
    many = MetricBatch("\U0001f600" * 200, 2**63 - 1, (chunk,) * MAX_BATCH_CHUNKS)
    full = metric_batch_to_binary(many)
    assert struct.unpack_from("<I", full, 4)[0] <= MAX_HEADER_BYTES  # what HttpStore sends fits


@pytest.mark.parametrize("encode", [metric_batch_to_binary, metric_batch_to_packed])
def test_random_bytes_never_make_a_server_error(client, experiment, encode):
    rng = np.random.default_rng(17)
    good = encode(_batch(_chunk(), _chunk("acc", 3)))
    for _ in range(40):  # flipped bytes, cuts and noise: stored or refused, never a 5xx
        body = bytearray(good[: int(rng.integers(0, len(good) + 1))])
        for i in rng.integers(0, max(len(body), 1), 3).tolist():
            if body:
                body[i] = int(rng.integers(0, 256))
        response = _post(client, experiment, bytes(body))
        assert response.status_code in (200, 422), response.text


def test_json_bodies_are_still_taken(client, experiment):
    from mltrail.core.series_codec import metric_batch_to_wire

    response = client.post(experiment + "/points", json=metric_batch_to_wire(_batch(seq=9)))
    assert response.json() == {"stored": 6}
    error = error_of(_post(client, experiment, b"{not json", "application/json"), 422)
    assert error["field"] == "body"


def test_a_json_batch_of_too_many_or_empty_chunks_is_422_naming_its_field(client, experiment):
    from support.factories import wire_chunk

    many = {"client_id": "c", "seq": 1, "chunks": [wire_chunk(1)] * (MAX_BATCH_CHUNKS + 1)}
    error = error_of(client.post(experiment + "/points", json=many), 422)
    assert error["field"] == "chunks", error
    # counted before the chunks are validated one by one (as the binary header's are)
    assert f"holds {MAX_BATCH_CHUNKS + 1} chunks" in error["message"], error
    empty = {"client_id": "c", "seq": 2, "chunks": [wire_chunk(1), wire_chunk(0)]}
    error = error_of(client.post(experiment + "/points", json=empty), 422)
    assert error["field"] == "chunks[1].n", error
    assert client.get(experiment + "/series").json() == []  # neither batch stored a point
