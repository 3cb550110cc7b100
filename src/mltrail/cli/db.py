"""``mltrail db upgrade``: apply the database migrations."""

from __future__ import annotations

import click

from mltrail.config import Settings


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--db", "db_url", default=None, help="Database URL [default: embedded SQLite].")
def upgrade(db_url: str | None) -> None:
    """Create or migrate the schema to the latest revision (safe to repeat)."""
    from mltrail.store.sql import SqlStore

    settings = Settings.from_env()
    if db_url is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    url = db_url or settings.db_url
    SqlStore.open(url).close()  # opening runs the migrations
    click.echo(f"database is up to date: {_redact(url)}")


def _redact(url: str) -> str:
    """Hide a password in the URL."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
