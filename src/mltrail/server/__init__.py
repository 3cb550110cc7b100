"""The REST server: ``create_app(settings, store)`` (FastAPI) serving a Store under /api/v1."""

from __future__ import annotations

from mltrail.server.app import create_app

__all__ = ["create_app"]
