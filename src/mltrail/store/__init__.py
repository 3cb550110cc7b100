"""Stores: one interface (``base.Store``), SqlStore (embedded) and HttpStore (server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.store.base import Store


def open_store(settings: Settings) -> Store:
    """HttpStore when ``settings.url`` is set, else SqlStore on the embedded SQLite file.

    Imports lazily, so a training script in server mode never imports SQLAlchemy.
    """
    if settings.url:
        from mltrail.store.http import HttpStore

        return HttpStore(settings.url, settings.token)
    from mltrail.store.sql import SqlStore

    settings.home.mkdir(parents=True, exist_ok=True)
    return SqlStore.open(settings.db_url)
