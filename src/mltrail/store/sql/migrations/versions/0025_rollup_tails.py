"""The rollup buckets of a series not sealed in a block yet (the last block's buckets so far of
each level, its partial last bucket included) move from ``metric_rollups``, a row per bucket,
to ``metric_rollup_tails``, one row per series holding them all packed in one blob
(``rollup_tails``): ~19 rows of ~80 bytes, part-empty pages and a key each, against ~700
bytes, for a 5,000-point series (~0.25 B a point of 10-point flushes).

A blob holds a (19, buckets) little-endian int64 table: level, bucket, then n and each part's
(first, last, min, max) iteration, epoch, value and time, values and times as their float64
bits (NULL as NaN), by level, then bucket. Its 152 byte planes (each column's 8, lowest first)
are kept whole, but those the same in every bucket, kept once: a header (format 1, buckets:
``<BI``), a bit a plane saying which are constant (``np.packbits``, 19 bytes), then raw deflate
of the constant planes' bytes followed by the other planes'.

The upgrade packs every series' rows and drops ``metric_rollups``; the downgrade creates it
again as revision 0024 left it (WITHOUT ROWID on SQLite) and writes a row per bucket back.
The layout is written out here, not imported: a migration is a snapshot.

Revision ID: 0025_rollup_tails
Revises: 0024_rollups_without_repeats
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0025_rollup_tails"
down_revision = "0024_rollups_without_repeats"
branch_labels = None
depends_on = None

_PARTS = ("first", "last", "min", "max")
_FIELDS = ("iteration", "epoch", "value", "time")
_NAMES = ["level", "bucket", "n", *(f"{p}_{f}" for p in _PARTS for f in _FIELDS)]
_FLOATS = [i for i, name in enumerate(_NAMES) if name.endswith(("_value", "_time"))]
_FORMAT = 1


def upgrade() -> None:
    conn = op.get_bind()
    op.create_table(
        "metric_rollup_tails", _series_key(), sa.Column("data", sa.LargeBinary(), nullable=False)
    )
    columns = ", ".join(_NAMES)
    rows = conn.execute(
        sa.text(
            f"SELECT series_id, {columns} FROM metric_rollups ORDER BY series_id, level, bucket"
        )
    ).all()
    by_series: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        by_series.setdefault(row[0], []).append(row[1:])
    insert = sa.text("INSERT INTO metric_rollup_tails (series_id, data) VALUES (:s, :d)")
    packed = [{"s": s, "d": _encode(found)} for s, found in by_series.items()]
    if packed:
        conn.execute(insert, packed)
    op.drop_table("metric_rollups")


def downgrade() -> None:
    conn = op.get_bind()
    types: tuple[Any, ...] = (sa.BigInteger(), sa.Integer(), sa.Double(), sa.Double())
    point: list[sa.Column[Any]] = [
        sa.Column(f"{p}_{f}", t, nullable=f in ("value", "time"))
        for p in _PARTS
        for f, t in zip(_FIELDS, types, strict=True)
    ]
    op.create_table(
        "metric_rollups",
        _series_key(),
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("bucket", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *point,
        sqlite_with_rowid=False,
    )
    found = conn.execute(sa.text("SELECT series_id, data FROM metric_rollup_tails")).all()
    rows = [
        {"series_id": s, **dict(zip(_NAMES, row, strict=True))}
        for s, data in found
        for row in _decode(bytes(data))
    ]
    if rows:
        names = ["series_id", *_NAMES]
        conn.execute(
            sa.text(
                f"INSERT INTO metric_rollups ({', '.join(names)}) "
                f"VALUES ({', '.join(':' + n for n in names)})"
            ),
            rows,
        )
    op.drop_table("metric_rollup_tails")


_HEAD = struct.Struct("<BI")
_PLANES = len(_NAMES) * 8


def _series_key() -> sa.Column[Any]:
    return sa.Column(
        "series_id",
        sa.Integer(),
        sa.ForeignKey("metric_series.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )


def _encode(rows: Sequence[Sequence[Any]]) -> bytes:
    """A series' rows (the columns of ``_NAMES``) packed."""
    n = len(rows)
    table = np.empty((len(_NAMES), n), dtype="<i8")
    for i, column in enumerate(zip(*rows, strict=True)):
        if i in _FLOATS:
            floats = np.array([np.nan if v is None else v for v in column], dtype=np.float64)
            floats[np.isnan(floats)] = np.nan
            table[i] = floats.view("<i8")
        else:
            table[i] = np.array([int(v) for v in column], dtype=np.int64)
    planes = table.view(np.uint8).reshape(len(_NAMES), n, 8).transpose(0, 2, 1).reshape(_PLANES, n)
    const = (planes == planes[:, :1]).all(axis=1)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = planes[const, 0].tobytes() + planes[~const].tobytes()
    packed = deflate.compress(raw) + deflate.flush()
    return _HEAD.pack(_FORMAT, n) + np.packbits(const).tobytes() + packed


def _decode(data: bytes) -> list[tuple[Any, ...]]:
    """The rows of a blob (:func:`_encode`, or format 2: its last bucket of each level raw,
    the others as format 1's body), NaN values and times as None."""
    form = data[0]
    if form == _FORMAT:
        (n,) = struct.unpack_from("<I", data, 1)
        table = _unpack(data[_HEAD.size :], n)
    elif form == 2:
        n_raw, n_packed = struct.unpack_from("<II", data, 1)
        zero = _mask(data, 9)
        kept = _PLANES - int(zero.sum())
        planes = np.zeros((_PLANES, n_raw), np.uint8)
        body = np.frombuffer(data, np.uint8, count=kept * n_raw, offset=9 + _PLANES // 8)
        planes[~zero] = body.reshape(kept, n_raw)
        raw = _table(planes, n_raw)
        packed = _unpack(data[9 + _PLANES // 8 + kept * n_raw :], n_packed)
        table = np.concatenate([packed, raw], axis=1)
        table = table[:, np.lexsort((table[1], table[0]))]
    else:
        raise RuntimeError(f"rollup tails of format {form}, which this migration does not read")
    columns: list[list[Any]] = []
    for i in range(len(_NAMES)):
        if i in _FLOATS:
            columns.append([None if v != v else v for v in table[i].view(np.float64).tolist()])
        else:
            columns.append(table[i].tolist())
    return list(zip(*columns, strict=True))


def _mask(data: bytes, at: int) -> np.ndarray:
    mask = np.frombuffer(data, dtype=np.uint8, count=_PLANES // 8, offset=at)
    return np.unpackbits(mask, count=_PLANES).astype(bool)


def _unpack(data: bytes, n: int) -> np.ndarray:
    """The ``n`` buckets of a deflated body: a bit a plane saying which are constant (kept
    once), then raw deflate of their bytes followed by the other planes'."""
    if not n:
        return np.empty((len(_NAMES), 0), "<i8")
    const = _mask(data, 0)
    raw = np.frombuffer(zlib.decompressobj(-15).decompress(data[_PLANES // 8 :]), np.uint8)
    kept = int(const.sum())
    planes = np.empty((_PLANES, n), np.uint8)
    planes[const] = raw[:kept, None]
    planes[~const] = raw[kept:].reshape(_PLANES - kept, n)
    return _table(planes, n)


def _table(planes: np.ndarray, n: int) -> np.ndarray:
    table = np.ascontiguousarray(planes.reshape(len(_NAMES), 8, n).transpose(0, 2, 1))
    return table.view("<i8").reshape(len(_NAMES), n)
