"""Stores: one interface (``base.Store``), SqlStore (embedded) and HttpStore (server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.core.artifacts import ArtifactLimits
    from mltrail.store.base import Store


def open_store(
    settings: Settings,
    *,
    http_timeout: float | None = None,
    http_retries: int | None = None,
    http_deadline: float | None = None,
) -> Store:
    """The one way to open the store ``settings`` select: HttpStore when ``settings.url`` is
    set, else SqlStore on the embedded SQLite file under ``settings.home``.

    Imports lazily, so a training script in server mode never imports SQLAlchemy.

    Args:
        settings: read once by the caller's edge.
        http_timeout: seconds per request of an HttpStore (its default when None).
        http_retries: extra attempts of an HttpStore (its default when None).
        http_deadline: seconds one call of an HttpStore may take, when the settings give
            none (``MLTRAIL_REQUEST_DEADLINE`` wins; HttpStore's default when both are None).
    """
    if settings.url:
        from mltrail.store.http import DEFAULT_RETRIES, DEFAULT_TIMEOUT, HttpStore
        from mltrail.store.http.deadline import DEFAULT_DEADLINE

        return HttpStore(
            settings.url,
            settings.auth_token,
            timeout=DEFAULT_TIMEOUT if http_timeout is None else http_timeout,
            retries=DEFAULT_RETRIES if http_retries is None else http_retries,
            deadline=settings.request_deadline or http_deadline or DEFAULT_DEADLINE,
        )
    from mltrail.store.blobs import open_blobs
    from mltrail.store.sql import SqlStore

    blobs = open_blobs(settings.artifacts_location)
    return SqlStore.open(
        settings.db_url,
        blobs=blobs,
        limits=artifact_limits(settings),
        crash_after=settings.crash_after,
        trash_days=settings.trash_days,
    )


def artifact_limits(settings: Settings) -> ArtifactLimits:
    """The per-file limit and per-project quota ``settings`` set (defaults where unset)."""
    from mltrail.core.artifacts import ArtifactLimits

    defaults = ArtifactLimits()
    return ArtifactLimits(
        max_file_bytes=settings.artifact_max_file_bytes or defaults.max_file_bytes,
        project_quota_bytes=settings.artifact_quota_bytes or defaults.project_quota_bytes,
    )
