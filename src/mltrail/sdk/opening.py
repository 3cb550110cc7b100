"""Opening a run: its store, its experiment record, and checks of its integer fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mltrail.api.projects import resolve_project
from mltrail.config import Settings
from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.points import MAX_EPOCH
from mltrail.core.types import Status
from mltrail.sdk.buffer import MAX_INT64
from mltrail.sdk.environment import collect_environment, collect_source
from mltrail.sdk.inputs import jsonable, params_mapping
from mltrail.sdk.offline import RunSpec, create_record
from mltrail.sdk.spool import identity_target, target_of

if TYPE_CHECKING:
    from mltrail.core.types import Experiment as ExperimentRecord
    from mltrail.store.base import Store

HTTP_TIMEOUT_SECONDS = 30.0  # per request of a run's own HttpStore (a 50,000-point batch fits)
HTTP_RETRIES = 1  # the writer has its own retries, then the spool
HTTP_DEADLINE_SECONDS = 60.0  # per call, unless MLTRAIL_REQUEST_DEADLINE says otherwise


def int64_field(value: Any, field: str) -> int:
    """A non-negative integer that fits the stored 64-bit columns, or ValidationError."""
    number = validation.require_int(value, field, minimum=0)
    if number > MAX_INT64:
        raise ValidationError(f"must be at most {MAX_INT64}, got {number}", field)
    return number


def epoch_field(value: Any) -> int:
    """An epoch the store keeps (0 to :data:`~mltrail.core.points.MAX_EPOCH`, a 32-bit
    column), or ValidationError when logged rather than a batch refused later."""
    return validation.require_int(value, "epoch", minimum=0, maximum=MAX_EPOCH)


def open_run_store(settings: Settings) -> Store:
    """The store a run writes to. In server mode, requests give up sooner than HttpStore's
    defaults: the writer retries and spools by itself, so training is not held for minutes."""
    from mltrail.store import open_store

    return open_store(
        settings,
        http_timeout=HTTP_TIMEOUT_SECONDS,
        http_retries=HTTP_RETRIES,
        http_deadline=HTTP_DEADLINE_SECONDS,
    )


def store_target(store: Store, settings: Settings) -> str:
    """The spool's name for ``store``: its identity, or (a server too old to say) its URL."""
    try:
        return identity_target(store.store_identity())
    except Exception:
        return target_of(settings)


def run_spec(
    settings: Settings,
    project: int | str | None,
    display_name: str | None,
    description: str | None,
    hyperparams: Any,
    tags: Sequence[str] | None,
    resume: tuple[int | str, int] | None = None,
) -> RunSpec:
    """Everything the run's experiment is created with, checked before the store is asked
    (so a bad argument raises the same whether the store answers or not)."""
    params = jsonable(params_mapping(hyperparams))
    if project is None:
        project = settings.project  # MLTRAIL_PROJECT alone names the default project
    if project is None and resume is None and settings.resume is None:
        raise ValidationError("is required: a project id or display name", "project")
    return RunSpec.checked(
        project,
        display_name,
        description,
        params,
        collect_environment(),
        collect_source(),
        tags,
    )


def open_record(
    store: Store, settings: Settings, spec: RunSpec, resume: tuple[int | str, int] | None = None
) -> ExperimentRecord:
    """Create the run's experiment (idempotent on ``spec.run``), attach to the one the agent
    pre-created, or resume ``(project, experiment)`` (back to ``running``; hyperparameters
    given are merged in)."""
    resume = resume or settings.resume
    if resume is not None:
        return resume_record(store, resume, spec.hyperparameters)
    if settings.project and settings.experiment:  # started by the agent: attach
        project_id = resolve_project(store, settings.project, create=False)
        return store.update_experiment(
            project_id,
            settings.experiment,
            status=Status.RUNNING,
            hyperparameters=spec.hyperparameters or None,
            environment=spec.environment,
            source=spec.source,
        )
    return create_record(store, spec)


def resume_record(store: Store, resume: Any, params: dict[str, Any] | None) -> ExperimentRecord:
    """The resumed experiment, ``running`` again; ValidationError for a malformed pair."""
    if not isinstance(resume, (tuple, list)) or len(resume) != 2:
        raise ValidationError(f"must be a (project, experiment) pair, got {resume!r}", "resume")
    project_id = resolve_project(store, resume[0], create=False)
    number = validation.require_int(resume[1], "resume.experiment", minimum=1)
    record = store.resume_experiment(project_id, number)
    if params:
        record = store.update_experiment(project_id, number, hyperparameters=params)
    return record
