"""SqlStore: the Store over SQLite or PostgreSQL (SQLAlchemy Core).

Composed of one ``Sql<Noun>`` half per noun (``store/sql/<noun>.py``); each Store method there
is one transaction. This module only opens the database, migrates it and scopes views to users.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from mltrail.config import DEFAULT_CRASH_AFTER_SECONDS, DEFAULT_TRASH_DAYS
from mltrail.core.artifacts import ArtifactLimits
from mltrail.core.errors import TransportError, ValidationError
from mltrail.core.lifecycle import trash_seconds
from mltrail.core.types import JobGrant, User
from mltrail.store.artifacts import BlobStore
from mltrail.store.base import Store
from mltrail.store.sql.access import Scope
from mltrail.store.sql.agents import SqlAgents
from mltrail.store.sql.artifacts import SqlArtifacts
from mltrail.store.sql.charts import SqlCharts
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.experiments import SqlExperiments
from mltrail.store.sql.external import SqlExternal
from mltrail.store.sql.identity import SqlIdentity
from mltrail.store.sql.jobs import SqlJobs
from mltrail.store.sql.lifecycle import SqlLifecycle
from mltrail.store.sql.logs import SqlLogs
from mltrail.store.sql.migrate import upgrade
from mltrail.store.sql.points import SqlPoints
from mltrail.store.sql.projects import SqlProjects
from mltrail.store.sql.rewind import SqlRewind
from mltrail.store.sql.users import Auth, SqlUsers
from mltrail.store.sql.weights import SqlWeights


class SqlStore(
    SqlProjects,
    SqlExperiments,
    SqlLifecycle,
    SqlPoints,
    SqlRewind,
    SqlExternal,
    SqlCharts,
    SqlWeights,
    SqlLogs,
    SqlJobs,
    SqlAgents,
    SqlUsers,
    SqlArtifacts,
    SqlIdentity,
    Store,
):
    """The embedded and server-side store.

    Build it with :meth:`open`; scope it to a user with :meth:`as_user` (the server does, per
    request). Unscoped, it is the embedded single user and sees every project.
    """

    def __init__(
        self,
        db: Database,
        scope: Scope | None = None,
        *,
        blobs: BlobStore | None = None,
        limits: ArtifactLimits | None = None,
    ) -> None:
        self._db = db
        self._scope = scope or Scope()
        self._blobs = blobs
        self._limits = limits or ArtifactLimits()
        self.auth = Auth(db)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        blobs: BlobStore | None = None,
        limits: ArtifactLimits | None = None,
        crash_after: float = DEFAULT_CRASH_AFTER_SECONDS,
        trash_days: float = DEFAULT_TRASH_DAYS,
    ) -> SqlStore:
        """Connect to ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``) and migrate.

        Args:
            url: the database URL; a SQLite file's folder is created when missing.
            clock: source of unix times, injectable for tests.
            blobs: where artifact bytes go (``store.blobs.open_blobs``); without it, artifact
                operations answer that no storage is configured.
            limits: per-file limit and per-project quota of artifacts (defaults when None).
            crash_after: seconds without a heartbeat after which a running experiment reads
                ``crashed`` (``Settings.crash_after``).
            trash_days: how long a deleted experiment stays restorable (``Settings.trash_days``).

        Raises:
            ValidationError: for an unsupported URL (field ``db_url``).
        """
        try:
            db = Database(make_engine(url), clock, crash_after, trash_seconds(trash_days))
            upgrade(db)
        except (OSError, OperationalError) as exc:
            raise _unopenable(url, exc) from None
        return cls(db, blobs=blobs, limits=limits)

    def as_user(self, user: User, grant: JobGrant | None = None) -> SqlStore:
        """A view acting for ``user``, sharing this store's engine and blob store; ``grant``
        limits it to a job's project and experiment (a job's token)."""
        return SqlStore(self._db, Scope(user, grant), blobs=self._blobs, limits=self._limits)

    @property
    def user(self) -> User | None:
        """The user this view acts for (``None``: embedded, sees all)."""
        return self._scope.user

    @property
    def url(self) -> str:
        return self._db.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Dispose of the engine (closes every view sharing it)."""
        self._db.close()


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy reads: show none of it
        return "the database"


def _unopenable(url: str, exc: Exception) -> Exception:
    """A clear error for a SQLite file that cannot be opened or written (read-only or full
    folder, no permission): one line naming the file and the fix, not SQLAlchemy's."""
    # one line (psycopg's reason spans lines; SQLAlchemy adds a link to its own)
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if not url.startswith("sqlite:///"):
        if isinstance(exc, OSError):
            return exc
        return TransportError(f"cannot open {_without_password(url)}: {reason}")
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return ValidationError(
        f"cannot open the database {path} ({reason}): its folder must exist and be writable "
        "(set MLTRAIL_HOME to a writable folder, or MLTRAIL_URL to use a server)",
        "db_url",
    )
