"""Chunk format 2 (float32 bits) came without a schema revision: versions before it read any
chunk as format 1 (they never looked at its format byte), so a database taken back to their
revision must hold format-1 chunks only. Migration 0020's downgrade rewrites them. Formats 3
and 4 (the values' differences) likewise: 0020's code reads them as format 1, so migration
0021's downgrade rewrites them as formats 1 and 2."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from mltrail.core.chunk_codec import NARROW, NARROW_DELTA, WIDE_DELTA, decode_chunks
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.tables import metric_chunks
from support.stores import migrate

_ODD = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38], dtype=np.float32)


def _chunks(url: str) -> list[tuple[bytes, int]]:
    db = Database(make_engine(url))
    c = metric_chunks.c
    with db.read() as conn:
        found = conn.execute(select(c.data, c.count).order_by(c.series_id, c.start)).all()
    db.close()
    return [(bytes(data), n) for data, n in found]


def _format1_values(rows: list[tuple[bytes, int]]) -> np.ndarray:
    """The values as a version before format 2 read them: every chunk as format 1."""
    return decode_chunks([(b"\1" + data[1:], n) for data, n in rows])[2]


def test_a_downgrade_past_format_2_leaves_chunks_older_versions_read(db_url: str) -> None:
    rng = np.random.default_rng(4)
    store = SqlStore.open(db_url)
    try:
        p = store.create_project("f32").id
        e = store.create_experiment(p).experiment_id
        sent = []
        for seq in range(3):  # float32 values (format 2), float64 ones (format 1), a lone point
            n = (300, 40, 1)[seq]
            values = rng.normal(size=n).astype(np.float32)
            values[: len(_ODD)] = _ODD[:n]
            wide = values.astype(np.float64)
            if seq == 1:
                wide[0] = 0.1  # not a float32: this chunk stays format 1
            it = np.arange(seq * 1_000, seq * 1_000 + n, dtype=np.int64)
            chunk = SeriesChunk(f"m{seq}", "train", it, it * 0, wide, 1.7e9 + it * 0.01)
            store.append_points(p, e, MetricBatch("c", seq, (chunk,)))
            sent.append(wide)
    finally:
        store.close()
    before = _chunks(db_url)
    assert any(data[0] == NARROW_DELTA for data, _ in before)  # the store wrote format 4
    migrate(db_url, "0016_log_blocks", down=True)
    after = _chunks(db_url)
    assert [data[0] for data, _ in after] == [1] * len(after)
    want = np.concatenate(sent).view(np.int64)
    np.testing.assert_array_equal(_format1_values(after).view(np.int64), want)
    np.testing.assert_array_equal(decode_chunks(after)[2].view(np.int64), want)
    store = SqlStore.open(db_url)  # upgraded again: read as they were
    try:
        for seq, wide in enumerate(sent):
            got = store.read_series(p, e, f"m{seq}", "train").values
            np.testing.assert_array_equal(got.view(np.int64), wide.view(np.int64))
    finally:
        store.close()


def _format2_values(rows: list[tuple[bytes, int]]) -> np.ndarray:
    """The values as revision 0020's code read them: format 2 as float32 bits, any other
    format as format 1."""
    return decode_chunks(
        [(data if data[0] == NARROW else b"\1" + data[1:], n) for data, n in rows]
    )[2]


def test_a_downgrade_past_the_delta_formats_leaves_chunks_revision_0020_reads(db_url: str) -> None:
    rng = np.random.default_rng(5)
    store = SqlStore.open(db_url)
    sent = []
    try:
        p = store.create_project("deltas").id
        e = store.create_experiment(p).experiment_id
        for seq, n in enumerate((300, 200, 40, 5)):  # format 4, 3, 4, 2 (short: no deltas)
            walk = np.cumsum(rng.normal(0.0, 0.01, n)) + 1.0
            values = walk if seq == 1 else walk.astype(np.float32).astype(np.float64)
            odd = _ODD.astype(np.float64) if seq != 1 else np.array([-0.0, np.inf, 5e-324, 2.0**60])
            values[: len(odd)] = odd[:n]
            it = 2**60 + np.arange(seq * 1_000, seq * 1_000 + n, dtype=np.int64)
            chunk = SeriesChunk(f"m{seq}", "train", it, it * 0, values, 1.7e9 + np.arange(n) * 0.1)
            store.append_points(p, e, MetricBatch("c", seq, (chunk,)))
            sent.append(values)
    finally:
        store.close()
    assert [data[0] for data, _ in _chunks(db_url)] == [NARROW_DELTA, WIDE_DELTA, NARROW_DELTA,
                                                          NARROW]  # fmt: skip
    migrate(db_url, "0020_chunk_format_2", down=True)
    after = _chunks(db_url)
    assert [data[0] for data, _ in after] == [NARROW, 1, NARROW, NARROW]
    want = np.concatenate(sent).view(np.int64)
    np.testing.assert_array_equal(_format2_values(after).view(np.int64), want)
    store = SqlStore.open(db_url)  # upgraded again: read as they were
    try:
        for seq, values in enumerate(sent):
            got = store.read_series(p, e, f"m{seq}", "train")
            np.testing.assert_array_equal(got.values.view(np.int64), values.view(np.int64))
            assert int(got.iterations[-1]) == 2**60 + seq * 1_000 + len(values) - 1
    finally:
        store.close()
