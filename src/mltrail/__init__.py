"""mltrail: experiment tracking for machine learning.

The public surface is small and import is light: SQLAlchemy, FastAPI and Click load only when
a store, the server or the CLI is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mltrail.core.errors import (
    AuthenticationError,
    ConflictError,
    ExperimentStopped,
    MltrailError,
    NotFoundError,
    PermissionDeniedError,
    TransportError,
    ValidationError,
)
from mltrail.core.version import __version__ as __version__
from mltrail.core.weights import weights_hash
from mltrail.sdk.start import start

if TYPE_CHECKING:
    from mltrail.api import Api

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ExperimentStopped",
    "MltrailError",
    "NotFoundError",
    "PermissionDeniedError",
    "TransportError",
    "ValidationError",
    "as_api",
    "start",
    "weights_hash",
]


def as_api(url: str | None = None, token: str | None = None) -> Api:
    """The contract's entry point: ``as_api().experiments.list(project)`` and friends.

    Args:
        url: server URL; defaults to ``MLTRAIL_URL``; embedded mode when neither is set.
        token: API token; defaults to ``MLTRAIL_TOKEN``, else the token ``mltrail login``
            saved for that server (a token saved for another server is never sent).
    """
    from mltrail.api import Api
    from mltrail.config import Settings

    settings = Settings.from_env()
    if url is not None:
        settings = settings.with_(url=url, token=token or settings.token)
    return Api.from_settings(settings)
