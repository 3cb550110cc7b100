"""``mltrail db backup``: an online, consistent copy of a SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click

PG_DUMP_HINT = (
    "mltrail db backup copies SQLite databases; back up PostgreSQL with its own tool, "
    "which takes a consistent snapshot while the server runs: "
    "pg_dump --format=custom --file=PATH DBNAME (restore with pg_restore --dbname=DBNAME PATH)"
)
PAGES_PER_STEP = 1024  # copy in steps so writers are only briefly held up


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL.

    Raises:
        click.UsageError: a PostgreSQL URL (with the ``pg_dump`` command to use instead), an
            in-memory or unknown URL.
    """
    if url.startswith("postgresql"):
        raise click.UsageError(PG_DUMP_HINT)
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        raise click.UsageError(f"--db: not a SQLite database file URL: {url!r}")
    return Path(url[len(prefix) :].split("?", 1)[0])


def backup_sqlite(url: str, destination: str | Path) -> int:
    """Copy the database at ``url`` to ``destination`` with SQLite's online backup API.

    The copy is a consistent snapshot even while other processes write (WAL included); the
    destination must not exist yet, so an older backup is never overwritten by mistake.

    Args:
        url: ``sqlite:///PATH`` of the database.
        destination: the new file.

    Returns:
        The number of database pages copied.

    Raises:
        click.UsageError: a PostgreSQL URL, a missing source or an existing destination.
    """
    source = sqlite_path(url)
    target = Path(destination)
    if not source.is_file():
        raise click.UsageError(f"--db: no database at {source}")
    if target.exists():
        raise click.UsageError(f"PATH: {target} already exists; choose a new file")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=PAGES_PER_STEP)
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    finally:
        dst.close()
        src.close()
    return pages
