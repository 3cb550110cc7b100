"""MLflow runs: create, get, update, search, params and tags, onto mltrail's experiments.

A run is an mltrail experiment (its ``run_id`` is ``"<project>-<experiment>"``); each handler
parses MLflow's message with :mod:`shapes` and makes the Store call ``/api/v1`` makes for the
same change (``docs/mlflow.md`` has the mapping).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Experiment, ExperimentRef, Status
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowJSONResponse, MlflowRoute
from mltrail.server.mlflow.messages import Message, MessageDep, StoreDep, project_of
from mltrail.store.base import Store

router = APIRouter(route_class=MlflowRoute)


@router.post("/runs/create")
def create_run(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """A new running experiment in the project the MLflow experiment is."""
    project = project_of(store, message.get("experiment_id") or shapes.DEFAULT_EXPERIMENT_ID)
    tags = shapes.tag_pairs(message.items("tags"))
    name = message.get("run_name")
    if name:
        tags[shapes.RUN_NAME_TAG] = shapes.text_value(name, "run_name", shapes.MAX_TAG_VAL_LEN)
    fields = shapes.tag_changes(tags)
    user = message.get("user_id")
    environment = {"user": user} if isinstance(user, str) and user else None
    start_time = message.get("start_time")  # ms, as MLflow sends it; the store keeps seconds
    started_at = (
        None if start_time in (None, "") else shapes.millis(start_time, "start_time") / 1000
    )
    try:
        experiment = store.create_experiment(
            project,
            display_name=fields.get("display_name"),
            description=fields.get("description", ""),
            source=fields.get("source"),
            tags=fields.get("tags", ()),
            environment=environment,
            status=Status.RUNNING,
            started_at=started_at,
        )
    except ConflictError:  # a deleted project: MLflow's answer for a deleted experiment
        raise ValidationError(
            f"The experiment {project} must be in the 'active' state. Current state is deleted.",
            "experiment_id",
        ) from None
    return {"run": shapes.run_shape(experiment, [])}


@router.get("/runs/get")
def get_run(message: MessageDep, store: StoreDep) -> Response:
    """The run with its latest metrics (with their steps), params and tags."""
    ref = message.run()
    experiment = store.get_experiment(ref.project_id, ref.experiment_id)
    series = store.list_series(ref.project_id, ref.experiment_id)
    return MlflowJSONResponse({"run": shapes.run_shape(experiment, series)})


@router.post("/runs/update")
def update_run(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """A new status (``end_run``, ``set_terminated``: with the client's ``end_time``, kept as
    the run's end) and / or name."""
    ref = message.run()
    raw_status = message.get("status")
    name = message.get("run_name")
    status = None if raw_status is None else shapes.status(raw_status)
    end_time = message.get("end_time")  # ms, as MLflow sends it; the store keeps seconds
    ended_at = None if end_time in (None, "") else shapes.millis(end_time, "end_time") / 1000
    # MLflow runs a finished run again (start_run(run_id=...)): mltrail calls it resuming,
    # which clears the end (the client sends the old end_time along: its field is required)
    resume = status in (Status.RUNNING, Status.QUEUED)
    try:
        experiment = store.update_experiment(
            ref.project_id,
            ref.experiment_id,
            status=status,
            display_name=shapes.text_value(name, "run_name", shapes.MAX_TAG_VAL_LEN) or None,
            resume=resume,
            ended_at=None if resume else ended_at,
        )
    except ValidationError as exc:  # the store's name for the field is not the client's
        if exc.field != "ended_at":
            raise
        raise ValidationError(exc.message, "end_time") from None
    return {"run_info": shapes.run_info(experiment)}


@router.post("/runs/log-parameter")
def log_param(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One hyperparameter; changing a logged value is refused, as MLflow does."""
    ref, name, value = _key_value(message, shapes.MAX_PARAM_VAL_LEN)
    log_params(store, ref, {name: value})
    return {}


@router.post("/runs/set-tag")
def set_tag(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One tag (``mlflow.runName`` renames the run, ``mlflow.note.content`` is its description)."""
    ref, name, value = _key_value(message, shapes.MAX_TAG_VAL_LEN)
    set_tags(store, ref, {name: value})
    return {}


def _key_value(message: Message, max_len: int) -> tuple[ExperimentRef, str, str]:
    """The run, ``key`` and ``value`` of a log-parameter or set-tag call."""
    value = shapes.text_value(message.get("value"), "value", max_len)
    return message.run(), shapes.key(message.get("key")), value


@router.post("/runs/delete-tag")
def delete_tag(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """Remove a tag; a tag the run does not have is RESOURCE_DOES_NOT_EXIST, as in MLflow."""
    ref = message.run()
    name = shapes.key(message.get("key"))
    experiment = store.get_experiment(ref.project_id, ref.experiment_id)
    if name not in {t["key"] for t in shapes.run_tags(experiment)}:
        raise NotFoundError(f"the run has no tag {name!r}", "key")
    set_tags(store, ref, {name: None}, experiment)
    return {}


def log_params(store: Store, ref: ExperimentRef, params: dict[str, str]) -> None:
    """Merge params into the hyperparameters, refusing a changed value (MLflow's rule)."""
    if not params:
        return
    current = store.get_experiment(ref.project_id, ref.experiment_id).hyperparameters
    _check_params(current, params)
    fresh = {name: value for name, value in params.items() if name not in current}
    if not fresh:
        return
    try:  # kept: a param another request logged meanwhile refuses the whole update
        store.update_experiment(
            ref.project_id, ref.experiment_id, hyperparameters=fresh, keep_hyperparameters=True
        )
    except ValidationError as exc:
        if exc.field != "hyperparameters":
            raise
        _check_params(store.get_experiment(ref.project_id, ref.experiment_id).hyperparameters,
                      params)  # fmt: skip
        raise ValidationError(exc.message, "params") from None


def _check_params(current: dict[str, Any], params: dict[str, str]) -> None:
    for name, value in params.items():
        if name in current and shapes.params_text(current[name]) != value:
            raise ValidationError(
                f"changing a logged param is not allowed: {name!r} is "
                f"{shapes.params_text(current[name])!r}, got {value!r}",
                "params",
            )


def set_tags(
    store: Store,
    ref: ExperimentRef,
    tags: dict[str, str | None],
    experiment: Experiment | None = None,
) -> None:
    """Set (a value) or delete (None) tags: one update of the experiment."""
    if not tags:
        return
    labels: tuple[str, ...] = ()
    if shapes.label_changes(tags):
        experiment = experiment or store.get_experiment(ref.project_id, ref.experiment_id)
        labels = experiment.tags
    store.update_experiment(ref.project_id, ref.experiment_id, **shapes.tag_changes(tags, labels))


@router.post("/runs/delete")
def delete_run(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """To mltrail's trash (restorable, as MLflow's deleted runs are until garbage collected)."""
    ref = message.run()
    store.delete_experiment(ref.project_id, ref.experiment_id)
    return {}


@router.post("/runs/restore")
def restore_run(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """Back to the active runs (from the trash or the archive)."""
    ref = message.run()
    store.restore_experiment(ref.project_id, ref.experiment_id)
    return {}
