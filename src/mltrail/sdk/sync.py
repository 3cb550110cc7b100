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
from urllib.parse import SplitResult, urlsplit

from mltrail.core.errors import AuthenticationError, MltrailError, PermissionDeniedError
from mltrail.sdk.offline import RunSpec, number_run, offline_runs
from mltrail.sdk.records import MalformedRecord, Record, read_record
from mltrail.sdk.spool import Spool, SpoolWarning, identity_target, is_transient, target_of

if TYPE_CHECKING:
    from mltrail.config import Settings
    from mltrail.store.base import Store


@dataclass(frozen=True)
class Destination:
    """Which spooled files a replay uploads.

    Attributes:
        identity: ``store:<id>`` of the store (:func:`~mltrail.sdk.spool.identity_target`),
            when known: files spooled for that store, whatever URL reached it.
        location: the URL or database the store was opened from: files spooled before the
            store's identity was known (a run started offline), compared as locations (a
            loopback name is any loopback name).
        retarget: every file belongs here (``mltrail sync --to URL``).
    """

    identity: str | None
    location: str
    retarget: bool = False

    def holds(self, target: str) -> bool:
        return self.retarget or target == self.identity or same_location(target, self.location)


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


def replay(
    spool: Spool,
    store: Store,
    destination: Destination | str,
    *,
    client_id: str | None = None,
    runs: dict[str, tuple[int, int]] | None = None,
) -> SyncResult:
    """Upload the spooled files for ``destination`` in order, removing each once stored.

    Args:
        spool: the spool.
        store: where to upload.
        destination: which files belong to that store (a string: one target); others stay.
        client_id: only this writer's files (a writer replaying its own).
        runs: offline runs already numbered at this store (run id to its experiment).

    Raises:
        AuthenticationError / PermissionDeniedError: the store refuses this user.
    """
    if isinstance(destination, str):
        destination = Destination(destination, destination)
    result = SyncResult()
    numbering = _Numbering(spool, store, destination, dict(runs or {}), result)
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
        if not destination.holds(record.target):
            result.other_target += 1
            numbering.keep(record.run)
            continue
        try:
            stored = numbering.send(record)
        except (AuthenticationError, PermissionDeniedError):
            raise
        except Exception as exc:
            if not is_refusal(exc):
                result.remaining += len(pending) - index
                result.errors.append(f"{type(exc).__name__}: {exc}")
                return result
            _set_aside(spool, path, f"refused by the store: {exc}", result)
            continue
        except MalformedRecord as exc:  # an offline run whose spec is gone
            _set_aside(spool, path, f"unreadable spool file: {exc}", result)
            continue
        path.unlink(missing_ok=True)
        result.sent += 1
        if record.kind == "metrics":
            result.points += stored
        elif record.kind == "logs":
            result.lines += stored
    if client_id is None:  # a whole-spool replay (sync): ended runs' specs may go
        numbering.forget_ended()
    return result


class _Numbering:
    """Sends records, numbering the offline runs they name (once per replay)."""

    def __init__(
        self,
        spool: Spool,
        store: Store,
        destination: Destination,
        runs: dict[str, tuple[int, int]],
        result: SyncResult,
    ) -> None:
        self.spool, self.store, self.result = spool, store, result
        self.target = destination.identity or destination.location
        self.runs = runs
        self.waiting: set[str] = set()  # runs with files left in the spool

    def send(self, record: Record) -> int:
        if record.project_id is not None and record.experiment_id is not None:
            return record.send(self.store, record.project_id, record.experiment_id)
        assert record.run is not None
        self.waiting.add(record.run)  # until sent (a failed send leaves it waiting)
        p, e = self.runs.get(record.run) or self._number(record.run)
        stored = record.send(self.store, p, e)
        self.waiting.discard(record.run)
        return stored

    def _number(self, run: str) -> tuple[int, int]:
        spec = RunSpec.load(self.spool, run)
        if spec is None:
            raise MalformedRecord(f"offline run {run}: its spec (spool/runs/{run}.json) is gone")
        p, e, created = number_run(self.store, self.spool, spec, self.target)
        self.runs[run] = (p, e)
        if created:
            name = spec.display_name or f"experiment-{e}"
            self.result.created.append(f"experiment {p}/{e} {name!r} (offline run {run})")
        return p, e

    def keep(self, run: str | None) -> None:
        if run is not None:
            self.waiting.add(run)

    def forget_ended(self) -> None:
        """Remove the spec files of ended runs that have nothing left in the spool."""
        if self.result.remaining:
            return  # not every file was read
        for spec in offline_runs(self.spool):
            if spec.ended and spec.run not in self.waiting and spec.numbered:
                spec.remove(self.spool)


def same_location(a: str, b: str) -> bool:
    """Two server URLs (or database URLs) name one place: equal, or the same scheme and port
    on loopback names (``localhost``, ``127.0.0.1``, ``::1``)."""
    if a == b:
        return True
    ua, ub = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    if ua.scheme not in ("http", "https") or (ua.scheme, ua.path) != (ub.scheme, ub.path):
        return False
    try:
        same_port = _port(ua) == _port(ub)
    except ValueError:
        return False
    return same_port and (ua.hostname == ub.hostname or {ua.hostname, ub.hostname} <= _LOOPBACK)


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _port(url: SplitResult) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _set_aside(spool: Spool, path: Path, reason: str, result: SyncResult) -> None:
    try:
        moved = spool.set_aside(path, reason)
    except FileNotFoundError:  # another replay took it
        return
    result.rejected += 1
    message = f"{path.name} set aside ({reason}); kept in {moved.parent}"
    result.errors.append(message)
    warnings.warn(f"mltrail spool: {message}", SpoolWarning, stacklevel=3)


def sync(store: Store, settings: Settings, *, retarget: bool = False) -> SyncResult:
    """Upload every spooled batch that belongs to the store ``settings`` select.

    Args:
        store: the store to upload into (the one ``open_store(settings)`` gives).
        settings: where the spool lives and which store it is.
        retarget: upload every spooled batch to this store, whichever it was spooled for.

    Returns:
        What was sent, created, set aside and what remains.
    """
    spool = Spool.from_settings(settings)
    try:
        identity = identity_target(store.store_identity())
    except Exception as exc:
        if not is_transient(exc):
            raise
        return SyncResult(remaining=len(spool.files()), errors=[f"{type(exc).__name__}: {exc}"])
    with spool.sync_lock():  # one sync at a time: another waits, then finds less to do
        return replay(spool, store, Destination(identity, target_of(settings), retarget))


def sync_in_background(store: Store, settings: Settings) -> None:
    """Upload what earlier runs left in the spool, without delaying this one."""
    if not Spool.from_settings(settings).files():  # the common case costs one listdir
        return

    def run() -> None:
        with contextlib.suppress(Exception):  # `mltrail sync` reports problems; a run must not
            sync(store, settings)

    threading.Thread(target=run, name="mltrail-spool-sync", daemon=True).start()
