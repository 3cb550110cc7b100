"""Replaying the spool: what ``mltrail sync``, the next run and a writer whose store came back
all do to upload spooled batches, in order, each stored once.

A file is read and checked whole first (:func:`mltrail.sdk.records.read_record`); one that cannot
be a record (unreadable, malformed) is set aside in ``spool/rejected/`` with the reason, and so is
a batch the store refuses with a 4xx answer (validation, not found, conflict, too large): neither
may block the files behind it. A transport fault stops the replay (the rest stay for next time);
an authentication or permission error raises, since every later file would meet it too.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mltrail.core.errors import AuthenticationError, MltrailError, PermissionDeniedError
from mltrail.sdk.records import MalformedRecord, Record, read_record
from mltrail.sdk.spool import Spool, SpoolWarning, is_transient, target_of

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.store.base import Store


@dataclass
class SyncResult:
    """What one replay did.

    Attributes:
        sent: files uploaded and removed.
        points / lines: metric points and log lines stored by those uploads (0 for replays the
            store had already seen).
        created: experiments of runs started offline that this replay numbered.
        remaining: files left because the store is unreachable.
        other_target: files spooled for another server or database, left alone.
        rejected: files set aside in ``spool/rejected`` (refused by the store, or unreadable).
        errors: one message per problem met.
    """

    sent: int = 0
    points: int = 0
    lines: int = 0
    created: list[str] = field(default_factory=list)
    remaining: int = 0
    other_target: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def is_refusal(exc: BaseException) -> bool:
    """True when the store refused the batch itself (a 4xx other than 401/403): sending it
    again can never work, so it is set aside instead of blocking the files behind it."""
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return False
    return isinstance(exc, MltrailError) and not is_transient(exc)


def replay(spool: Spool, store: Store, target: str, *, client_id: str | None = None) -> SyncResult:
    """Upload the spooled files for ``target`` in order, removing each once stored.

    Args:
        spool: the spool.
        store: where to upload.
        target: the spool's name of that store; other files are left alone.
        client_id: only this writer's files (a writer replaying its own).

    Raises:
        AuthenticationError / PermissionDeniedError: the store refuses this user.
    """
    result = SyncResult()
    pending = spool.files(client_id)
    for index, path in enumerate(pending):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # another replay took it
            continue
        try:
            record = read_record(data)
        except MalformedRecord as exc:
            _set_aside(spool, path, f"unreadable spool file: {exc}", result)
            continue
        if record.target != target:
            result.other_target += 1
            continue
        try:
            stored = _send(store, record)
        except (AuthenticationError, PermissionDeniedError):
            raise
        except Exception as exc:
            if not is_refusal(exc):
                result.remaining += len(pending) - index
                result.errors.append(f"{type(exc).__name__}: {exc}")
                return result
            _set_aside(spool, path, f"refused by the store: {exc}", result)
            continue
        path.unlink(missing_ok=True)
        result.sent += 1
        if record.kind == "metrics":
            result.points += stored
        elif record.kind == "logs":
            result.lines += stored
    return result


def _send(store: Store, record: Record) -> int:
    assert record.project_id is not None and record.experiment_id is not None
    return record.send(store, record.project_id, record.experiment_id)


def _set_aside(spool: Spool, path: Path, reason: str, result: SyncResult) -> None:
    try:
        moved = spool.set_aside(path, reason)
    except FileNotFoundError:  # another replay took it
        return
    result.rejected += 1
    message = f"{path.name} set aside ({reason}); kept in {moved.parent}"
    result.errors.append(message)
    warnings.warn(f"mltrail spool: {message}", SpoolWarning, stacklevel=3)


def sync(store: Store, settings: Settings) -> SyncResult:
    """Upload every spooled batch that belongs to the store ``settings`` select.

    Args:
        store: the store to upload into (the one ``open_store(settings)`` gives).
        settings: where the spool lives and which target it is for.

    Returns:
        What was sent, created, set aside and what remains.
    """
    return replay(Spool.from_settings(settings), store, target_of(settings))


def sync_in_background(store: Store, settings: Settings) -> None:
    """Upload what earlier runs left in the spool, without delaying this one."""
    if not Spool.from_settings(settings).files():  # the common case costs one listdir
        return

    def run() -> None:
        with contextlib.suppress(Exception):  # `mltrail sync` reports problems; a run must not
            sync(store, settings)

    threading.Thread(target=run, name="mltrail-spool-sync", daemon=True).start()
