"""Packed rollup blocks: exact to the bit, and buckets stored as rows before migration 0014
(or after its downgrade) read the same and get packed by later appends; blocks of 128 buckets
stored before migration 0018 read the same once split into blocks of 16."""

from __future__ import annotations

import functools
import importlib
import math

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, func, select

from mltrail.core.types import MetricBatch, SeriesChunk, SeriesQuery
from mltrail.store.sql import SqlStore, rollup_blocks, rollups
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.migrate import MIGRATIONS_DIR
from mltrail.store.sql.tables import metric_rollup_blocks
from support.factories import chunk
from support.rollup_rows import legacy_rollups
from support.stores import migrate


def test_a_block_decodes_to_the_rows_it_packed() -> None:
    rng = np.random.default_rng(3)
    n = rollup_blocks.BLOCK_BUCKETS
    first = 2**62 + np.arange(n, dtype=np.int64) * 64
    rows = []
    for k in range(n):
        values = rng.normal(size=4).tolist()
        if k % 7 == 0:
            values[2] = math.nan  # an all-NaN bucket's min (SQLite gives NULL: None)
        values[3] = None if k % 11 == 0 else values[3]
        epoch = -1 if k % 2 else k
        point = {
            "n": 64,
            "first": (int(first[k]), epoch, values[0], 1_700_000_000_000 + k * 640),
            "last": (int(first[k]) + 63, epoch, values[1], 630 + k % 3),
            "min": (int(first[k]) + k % 64, epoch, values[2], k % 64),
            "max": (int(first[k]) + 5, epoch, values[3], 5),
        }
        rows.append((point["n"], *(x for p in rollups.PARTS for x in point[p])))
    data = rollup_blocks.encode_block(rows)
    assert data is not None
    table = rollup_blocks.decode_ints([data])[0]
    values = table.view("<f8")
    for j, name in enumerate(rollups.COLUMNS):
        want = [row[j] for row in rows]
        if name.endswith("_value"):
            got = values[j].tolist()
            assert all((math.isnan(g) and (w is None or math.isnan(w))) or g == w
                       for g, w in zip(got, want, strict=True)), name  # fmt: skip
        else:
            assert table[j].tolist() == want, name
    rows[5] = (*rows[5][:4], None, *rows[5][5:])  # a bucket without times stays rows
    assert rollup_blocks.encode_block(rows) is None


def _points(start: int, n: int, rng: np.random.Generator) -> SeriesChunk:
    it = np.arange(start, start + n, dtype=np.int64)
    values = rng.normal(size=n)
    values[rng.integers(0, n, 5)] = math.nan
    return chunk("loss", it, values, epochs=it // 1000)


def _reads(store: SqlStore, project: int, experiment: int) -> list[tuple[np.ndarray, ...]]:
    out = []
    for max_points in (2, 500, 2000):
        s = store.read_series(project, experiment, "loss", "train", max_points=max_points,
                              times=True)  # fmt: skip
        out.append((s.iterations, s.epochs, s.values, s.times))
    zoom = store.read_series(project, experiment, "loss", "train", max_points=300,
                             start=20_000, end=90_000, times=True)  # fmt: skip
    out.append((zoom.iterations, zoom.epochs, zoom.values, zoom.times))
    return out


def _assert_same(one: list[tuple[np.ndarray, ...]], other: list[tuple[np.ndarray, ...]]) -> None:
    for a, b in zip(one, other, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def _blocks(store: SqlStore) -> int:
    with store._db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(metric_rollup_blocks)).scalar())


def test_rows_from_before_blocks_read_alike_and_get_packed(db_url: str) -> None:
    rng = np.random.default_rng(8)
    parts = [_points(start, 37_000, rng) for start in range(0, 111_000, 37_000)]
    more = _points(111_000, 40_000, rng)
    store = SqlStore.open(db_url)
    p = store.create_project("blocks")
    for _ in range(2):
        store.create_experiment(p.id)
    for seq, part in enumerate(parts):
        store.append_points(p.id, 1, MetricBatch("c", seq, (part,)))
    packed = _reads(store, p.id, 1)
    assert _blocks(store) > 0
    store.close()

    db = Database(make_engine(db_url))  # migration 0014's downgrade unpacks every block
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0013_project_lifecycle")
    db.close()

    store = SqlStore.open(db_url)  # upgraded again: the buckets stay rows
    assert _blocks(store) == 0
    _assert_same(_reads(store, p.id, 1), packed)
    store.append_points(p.id, 1, MetricBatch("c", len(parts), (more,)))
    assert _blocks(store) > 0
    for seq, part in enumerate([*parts, more]):  # the same points, packed as they came
        store.append_points(p.id, 2, MetricBatch("c", seq, (part,)))
    _assert_same(_reads(store, p.id, 1), _reads(store, p.id, 2))
    queries = [SeriesQuery(p.id, e, "loss") for e in (1, 2, 1)]
    for max_points in (2, 1000):  # every series' blocks and rows fetched at once
        batch = store.read_series_batch(queries, max_points=max_points)
        for q, answer in zip(queries, batch, strict=True):
            alone = store.read_series(p.id, q.experiment_id, "loss", "train",
                                      max_points=max_points)  # fmt: skip
            assert answer.series is not None
            np.testing.assert_array_equal(answer.series.iterations, alone.iterations)
            np.testing.assert_array_equal(answer.series.values, alone.values)
    whole = store.read_series(p.id, 1, "loss", "train", max_points=2000)
    values = np.concatenate([c.values for c in [*parts, more]])
    assert np.nanmin(whole.values) == np.nanmin(values)
    assert np.nanmax(whole.values) == np.nanmax(values)
    store.close()


_V23 = importlib.import_module("mltrail.store.sql.migrations.versions.0023_rollup_blocks_compact")


def _pack_as_before_0018(db_url: str) -> int:
    """The database taken back to migration 0017 (every block unpacked to rows), then each
    complete block of 128 buckets packed from its rows and its rows deleted, as an append
    sealed blocks before migration 0018: the number of blocks packed."""
    migrate(db_url, "0017_ingest_ranges", down=True)
    db = Database(make_engine(db_url))
    r, old = legacy_rollups.c, 128
    with db.write() as conn:
        keys = conn.execute(select(r.series_id, r.level).distinct()).all()
        blocks = []
        for series_id, level in keys:
            query = select(r.bucket, *(r[c] for c in rollups.COLUMNS)).order_by(r.bucket)
            rows = conn.execute(query.where(r.series_id == series_id, r.level == level)).all()
            for start in range(0, len(rows) - old + 1, old):
                part = rows[start : start + old]
                if part[0][0] % old or part[-1][0] != part[0][0] + old - 1:
                    continue
                data = rollup_blocks.encode_block([tuple(row[1:]) for row in part])
                if data is not None:
                    data = _V23.as_fixed_header(data)  # format 2, as then
                    last = 1 + rollups.COLUMNS.index("last_iteration")
                    blocks.append({"series_id": series_id, "level": level,
                                   "block": part[0][0] // old,
                                   "first_iteration": min(row[2] for row in part),
                                   "last_iteration": max(row[last] for row in part),
                                   "data": data})  # fmt: skip
                    conn.execute(delete(legacy_rollups).where(
                        r.series_id == series_id, r.level == level,
                        r.bucket >= part[0][0], r.bucket <= part[-1][0]))  # fmt: skip
        if blocks:
            conn.execute(metric_rollup_blocks.insert(), blocks)
    db.close()
    return len(blocks)


def test_blocks_of_128_buckets_stored_before_migration_0018_read_alike_split_in_eight(
    db_url: str,
) -> None:
    rng = np.random.default_rng(18)
    parts = [_points(start, 45_000, rng) for start in range(0, 135_000, 45_000)]
    store = SqlStore.open(db_url)
    p = store.create_project("blocks")
    store.create_experiment(p.id)
    for seq, part in enumerate(parts):
        store.append_points(p.id, 1, MetricBatch("c", seq, (part,)))
    want = _reads(store, p.id, 1)
    store.close()

    old = _pack_as_before_0018(db_url)
    assert old >= 8  # level 1: 2,109 buckets of 64 points, 16 blocks of 128
    store = SqlStore.open(db_url)  # migration 0018 splits each block in eight
    try:
        with store._db.read() as conn:
            data = conn.execute(select(metric_rollup_blocks.c.data)).scalars().all()
        assert len(data) == 8 * old
        assert {rollup_blocks.HEADER.unpack_from(d)[1] for d in data} == {16}
        _assert_same(_reads(store, p.id, 1), want)
        more = _points(135_000, 5_000, rng)  # appends seal blocks of 16 after them
        store.append_points(p.id, 1, MetricBatch("c", len(parts), (more,)))
        assert _blocks(store) > 8 * old
        whole = store.read_series(p.id, 1, "loss", "train", max_points=2000)
        values = np.concatenate([c.values for c in [*parts, more]])
        assert np.nanmin(whole.values) == np.nanmin(values)
        assert np.nanmax(whole.values) == np.nanmax(values)
    finally:
        store.close()


def test_blocks_of_one_length_and_of_several_decode_alike() -> None:
    # a read parses the headers of one layout as one array (rollup_blocks.read_heads) and
    # decodes blocks of one column widths together: blocks of one length and of several
    # give every column alike
    from mltrail.store.sql.rollup_reads import _Blocks

    rng = np.random.default_rng(5)
    n = rollup_blocks.BLOCK_BUCKETS
    blobs = []
    for k in range(6):
        first = np.arange(k * n, (k + 1) * n, dtype=np.int64) * 64
        rows = [(64, int(f), -1, float(rng.normal()), 1_700_000_000_000 + int(f) * 10,
                 int(f) + 63, -1, float(rng.normal()), 630 + (j * k) % (7 ** (k % 3 + 1)),
                 int(f) + 3, -1, float(rng.normal()), 30, int(f) + 9, -1, float(rng.normal()), 90)
                for j, f in enumerate(first)]  # fmt: skip
        data = rollup_blocks.encode_block(rows)
        assert data is not None
        blobs.append(data)
    assert len({len(b) for b in blobs}) > 1  # time offsets of no byte and of one
    alike = [b for b in blobs if len(b) == len(blobs[-1])]
    assert len(alike) > 1
    # the same widths under headers of two sizes (formats 4 and 2): each block's records
    # found after its own header
    mixed = [_V23.as_fixed_header(b) if k % 2 else b for k, b in enumerate(alike)]
    for group in (blobs, alike, mixed):
        want = rollup_blocks.decode_columns(group)
        blocks = _Blocks(group)
        for j in range(rollup_blocks.WIDTH):
            np.testing.assert_array_equal(blocks.column(j), want[j].reshape(-1))
            picked = np.array([0, n - 1, n, len(group) * n - 1])
            np.testing.assert_array_equal(blocks.at(j, picked), want[j].reshape(-1)[picked])


@pytest.mark.parametrize("seed", range(4))
def test_blocks_packed_together_are_those_packed_one_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rollup_blocks.BLOCK_BUCKETS
    for trial in range(20):
        k = int(rng.integers(1, 9))
        first = (2**62 if trial % 5 == 0 else 0) + np.cumsum(rng.integers(1, 200, k * n))
        times = 1_700_000_000_000 + np.cumsum(rng.integers(0, 5000, k * n))
        rows = []
        for i, (f, t) in enumerate(zip(first.tolist(), times.tolist(), strict=True)):
            values = rng.normal(size=4).tolist()
            values[2] = math.nan if rng.random() < 0.05 else values[2]
            later = [int(rng.integers(0, 300 if trial % 3 else 70_000)), int(rng.integers(300)), 5]
            if trial % 4 == 0 and rng.random() < 0.02:
                later[0] = None  # a bucket without times: its block stays rows
            if trial % 7 == 0 and rng.random() < 0.02:
                later[1] = 3.5  # not whole milliseconds: the same
            epoch = -1 if trial % 2 else i
            rows.append((64, f, epoch, values[0], t, f + 63, epoch, values[1], later[0],
                         f + int(rng.integers(64)), epoch, values[2], later[1], f + 5, epoch,
                         values[3], later[2]))  # fmt: skip
        floats = np.array(rows, dtype=np.float64).reshape(k * n, rollup_blocks.WIDTH).T

        def exact(part: list[tuple], j: int) -> np.ndarray:
            return np.array([0 if r[j] is None else int(r[j]) for r in part], dtype=np.int64)

        one_by_one = [
            rollup_blocks.encode_columns(floats[:, s : s + n].copy(),
                                         functools.partial(exact, rows[s : s + n]))
            for s in range(0, k * n, n)
        ]  # fmt: skip
        starts = range(0, k * n, n)
        together = rollup_blocks.encode_many(
            np.stack([floats[:, s : s + n] for s in starts]),
            [functools.partial(exact, rows[s : s + n]) for s in starts],
        )
        assert [found and found[0] for found in together] == one_by_one
        first, last = (rollup_blocks.INDEX[f"{p}_iteration"] for p in ("first", "last"))
        for s, found in zip(starts, together, strict=True):  # each block's iterations
            if found is not None:
                block = functools.partial(exact, rows[s : s + n])
                assert found[1:] == (block(first).min(), block(last).max())


def _float32_rows(rng: np.random.Generator, blocks: int, wide: bool = False) -> list[tuple]:
    """Bucket rows of ``blocks`` blocks whose values are float32 ones widened (a random walk
    with -0.0, infinities, a NaN and float32 subnormals among them), or float64 ones."""
    n = rollup_blocks.BLOCK_BUCKETS
    walk = np.cumsum(rng.normal(0.0, 0.01, (blocks * n, 4)), axis=0) + 1.0
    values = walk if wide else walk.astype(np.float32).astype(np.float64)
    odd = np.array([-0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45], np.float32).astype(np.float64)
    values[rng.integers(0, blocks * n, 6), rng.integers(0, 4, 6)] = odd
    first = 2**62 + np.arange(blocks * n, dtype=np.int64) * 64
    return [(64, int(f), -1, v[0], 1_700_000_000_000 + k * 640, int(f) + 63, -1, v[1], 630,
             int(f) + 3, -1, v[2], 30, int(f) + 9, -1, v[3], 90)
            for k, (f, v) in enumerate(zip(first.tolist(), values.tolist(), strict=True))]  # fmt: skip


def test_float32_values_are_stored_rotated_in_half_the_bytes_and_read_back_exactly() -> None:
    from mltrail.store.sql.rollup_reads import _Blocks

    rng = np.random.default_rng(9)
    n = rollup_blocks.BLOCK_BUCKETS
    narrow_rows, wide_rows = _float32_rows(rng, 3), _float32_rows(rng, 2, wide=True)
    blobs = []
    for rows in (narrow_rows, wide_rows):
        for s in range(0, len(rows), n):
            data = rollup_blocks.encode_block(rows[s : s + n])
            assert data is not None
            blobs.append(data)
    assert {b[0] for b in blobs} == {4}
    v22 = importlib.import_module(
        "mltrail.store.sql.migrations.versions.0022_rollup_blocks_rotated"
    )
    fixed = [_V23.as_fixed_header(blob) for blob in blobs]
    assert [b[0] for b in fixed] == [3, 3, 3, 2, 2]  # float64 walks: no column rotated
    for blob in fixed[:3]:  # each as format 2 (its values as 8-byte offsets), and smaller
        plain = v22.as_format_2(blob)
        assert plain[0] == 2 and len(blob) < len(plain) - 16 * 4
        np.testing.assert_array_equal(rollup_blocks.decode_columns([plain]),
                                      rollup_blocks.decode_columns([blob]))  # fmt: skip
    want = np.array([r for r in narrow_rows + wide_rows], dtype=np.float64).T
    for group, rows in ((blobs, want), (blobs[:3], want[:, : 3 * n])):  # widths alike, several
        got = rollup_blocks.decode_columns(group)
        blocks = _Blocks(group)
        for j in rollup_blocks.VALUES:
            bits = rows[j].view(np.int64)
            np.testing.assert_array_equal(got[j].reshape(-1), bits)
            np.testing.assert_array_equal(blocks.column(j), bits)
            picked = np.array([0, n - 1, n, rows.shape[1] - 1])
            np.testing.assert_array_equal(_Blocks(group).at(j, picked), bits[picked])
    floats = np.stack([want[:, s : s + n] for s in range(0, 3 * n, n)])

    def exact(part: list[tuple], j: int) -> np.ndarray:  # past 2^53: from the rows
        return np.array([int(r[j]) for r in part], dtype=np.int64)

    parts = [functools.partial(exact, narrow_rows[s : s + n]) for s in range(0, 3 * n, n)]
    assert [found and found[0] for found in rollup_blocks.encode_many(floats, parts)] == blobs[:3]


def _flushed_float32_walk(
    db_url: str, seed: int, odd: bool = False
) -> tuple[int, int, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """A 5,000-point float32 walk (with a NaN, -0.0 and an infinity when ``odd``) appended
    10 points at a time: its project, experiment, values and :func:`_reads`."""
    rng = np.random.default_rng(seed)
    values = (np.cumsum(rng.normal(0.0, 0.01, 5_000)) + 1.0).astype(np.float32).astype(np.float64)
    if odd:
        values[[7, 300, 2_222]] = [np.nan, -0.0, np.inf]
    store = SqlStore.open(db_url)
    try:
        p = store.create_project("walk").id
        e = store.create_experiment(p).experiment_id
        for seq, s in enumerate(range(0, 5_000, 10)):
            it = np.arange(s, s + 10, dtype=np.int64)
            store.append_points(
                p, e, MetricBatch("c", seq, (chunk("loss", it, values[s : s + 10]),))
            )
        return p, e, values, _reads(store, p, e)
    finally:
        store.close()


def test_a_downgrade_past_rotated_blocks_leaves_blocks_revision_0021_reads(db_url: str) -> None:
    p, e, values, before = _flushed_float32_walk(db_url, 12, odd=True)
    db = Database(make_engine(db_url))
    stored = select(metric_rollup_blocks.c.data)
    with db.read() as conn:
        assert {bytes(d)[0] for d in conn.execute(stored).scalars()} == {4}
    db.close()
    migrate(db_url, "0021_chunk_delta_formats", down=True)
    v14 = importlib.import_module("mltrail.store.sql.migrations.versions.0014_rollup_blocks")
    db = Database(make_engine(db_url))
    with db.read() as conn:
        blobs = [bytes(d) for d in conn.execute(stored).scalars()]
    db.close()
    assert blobs and {b[0] for b in blobs} == {2}
    for blob in blobs:  # as revision 0021 reads them (migration 0014's decoding is its format)
        table = v14.decode_block(blob, rollup_blocks.BLOCK_BUCKETS)
        got = table[rollup_blocks.VALUES].view(np.float64)
        assert np.isin(got[~np.isnan(got)], values).all()
    store = SqlStore.open(db_url)  # upgraded again: the same reads
    try:
        _assert_same(_reads(store, p, e), before)
    finally:
        store.close()


@pytest.mark.parametrize("form", [0, 1, 5, 255])
def test_a_block_of_a_format_this_version_does_not_know_fails_its_read(form: int) -> None:
    """A later version's block format with widths this one knows decoded as format 2: other
    numbers, silently (a rolling upgrade's newer process, a newer backup)."""
    from mltrail.store.sql.rollup_reads import _Blocks

    rows = _float32_rows(np.random.default_rng(3), 2)
    n = rollup_blocks.BLOCK_BUCKETS
    blobs = [rollup_blocks.encode_block(rows[s : s + n]) for s in range(0, 2 * n, n)]
    future = [bytes([form]) + blob[1:] for blob in blobs if blob is not None]
    for group in (future, [future[0], b"\2" + future[1][1:]]):  # alike, and one of them
        with pytest.raises(ValueError, match=f"format {form}"):
            rollup_blocks.decode_columns(group)
        with pytest.raises(ValueError, match=f"format {form}"):
            _Blocks(group).column(rollup_blocks.VALUES[0])


def test_compact_headers_are_smaller_and_a_downgrade_puts_the_fixed_ones_back(db_url: str) -> None:
    """Format 4 keeps each base in its fewest bytes (a float32 walk's first level: 174 header
    bytes became ~70); migration 0023's downgrade leaves formats 2 and 3, the same columns."""
    p, e, _, before = _flushed_float32_walk(db_url, 23)
    stored = select(metric_rollup_blocks.c.data).order_by(metric_rollup_blocks.c.block)
    db = Database(make_engine(db_url))
    with db.read() as conn:
        compact = [bytes(d) for d in conn.execute(stored).scalars()]
    db.close()
    assert len(compact) == 4 and {b[0] for b in compact} == {4}
    heads = rollup_blocks.read_heads(compact)
    assert max(heads.skips) <= 80
    migrate(db_url, "0022_rollup_blocks_rotated", down=True)
    db = Database(make_engine(db_url))
    with db.read() as conn:
        fixed = [bytes(d) for d in conn.execute(stored).scalars()]
    db.close()
    assert {b[0] for b in fixed} == {3}
    assert [len(b) - rollup_blocks.HEADER.size for b in fixed] == [
        len(b) - skip for b, skip in zip(compact, heads.skips, strict=True)
    ]  # the same records
    np.testing.assert_array_equal(rollup_blocks.decode_columns(fixed),
                                  rollup_blocks.decode_columns(compact))  # fmt: skip
    store = SqlStore.open(db_url)  # upgraded again: the same reads
    try:
        _assert_same(_reads(store, p, e), before)
    finally:
        store.close()


def test_many_compact_headers_parse_as_arrays_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # from MANY_HEADS format-4 blocks on, read_heads parses their headers as arrays: the same
    # widths, bases (negative ones and every byte size), starts and record offsets as the
    # one-struct-a-block parse, and a block of another bucket count still refused
    rng = np.random.default_rng(11)
    n = rollup_blocks.BLOCK_BUCKETS
    blobs = []
    for k in range(rollup_blocks.MANY_HEADS + 37):
        scale = 10 ** int(rng.integers(0, 15))
        first = (np.arange(n, dtype=np.int64) + k * n) * int(rng.integers(1, 5000))
        first -= int(rng.integers(0, 2)) * 3 * scale  # negative iterations too
        rows = [(64, int(f), int(rng.integers(-1, 3)), float(rng.normal() * scale),
                 1_700_000_000_000 + int(f) * int(rng.integers(0, 9)), int(f) + 63, -1,
                 float(rng.normal()), int(rng.integers(-scale, scale)), int(f) + 3, -1,
                 float(np.float32(rng.normal())), 30, int(f) + 9, -1, float(rng.normal()), 90)
                for f in first]  # fmt: skip
        data = rollup_blocks.encode_block(rows)
        assert data is not None and data[0] == rollup_blocks.COMPACT_FORMAT
        blobs.append(data)
    assert len({len(b) for b in blobs}) > 5  # headers and records of many lengths
    arrays = rollup_blocks.read_heads(blobs)
    monkeypatch.setattr(rollup_blocks, "MANY_HEADS", len(blobs) + 1)
    structs = rollup_blocks.read_heads(blobs)
    assert arrays.widths == structs.widths and arrays.skips == structs.skips
    np.testing.assert_array_equal(arrays.bases, structs.bases)
    np.testing.assert_array_equal(arrays.starts, structs.starts)
    assert len({tuple(row) for row in structs.bases}) > 10
    monkeypatch.setattr(rollup_blocks, "MANY_HEADS", 2)
    wrong = [*blobs[:-1], blobs[-1][:1] + bytes([n * 2]) + blobs[-1][2:]]
    with pytest.raises(ValueError, match=f"{n * 2} buckets"):
        rollup_blocks.read_heads(wrong)
