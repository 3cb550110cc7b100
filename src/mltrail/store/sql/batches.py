"""Ingest batch receipts: (experiment, kind, client_id, seq) is stored once, with its data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mltrail.core import validation
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import ingest_batches


def claim_batch(
    conn: Connection, db: Database, experiment_pk: int, kind: str, client_id: Any, seq: Any
) -> bool:
    """Record the batch; False when it was already stored (a retry), so the caller skips it.

    Runs in the caller's transaction, so the receipt commits or rolls back with the data.
    """
    client = validation.require_text(client_id, "client_id", min_len=1, max_len=200)
    number = validation.require_int(seq, "seq", minimum=0, maximum=validation.MAX_DB_ID)
    stmt = (
        db.insert(ingest_batches)
        .values(
            experiment_id=experiment_pk,
            kind=kind,
            client_id=client,
            seq=number,
            created_at=db.clock(),
        )
        .on_conflict_do_nothing(index_elements=["experiment_id", "kind", "client_id", "seq"])
        .returning(ingest_batches.c.id)
    )
    return conn.execute(stmt).first() is not None
