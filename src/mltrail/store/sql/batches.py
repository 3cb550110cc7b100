"""Ingest batch receipts: (experiment, kind, client_id, seq) is stored once, with its data.

A client numbers its batches 0, 1, 2, ...: the seqs stored are kept as runs of consecutive
seqs (``ingest_ranges``: one row ``[low, high]`` a run), a claim extending the run that ends
just before it. A row a batch cost more than a 10-point flush's points' values (~0.7 B a
point). Seqs that arrive out of order (a spool replayed) start runs of their own; runs are
not merged, only never overlap.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, exists, select, update

from mltrail.core import validation
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import experiments, ingest_ranges


def claim_batch(
    conn: Connection,
    db: Database,
    experiment_pk: int,
    kind: str,
    client_id: Any,
    seq: Any,
    *,
    locked: bool = False,
) -> bool:
    """Record the batch; False when it was already stored (a retry), so the caller skips it.

    Runs in the caller's transaction, so the receipt commits or rolls back with the data.
    On PostgreSQL the claims of an experiment run one at a time, on its row's lock (taken
    here unless ``locked``: the caller's transaction holds it already, as a points append
    that touched the experiment does). Without it, a retry racing its first try could
    extend a run to the seq while the first try's new run of that seq was not committed
    yet, which the unique end refuses with an error instead of a retry (nothing is stored
    twice either way: the unique end is what refuses it).
    """
    client = validation.require_text(client_id, "client_id", min_len=1, max_len=200)
    number = validation.require_int(seq, "seq", minimum=0, maximum=validation.MAX_DB_ID)
    if not (locked or db.is_sqlite):  # SQLite: one writer at a time already
        conn.execute(_LOCK_EXPERIMENT, {"b_pk": experiment_pk})
    key = {"b_pk": experiment_pk, "b_kind": kind, "b_client": client, "b_seq": number}
    if conn.execute(_EXTEND, key).rowcount == 1:  # the usual case: one statement
        return True
    before = conn.execute(_RUN_BEFORE, key).scalar()
    if before is not None and before >= number:
        return False  # within a run stored: a retry
    return conn.execute(_start_statement(db), key).first() is not None


# the lock an UPDATE of the experiment row takes (a points append's touch): one at a time
_LOCK_EXPERIMENT = (
    select(experiments.c.id)
    .where(experiments.c.id == bindparam("b_pk"))
    .with_for_update(key_share=True)
)
_R = ingest_ranges.c
_MINE = (
    _R.experiment_id == bindparam("b_pk"),
    _R.kind == bindparam("b_kind"),
    _R.client_id == bindparam("b_client"),
)
# the end of the run starting at or before the seq (the primary key's order)
_RUN_BEFORE = (
    select(_R.high).where(*_MINE, _R.low <= bindparam("b_seq")).order_by(_R.low.desc()).limit(1)
)
# the run ending just before the seq takes it in, unless a run starts at the seq (the one
# run that can hold it besides: runs never overlap, so any other run holding the seq would
# hold the seq before it too)
_STARTED = ingest_ranges.alias("started")
_EXTEND = (
    update(ingest_ranges)
    .where(
        *_MINE,
        _R.high == bindparam("b_seq") - 1,
        ~exists().where(
            _STARTED.c.experiment_id == bindparam("b_pk"),
            _STARTED.c.kind == bindparam("b_kind"),
            _STARTED.c.client_id == bindparam("b_client"),
            _STARTED.c.low == bindparam("b_seq"),
        ),
    )
    .values(high=bindparam("b_seq"))
)
_STARTS: dict[bool, Any] = {}


def _start_statement(db: Database) -> Any:
    """A new run of the one seq: nothing (no row returned) when a run already starts or
    ends there. Built once per dialect: constructing it per batch cost more than running it."""
    if db.is_sqlite not in _STARTS:
        _STARTS[db.is_sqlite] = (
            db.insert(ingest_ranges)
            .values(
                experiment_id=bindparam("b_pk"),
                kind=bindparam("b_kind"),
                client_id=bindparam("b_client"),
                low=bindparam("b_seq"),
                high=bindparam("b_seq"),
            )
            .on_conflict_do_nothing()
            .returning(ingest_ranges.c.low)
        )
    return _STARTS[db.is_sqlite]
