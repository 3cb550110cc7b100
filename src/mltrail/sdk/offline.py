"""Runs that start while the server is unreachable: numbered by the server when it answers.

``mltrail.start()`` makes a :class:`RunSpec` before it talks to the store: everything the
experiment is created with, and ``run``, an id the client generates. The store's
``create_experiment(..., client_id=run)`` is idempotent on it, so the experiment is created
exactly once however many times creating it is tried (the writer once the server answers,
``mltrail sync``, the next run's background sync, all racing or not).

While the store is unreachable the spec waits in ``spool/runs/<run>.json`` and every batch is
spooled naming the run instead of an experiment number; the replay numbers the run (once per
replay) and sends its batches to the experiment it got. The spec file records where the run was
numbered (``numbered``: target to ``[project, experiment]``), so ``mltrail sync`` reports only the
experiments it created itself, and is removed once the run has ended and nothing of it waits.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.api.projects import resolve_project
from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import Status
from mltrail.core.wire import dump_json, parse_json
from mltrail.sdk.inputs import tags_tuple
from mltrail.sdk.spool import SpoolWarning

if TYPE_CHECKING:
    from mltrail.core.types import Experiment
    from mltrail.sdk.spool import Spool
    from mltrail.store.base import Store

RUNS_DIR = "runs"


@dataclass
class RunSpec:
    """What a run's experiment is created with, checked on the client.

    Attributes:
        run: the client-generated id (32 hex digits), the experiment's ``client_id``.
        project: a project id or display name (a new name creates the project).
        numbered: targets the run was numbered at, to ``[project_id, experiment_id]``.
        ended: the run is over: once nothing of it is spooled, the spec file goes.
        updates: ``update_experiment`` changes (name, tags, notes...) made before numbering,
            applied in order each time the run is numbered (each is idempotent).
    """

    project: int | str | None  # None: a resumed run, whose project the resume names
    display_name: str | None = None
    description: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    numbered: dict[str, list[int]] = field(default_factory=dict)
    ended: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)  # record edits made offline

    @classmethod
    def checked(
        cls,
        project: int | str | None,
        display_name: str | None,
        description: str | None,
        hyperparameters: dict[str, Any],
        environment: dict[str, Any],
        source: dict[str, Any],
        tags: Any,
    ) -> RunSpec:
        """A spec from ``start()``'s arguments, each checked (ValidationError names it)."""
        if isinstance(project, str) and not project.strip().isdigit():
            project = validation.project_name(project)
        elif project is not None:
            project = validation.require_int(project, "project", minimum=1)
        return cls(
            project=project,
            display_name=None if display_name is None else validation.experiment_name(display_name),
            description=validation.experiment_description(description),
            hyperparameters=hyperparameters,
            environment=environment,
            source=source,
            tags=list(tags_tuple(tags)),
        )

    @property
    def project_id(self) -> int | None:
        """The project's id when the run was given one (a name is resolved by the store)."""
        return self.project if isinstance(self.project, int) else None

    # --- the spec file ---------------------------------------------------------------------------
    @staticmethod
    def path(spool: Spool, run: str) -> Path:
        return spool.directory / RUNS_DIR / f"{validation.client_run_id(run, 'run')}.json"

    def save(self, spool: Spool) -> None:
        """Write the spec file whole (a temporary file renamed into place)."""
        path = self.path(spool, self.run)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_bytes(dump_json(asdict(self)))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, spool: Spool, run: str) -> RunSpec | None:
        """The spec of ``run``, or None when its file is missing or unreadable."""
        try:
            return cls(**parse_json(cls.path(spool, run).read_bytes()))
        except (OSError, ValueError, TypeError):
            return None

    def remove(self, spool: Spool) -> None:
        with contextlib.suppress(OSError):
            self.path(spool, self.run).unlink()


def create_record(store: Store, spec: RunSpec, status: Status = Status.RUNNING) -> Experiment:
    """Create the run's experiment, or get the one an earlier try created (idempotent)."""
    if spec.project is None:
        raise ValidationError("is required: a project id or display name", "project")
    project_id = resolve_project(store, spec.project)
    return store.create_experiment(
        project_id,
        display_name=spec.display_name,
        description=spec.description,
        hyperparameters=spec.hyperparameters,
        environment=spec.environment,
        source=spec.source,
        tags=spec.tags,
        status=status,
        client_id=spec.run,
    )


def number_run(store: Store, spool: Spool, spec: RunSpec, target: str) -> tuple[int, int, bool]:
    """Number a run started offline at ``store`` and record it in its spec file.

    Returns:
        ``(project_id, experiment_id, created)``; ``created`` is False when the spec already
        said it was numbered there (by the run's own writer, or an earlier sync).
    """
    record = create_record(store, spec)
    p, e = record.project_id, record.experiment_id
    # an earlier numbering (another process's sync) may have created it from an older spec:
    # only values the record lacks are sent (a first creation already carried them all)
    stale = {k: v for k, v in spec.hyperparameters.items() if record.hyperparameters.get(k) != v}
    if stale:
        store.update_experiment(p, e, hyperparameters=stale)
    for changes in spec.updates:
        store.update_experiment(p, e, **changes)
    created = target not in spec.numbered
    spec.numbered[target] = [record.project_id, record.experiment_id]
    with contextlib.suppress(OSError):  # the record is idempotent: a lost note costs nothing
        spec.save(spool)
    return record.project_id, record.experiment_id, created


def offline_runs(spool: Spool) -> list[RunSpec]:
    """Every run spec waiting in the spool."""
    folder = spool.directory / RUNS_DIR
    if not folder.is_dir():
        return []
    specs = (RunSpec.load(spool, p.stem) for p in sorted(folder.glob("*.json")))
    return [s for s in specs if s is not None]


def start_offline(spool: Spool, spec: RunSpec, fault: BaseException) -> None:
    """Keep the spec of a run starting while the store is unreachable, and say so once."""
    try:
        spec.save(spool)
        kept = f"everything is kept in {spool.directory}"
    except OSError as exc:  # the spool will say what it drops; training goes on regardless
        kept = f"its spec could not be kept ({exc})"
    warnings.warn(
        f"mltrail: the store is unreachable ({fault}); run {spec.run} started offline and "
        f"{kept}. Its experiment is created, once, when the store answers: by this run, "
        "`mltrail sync` or the next run",
        SpoolWarning,
        stacklevel=3,
    )


def end_offline(
    spool: Spool, spec: RunSpec, ref: tuple[int, int] | None, writers: list[str]
) -> None:
    """A run started offline ended: its spec goes once it is numbered and nothing of it
    (``writers``: its writers' client ids) waits in the spool; else it is marked ended, for
    the sync that sends its last file to remove it."""
    spec.ended = True
    if ref is not None and not any(spool.files(w) for w in writers):
        spec.remove(spool)
        return
    with contextlib.suppress(OSError):
        spec.save(spool)
