"""Ingest batch receipts: (experiment, kind, client_id, seq) is stored once, with its data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam

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
    row = {"b_pk": experiment_pk, "b_kind": kind, "b_client": client, "b_seq": number}
    row["b_at"] = db.clock()
    return conn.execute(_claim_statement(db), row).first() is not None


_CLAIMS: dict[bool, Any] = {}


def _claim_statement(db: Database) -> Any:
    """The receipt's INSERT, built once per dialect: constructing it per batch cost more than
    running it (a one-point MLflow log_metric is a batch)."""
    if db.is_sqlite not in _CLAIMS:
        _CLAIMS[db.is_sqlite] = (
            db.insert(ingest_batches)
            .values(
                experiment_id=bindparam("b_pk"),
                kind=bindparam("b_kind"),
                client_id=bindparam("b_client"),
                seq=bindparam("b_seq"),
                created_at=bindparam("b_at"),
            )
            .on_conflict_do_nothing(index_elements=["experiment_id", "kind", "client_id", "seq"])
            .returning(ingest_batches.c.id)
        )
    return _CLAIMS[db.is_sqlite]
