"""The database's identity: the one row of ``store_identity`` (made by its migration)."""

from __future__ import annotations

from sqlalchemy import select

from mltrail.store.identity import IdentityStore
from mltrail.store.sql.access import SqlNoun
from mltrail.store.sql.tables import store_identity


class SqlIdentity(SqlNoun, IdentityStore):
    def store_identity(self) -> str:
        with self._db.read() as conn:
            return str(conn.execute(select(store_identity.c.store_id).limit(1)).scalar_one())
