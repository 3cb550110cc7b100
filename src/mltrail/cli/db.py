"""``mltrail db upgrade`` (apply the migrations) and ``mltrail db backup`` (online copy)."""

from __future__ import annotations

import click

from mltrail.cli.common import get_settings


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--db", "db_url", default=None, help="Database URL [default: embedded SQLite].")
def upgrade(db_url: str | None) -> None:
    """Create or migrate the schema to the latest revision (safe to repeat)."""
    from mltrail.store.sql import SqlStore

    url = db_url or get_settings().db_url
    SqlStore.open(url).close()  # opening runs the migrations
    click.echo(f"database is up to date: {_redact(url)}")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
@click.option("--db", "db_url", default=None, help="Database URL [default: embedded SQLite].")
def backup(path: str, db_url: str | None) -> None:
    """Copy a SQLite database to PATH while it is in use (a consistent snapshot).

    PostgreSQL is backed up with its own tool: ``pg_dump -Fc -f PATH DBNAME``.
    """
    from mltrail.cli.backup import backup_sqlite

    url = db_url or get_settings().db_url
    pages = backup_sqlite(url, path)
    click.echo(f"backed up {_redact(url)} to {path} ({pages} pages)")


def _redact(url: str) -> str:
    """Hide a password in the URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
