"""Migrations on open: the shipped Alembic scripts, applied when the database is behind them."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from mltrail.store.sql.engine import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def upgrade(db: Database) -> None:
    """Apply every pending Alembic migration shipped in the package (idempotent). A database
    already at the head is left as it is without importing Alembic, which stays resident
    (11 MB with Mako and Pygments) in a server that restarts on a migrated database."""
    if _stored_revisions(db) == {head_revision()}:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        if not db.is_sqlite:
            # Two processes opening a fresh database at once must not both create the tables.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(58700001)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


_REVISION = re.compile(r'^(down_)?revision\b[^=]*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


@functools.cache
def head_revision() -> str:
    """The newest shipped migration: the one revision that no other names as its parent,
    read from the scripts' ``revision``/``down_revision`` lines (what Alembic would find);
    empty when they name no single head, which leaves the judging to Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, name in _REVISION.findall(script.read_text()):
            (parents if down else revisions).add(name)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else ""


def _stored_revisions(db: Database) -> set[str]:
    """The revisions the database's ``alembic_version`` table records (none when missing)."""
    try:
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except DBAPIError:
        return set()
    return {str(row[0]) for row in rows}
