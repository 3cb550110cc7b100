"""An append seals its blocks from the buckets it computed (rollup_sealing.seal_blocks), not
from its rows read back: the blocks must be the very bytes that packing the rows as stored
gives (what sealing did before, at revision 0024, a row a bucket), on SQLite (no -0.0, NaN as
NULL) and on PostgreSQL."""

from __future__ import annotations

import importlib.util
import math
from types import ModuleType

import numpy as np
from sqlalchemy import select, update

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, rollup_blocks, rollups
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.migrate import MIGRATIONS_DIR
from mltrail.store.sql.tables import metric_rollup_blocks, metric_series
from support.rollup_rows import clear_tail_columns, legacy_rollups, tail_rows
from support.stores import migrate

_ODD = np.array([math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0])


def _chunk(key: str, start: int, n: int, rng: np.random.Generator) -> SeriesChunk:
    it = np.arange(start, start + n, dtype=np.int64)
    if n > 10 and rng.random() < 0.3:
        it[-5:] = it[-5:] - 20  # re-logged iterations: the chunk is put in iteration order
    values = rng.normal(size=n)
    odd = rng.integers(0, n, max(1, n // 50))
    values[odd] = _ODD[rng.integers(0, len(_ODD), len(odd))]
    times = 1.7e9 + it * 0.013 + rng.integers(0, 2, n) * 0.001
    return SeriesChunk(key, "train", it, it // 1000, values, times)


def _state(db: Database, legacy: bool = False) -> tuple[dict, list]:
    """The blocks and the unsealed buckets' rows: from the tails at head, from the rows of
    ``metric_rollups`` (``legacy``) at revision 0024."""
    b, r = metric_rollup_blocks.c, legacy_rollups.c
    with db.read() as conn:
        blocks = {
            (row[0], row[1], row[2]): (row[3], row[4], bytes(row[5]))
            for row in conn.execute(
                select(b.series_id, b.level, b.block, b.first_iteration, b.last_iteration, b.data)
            )
        }
        found = (conn.execute(select(legacy_rollups).order_by(*r)) if legacy
                 else tail_rows(conn))  # fmt: skip
        rows = [tuple(math.nan if x is None else x for x in row) for row in found]
        rows = [tuple("NaN" if x != x else x for x in row) for row in rows]  # NULL, NaN alike
    return blocks, rows


def migration(name: str) -> ModuleType:
    """A migration's module, loaded from its file (its functions, outside Alembic)."""
    spec = importlib.util.spec_from_file_location(name, MIGRATIONS_DIR / "versions" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sealed_from_rows(db: Database) -> tuple[dict, list]:
    """At revision 0024: every block unpacked to rows (migration 0014's downgrade, with the
    block format of its revision, in blocks of 16 since migration 0018), then every complete
    block packed from its rows as stored, as sealing did before: the blocks and rows it
    leaves."""
    r, b = legacy_rollups.c, metric_rollup_blocks.c
    fixed = migration("0023_rollup_blocks_compact").as_fixed_header
    with db.write() as conn:
        for s, level, k, data in conn.execute(select(b.series_id, b.level, b.block, b.data)).all():
            conn.execute(update(metric_rollup_blocks)
                         .where(b.series_id == s, b.level == level, b.block == k)
                         .values(data=fixed(bytes(data))))  # fmt: skip  # format 2, as then
        migration("0014_rollup_blocks").unpack_all(conn, rollup_blocks.BLOCK_BUCKETS)
        counts = conn.execute(select(metric_series.c.id, metric_series.c.count)).all()
        blocks = []
        for series_id, count in counts:
            for level, size in enumerate(rollups.LEVEL_SIZES, start=1):
                end = count // (size * rollup_blocks.BLOCK_BUCKETS) * rollup_blocks.BLOCK_BUCKETS
                cols = [r.bucket, *(r[c] for c in rollups.COLUMNS)]
                query = select(*cols).where(r.series_id == series_id, r.level == level)
                rows = conn.execute(query.where(r.bucket < end).order_by(r.bucket)).all()
                for start in range(0, len(rows), rollup_blocks.BLOCK_BUCKETS):
                    part = rows[start : start + rollup_blocks.BLOCK_BUCKETS]
                    data = rollup_blocks.encode_block([tuple(row[1:]) for row in part])
                    if data is not None:
                        k = part[0][0] // rollup_blocks.BLOCK_BUCKETS
                        lowest = min(row[2] for row in part)
                        highest = max(row[1 + rollups.COLUMNS.index("last_iteration")]
                                      for row in part)  # fmt: skip
                        blocks.append((series_id, level, k, lowest, highest, data))
        store_rows = legacy_rollups.delete()
        for s, level, k, *_ in blocks:
            lo = k * rollup_blocks.BLOCK_BUCKETS
            conn.execute(store_rows.where(r.series_id == s, r.level == level, r.bucket >= lo,
                                          r.bucket < lo + rollup_blocks.BLOCK_BUCKETS))  # fmt: skip
        names = ["series_id", "level", "block", "first_iteration", "last_iteration", "data"]
        if blocks:
            conn.execute(
                metric_rollup_blocks.insert(), [dict(zip(names, b, strict=True)) for b in blocks]
            )
    return _state(db, legacy=True)


def _reads(store: SqlStore, p: int) -> list[np.ndarray]:
    out = []
    for key in ("a", "b"):
        for max_points in (None, 3, 700, 2000):
            s = store.read_series(p, 1, key, "train", max_points=max_points, times=True)
            out += [s.iterations, s.epochs, s.values, s.times]
        zoom = store.read_series(p, 1, key, "train", max_points=300, start=9_000, end=150_000)
        out += [zoom.iterations, zoom.values]
    return out


def test_blocks_sealed_from_the_append_are_those_packed_from_the_rows(migrated_db_url: str) -> None:
    rng = np.random.default_rng(14)
    store = SqlStore.open(migrated_db_url)
    p = store.create_project("sealing").id
    store.create_experiment(p)
    counts = {"a": 0, "b": 0}
    # sizes straddling blocks (of 128 buckets, and of 16), one-point appends
    # completing a block, and random ones
    plan = [("a", 8191), ("a", 1), ("b", 8190), ("b", 1), ("b", 1), ("a", 50), ("a", 3000)]
    plan += [(k, int(n)) for k, n in zip("abab", rng.integers(9_000, 70_000, 4), strict=True)]
    plan += [("a", 130_000)] + [(k, int(rng.integers(1, 5_000))) for k in "abababab"]
    for seq, (key, n) in enumerate(plan):
        if seq == 6:  # a stored partial without times (as before migration 0012): its
            times = [f"{part}_time" for part in rollups.PARTS]  # its block stays in the tails
            at = (1, counts["a"] // 64)
            with store._db.write() as conn:
                clear_tail_columns(conn, times, lambda row, at=at: row[1:3] == at)
        chunks = [_chunk(key, counts[key], n, rng)]
        if seq % 3 == 0:
            other = "b" if key == "a" else "a"  # two series in one batch
            chunks.append(_chunk(other, counts[other], 777, rng))
        for c in chunks:
            counts[c.key] += len(c.values)
        store.append_points(p, 1, MetricBatch("c", seq, tuple(chunks)))
    sealed = _state(store._db)
    reads = _reads(store, p)
    assert len(sealed[0]) > 20
    assert any(level == 2 for _, level, _ in sealed[0])
    n = rollup_blocks.BLOCK_BUCKETS  # its block holds bucket 128 (8,242 // 64)
    kept = [row for row in sealed[1] if row[1] == 1 and 128 <= row[2] < 128 + n]
    assert len(kept) >= n  # the block of the bucket without times stayed in the tails
    store.close()
    migrate(migrated_db_url, "0024_rollups_without_repeats", down=True)  # the tails as rows
    db = Database(make_engine(migrated_db_url))
    assert _state(db, legacy=True) == sealed
    assert _sealed_from_rows(db) == sealed
    db.close()
    migrate(migrated_db_url, "head", down=False)  # the rows packed in tails again
    store = SqlStore.open(migrated_db_url)
    assert _state(store._db) == sealed
    for got, want in zip(_reads(store, p), reads, strict=True):
        np.testing.assert_array_equal(got, want)
    store.close()
