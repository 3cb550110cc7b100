"""Log lines: sequence numbers assigned in arrival order, a batch stored as blocks of lines
(:mod:`mltrail.store.sql.log_blocks`).

A message holding NUL or invalid UTF-8 (lone surrogates) is stored escaped, listed in its
block's ``escaped``, and unescaped when read (:mod:`mltrail.core.text`): PostgreSQL text
cannot hold NUL and SQLite's driver refuses lone surrogates, and any text must be kept.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, update

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.polling import poll
from mltrail.core.text import escape_text, unescape_text
from mltrail.core.types import LogBatch, LogLine, LogPage, LogTail, Status
from mltrail.store.logs import MAX_WAIT_SECONDS, READ_LIMIT, LogStore
from mltrail.store.sql.access import Scope, SqlNoun, experiment_pk, fetch_tuples
from mltrail.store.sql.batches import claim_batch
from mltrail.store.sql.engine import Database, DriverStatement
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.log_blocks import SHORT_BLOCK, block_bounds, decode_block, encode_block
from mltrail.store.sql.tables import experiments, log_blocks


def _clean(line: LogLine, index: int) -> dict[str, Any]:
    if isinstance(line.time, bool) or not isinstance(line.time, (int, float)):
        raise ValidationError(f"line {index}: must be a unix time", "time")
    if not math.isfinite(line.time):
        raise ValidationError(f"line {index}: must be a finite unix time", "time")
    message, escaped = escape_text(validation.log_message(line.message))
    return {
        "time": float(line.time),
        "stream": validation.log_stream(line.stream),
        "level": validation.log_level(line.level),
        "message": message,
        "escaped": escaped,
    }


def append_logs(
    conn: Connection,
    db: Database,
    scope: Scope,
    ref: tuple[Any, Any],
    batch: LogBatch,
    *,
    internal: bool = False,
) -> int:
    """Store the batch's lines after the experiment's last one; 0 for a replayed batch.
    Refused while the project is deleted, except the ``internal`` lines of a job's agent."""
    rows = [_clean(line, i) for i, line in enumerate(batch.lines)]
    pk = experiment_pk(conn, scope, *ref, write=not internal)
    if not claim_batch(conn, db, pk, "logs", batch.client_id, batch.seq):
        return 0
    return _insert(conn, db, pk, rows)


def append_note(conn: Connection, db: Database, pk: int, line: LogLine) -> None:
    """Add one line the store itself writes (no batch id: it is written once, in this
    transaction) to the experiment of row id ``pk``."""
    _insert(conn, db, pk, [_clean(line, 0)])


def _insert(conn: Connection, db: Database, pk: int, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    # The counter update takes the experiment's row lock, so concurrent batches get
    # disjoint, gap-free sequence numbers.
    counted = _COUNT_LINES.first(conn, {"pk": pk, "lines": len(rows), "now": db.clock()})
    if counted is None:  # deleted (purged) since the batch found it
        raise NotFoundError(f"experiment row {pk} no longer exists", "experiment")
    end = int(counted[0])
    first = end - len(rows) + 1
    columns = [[row[name] for row in rows] for name in _COLUMNS]
    if (first - 1) // SHORT_BLOCK != end // SHORT_BLOCK:  # a multiple of SHORT_BLOCK: merge
        first, columns = _take_short_blocks(conn, pk, first, columns)
    blocks = []
    for start, stop in block_bounds(columns[_COLUMNS.index("message")]):
        part = [column[start:stop] for column in columns]
        blocks.append((pk, first + start, stop - start, encode_block(*part)))
    db.insert_rows(conn, log_blocks, ["experiment_id", "first_seq", "count", "data"], blocks)
    return len(rows)


_COLUMNS = ("time", "stream", "level", "message", "escaped")

# built once (constructing a statement per batch cost more than running it); on SQLite run
# through the driver (see DriverStatement)
_COUNT_LINES = DriverStatement(
    update(experiments)
    .where(experiments.c.id == bindparam("pk"))
    .values(log_count=experiments.c.log_count + bindparam("lines"), updated_at=bindparam("now"))
    .returning(experiments.c.log_count)
)
_TAKE_BLOCKS = DriverStatement(
    delete(log_blocks)
    .where(
        log_blocks.c.experiment_id == bindparam("pk"),
        log_blocks.c.first_seq > bindparam("low"),
        log_blocks.c.first_seq < bindparam("first"),
    )
    .returning(log_blocks.c.first_seq, log_blocks.c.data)
)


def _take_short_blocks(
    conn: Connection, pk: int, first: int, columns: list[list[Any]]
) -> tuple[int, list[list[Any]]]:
    """The blocks written since the last multiple of ``SHORT_BLOCK`` before line ``first``
    (batches that held none, so each shorter than it), deleted, and their lines put before
    ``columns``: the first seq of the lines and their columns."""
    low = (first - 1) // SHORT_BLOCK * SHORT_BLOCK
    found = _TAKE_BLOCKS.all(conn, {"pk": pk, "low": low, "first": first})
    taken = sorted((int(row[0]), row[1]) for row in found)
    if not taken:
        return first, columns
    stored: list[list[Any]] = [[] for _ in _COLUMNS]
    for _, data in taken:
        block = decode_block(data)
        escaped = [False] * len(block["message"])
        for i in block["escaped"]:
            escaped[i] = True
        for column, values in zip(
            stored, (*(block[n] for n in _COLUMNS[:4]), escaped), strict=True
        ):
            column += values
    return taken[0][0], [old + new for old, new in zip(stored, columns, strict=True)]


def read_logs(
    conn: Connection, scope: Scope, ref: tuple[Any, Any], after_seq: Any, limit: Any
) -> list[LogLine]:
    pk = experiment_pk(conn, scope, *ref)
    return _lines(conn, pk, after_seq, limit)


def read_log_page(
    conn: Connection, scope: Scope, ref: tuple[Any, Any], after_seq: Any, limit: Any
) -> LogPage:
    pk = experiment_pk(conn, scope, *ref)
    return _page(conn, pk, after_seq, limit)


def _lines(conn: Connection, pk: int, after_seq: Any, limit: Any) -> list[LogLine]:
    return _page(conn, pk, after_seq, limit).lines()


def _page(conn: Connection, pk: int, after_seq: Any, limit: Any) -> LogPage:
    """The lines after ``after_seq`` as columns, from the blocks holding them: the one holding
    line ``after_seq + 1`` and those after it up to the ``limit``-th line (seqs are gap-free),
    messages unescaped only where a block says they are escaped."""
    after = validation.require_int(after_seq, "after_seq", minimum=0, maximum=validation.MAX_DB_ID)
    count = validation.require_int(limit, "limit", minimum=1)
    last = min(after + count, validation.MAX_DB_ID)
    b = log_blocks.c
    start = select(func.max(b.first_seq)).where(b.experiment_id == pk, b.first_seq <= after + 1)
    query = (
        select(b.first_seq, b.data)
        .where(
            b.experiment_id == pk,
            b.first_seq >= start.scalar_subquery(),
            b.first_seq <= last,
            b.first_seq + b.count > after + 1,
        )
        .order_by(b.first_seq)
    )
    times: list[float] = []
    streams: list[str] = []
    levels: list[str] = []
    messages: list[str] = []
    seqs: list[int] = []
    for first, data in fetch_tuples(conn, query):
        block = decode_block(data)
        text = block["message"]
        for i in block["escaped"]:
            text[i] = unescape_text(text[i])
        skip = max(after + 1 - first, 0)
        take = slice(skip, skip + count - len(seqs))
        times += block["time"][take]
        streams += block["stream"][take]
        levels += block["level"][take]
        messages += text[take]
        seqs += range(first, first + len(text))[take]
    return LogPage(times, streams, levels, messages, seqs)


def tail_logs(
    conn: Connection, scope: Scope, judge: Judge, ref: tuple[Any, Any], after_seq: Any, limit: Any
) -> LogTail:
    """Lines after ``after_seq`` and the status (as ``judge`` reports it), the status read
    first: on PostgreSQL each statement sees what was committed before it, so a final status
    read first means every line the run wrote before ending is visible to the read of the
    lines after it. A crashed run's lines stay visible to it too: it wrote nothing since."""
    pk = experiment_pk(conn, scope, *ref)
    status, heartbeat = conn.execute(
        select(judge.status(), experiments.c.last_heartbeat).where(experiments.c.id == pk)
    ).one()
    lines = _lines(conn, pk, after_seq, limit)
    last_seq = lines[-1].seq if lines else int(after_seq)
    return LogTail(tuple(lines), Status(status), last_seq, heartbeat)


class SqlLogs(SqlNoun, LogStore):
    """The log lines half of SqlStore."""

    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        with self._db.write() as conn:
            return append_logs(conn, self._db, self._scope, (project_id, experiment_id), batch)

    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = READ_LIMIT
    ) -> list[LogLine]:
        with self._db.read() as conn:
            ref = (project_id, experiment_id)
            return read_logs(conn, self._scope, ref, after_seq, limit)

    def read_log_page(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = READ_LIMIT
    ) -> LogPage:
        with self._db.read() as conn:
            ref = (project_id, experiment_id)
            return read_log_page(conn, self._scope, ref, after_seq, limit)

    def tail_logs(
        self,
        project_id: int,
        experiment_id: int,
        *,
        after_seq: int = 0,
        limit: int = READ_LIMIT,
        wait: float = 0.0,
    ) -> LogTail:
        def read() -> LogTail:
            with self._db.read() as conn:
                ref = (project_id, experiment_id)
                return tail_logs(conn, self._scope, self._judge(), ref, after_seq, limit)

        return poll(read, _worth_returning, min(wait, MAX_WAIT_SECONDS))


def _worth_returning(tail: LogTail) -> bool:
    return bool(tail.lines) or Status(tail.status).is_final
