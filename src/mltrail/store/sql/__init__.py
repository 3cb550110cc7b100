"""SqlStore: mltrail's store over SQLite (default, WAL) or PostgreSQL, via SQLAlchemy Core."""

from mltrail.store.sql.store import SqlStore

__all__ = ["SqlStore"]
