"""An experiment's lifecycle: its state (active, archived, deleted), the trash's retention,
and which status changes are allowed.

* **active**: listed and searched by default.
* **archived**: kept as is but hidden from lists unless asked (``include="archived"``/``"all"``).
* **deleted**: in the trash: hidden like archived, restorable for the store's
  ``trash_retention`` seconds (``MLTRAIL_TRASH_DAYS``), after which a purge may remove it for good.
* **purged**: gone with everything it owned (points, logs, charts, weights links, artifacts'
  paths and the blobs no other experiment references); its number is never given again.

Status moves: a finished run (``done``, ``failed``, ``stopped``, ``crashed``) cannot go back to
``running`` or ``queued`` except by resuming it (``resume=True``: ``mltrail.start(resume=...)``
and a job's retry); it may move to another final status (an agent reporting the exit code of a
run that was recorded stopped).
"""

from __future__ import annotations

import enum

from mltrail.core.errors import ConflictError, ValidationError
from mltrail.core.types import Status


class Lifecycle(str, enum.Enum):
    """Where an experiment stands: listed, hidden, or in the trash."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    DELETED = "deleted"


INCLUDE_CHOICES = ("active", "archived", "deleted", "all")


def include(value: object) -> tuple[Lifecycle, ...]:
    """Parse a search's ``include``: ``active`` (default), ``archived``, ``deleted`` or ``all``.

    Raises:
        ValidationError: (field ``include``) anything else.
    """
    if value is None:
        return (Lifecycle.ACTIVE,)
    if isinstance(value, tuple) and all(isinstance(v, Lifecycle) for v in value):
        return value
    if value == "all":
        return tuple(Lifecycle)
    if isinstance(value, str) and value in INCLUDE_CHOICES:
        return (Lifecycle(value),)
    raise ValidationError(f"must be one of {', '.join(INCLUDE_CHOICES)}, got {value!r}", "include")


def include_text(states: tuple[Lifecycle, ...]) -> str:
    """The one ``include`` word for parsed states (for the wire)."""
    return "all" if len(states) > 1 else states[0].value


PROJECT_INCLUDE_CHOICES = ("active", "deleted", "all")


def project_include(value: object) -> str:
    """Parse which projects a listing shows: ``active`` (default), ``deleted`` or ``all``.

    A project has no archive: it is active, or deleted (hidden from lists, restorable, its
    experiments kept as they are).

    Raises:
        ValidationError: (field ``include``) anything else.
    """
    if value is None:
        return "active"
    if isinstance(value, str) and value in PROJECT_INCLUDE_CHOICES:
        return value
    raise ValidationError(
        f"must be one of {', '.join(PROJECT_INCLUDE_CHOICES)}, got {value!r}", "include"
    )


def check_status_change(old: Status, new: Status, *, resume: bool = False) -> None:
    """Refuse moving a finished run back to ``running`` or ``queued`` unless it is resumed.

    Args:
        old: the stored status (a run judged crashed is stored ``running``: it may continue).
        new: the status asked for.
        resume: the caller resumes the run (``mltrail.start(resume=...)``, a job's retry).

    Raises:
        ConflictError: (field ``status``) a finished run asked to run again without resume.
    """
    if old.is_final and not new.is_final and not resume:
        raise ConflictError(
            f"experiment already ended ({old.value}); it can only run again by resuming it",
            "status",
        )


def trash_seconds(days: float) -> float:
    """The trash's retention in seconds, from ``MLTRAIL_TRASH_DAYS``."""
    if days < 0:
        raise ValidationError("must be >= 0", "trash_days")
    return days * 86400.0
