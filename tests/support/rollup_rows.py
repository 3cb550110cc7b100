"""The unsealed rollup buckets as rows, for tests that look at them or change them: at head
they are packed in each series' tails (``rollup_tails``, migration 0025); ``legacy_rollups``
is the ``metric_rollups`` table of the revisions before it (tests that migrate down).

Functions:
    tail_rows: every bucket in the tails as (series_id, level, bucket, *COLUMNS).
    change_tail_rows: rewrite the tails' rows through a function of each row.
    clear_tail_columns: make some columns NULL in some of the tails' rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    select,
    update,
)
from sqlalchemy.engine import Connection

from mltrail.store.sql import rollup_tails, rollups
from mltrail.store.sql.tables import metric_rollup_tails

ROW_NAMES = ("series_id", "level", "bucket", *rollups.COLUMNS)


def _point(prefix: str) -> list[Column]:
    return [Column(f"{prefix}_iteration", BigInteger, nullable=False),
            Column(f"{prefix}_epoch", Integer, nullable=False),
            Column(f"{prefix}_value", Double), Column(f"{prefix}_time", Double)]  # fmt: skip


legacy_rollups = Table(
    "metric_rollups",
    MetaData(),
    Column("series_id", Integer, ForeignKey("metric_series.id"), primary_key=True),
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("bucket", Integer, primary_key=True, autoincrement=False),
    Column("n", Integer, nullable=False),
    *(c for p in rollups.PARTS for c in _point(p)),
)


def tail_rows(conn: Connection, series_ids: Sequence[int] | None = None) -> list[tuple[Any, ...]]:
    """Every bucket in the tails (of ``series_ids``, else of every series) as a row of
    :data:`ROW_NAMES` read back (values and times float, None for NULL), by series, level,
    bucket."""
    if series_ids is None:
        series_ids = conn.execute(select(metric_rollup_tails.c.series_id)).scalars().all()
    tails = rollup_tails.fetch(conn, series_ids)
    return [(s, *row) for s in sorted(tails) for row in rollup_tails.as_rows(tails[s])]


def change_tail_rows(
    conn: Connection, change: Callable[[tuple[Any, ...]], tuple[Any, ...] | None]
) -> None:
    """Each row of :func:`tail_rows` replaced by ``change(row)`` (None: left out), every
    series' tails written again."""
    rows = [changed for row in tail_rows(conn) if (changed := change(row)) is not None]
    owners = conn.execute(select(metric_rollup_tails.c.series_id)).scalars().all()
    sqlite = conn.dialect.name == "sqlite"
    for s in owners:
        mine = [row[1:] for row in rows if row[0] == s]
        table = rollup_tails.from_rows(mine, sqlite) if mine else rollup_tails.EMPTY
        order = np.lexsort((table[1], table[0]))
        conn.execute(update(metric_rollup_tails).where(metric_rollup_tails.c.series_id == s)
                     .values(data=rollup_tails.encode(table[:, order])))  # fmt: skip


def clear_tail_columns(
    conn: Connection, names: Sequence[str], where: Callable[[tuple[Any, ...]], bool]
) -> None:
    """The columns ``names`` made NULL in the rows of :func:`tail_rows` ``where`` picks."""
    cleared = {ROW_NAMES.index(name) for name in names}

    def change(row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not where(row):
            return row
        return tuple(None if i in cleared else x for i, x in enumerate(row))

    change_tail_rows(conn, change)
