"""MLflow experiments: create, get, get-by-name, search, update (rename), delete and restore,
onto mltrail's projects.

An MLflow experiment is an mltrail project (its ``experiment_id`` is the project id); the
user sees the projects they are a member of, as through ``/api/v1``. A deleted experiment is a
deleted project: found by id and by name (``lifecycle_stage`` ``deleted``), as MLflow's server
finds it, and listed by ``search`` only when ``view_type`` asks for it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mltrail.core import validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Project
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowJSONResponse, MlflowRoute, mlflow_error
from mltrail.server.mlflow.messages import MessageDep, StoreDep, project_of

MAX_EXPERIMENTS_PER_PAGE = 50_000  # MLflow's MAX_EXPERIMENTS_LISTED_PER_PAGE
# MLflow's ViewType, by name or number, as mltrail's project ``include``
_VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}
_VIEW_TYPES.update({"1": "active", "2": "deleted", "3": "all"})

router = APIRouter(route_class=MlflowRoute)


@router.post("/experiments/create", response_model=None)
def create_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any] | Response:
    """A new project; a name already in use is RESOURCE_ALREADY_EXISTS, as in MLflow."""
    name = validation.project_name(message.get("name") or _missing("name"))
    tags = shapes.tag_pairs(message.items("tags"))
    if store.find_project(name) is not None:  # a deleted one keeps its name, as in MLflow
        return _name_taken(name)
    description = validation.project_description(tags.get(shapes.NOTE_TAG, ""))
    try:  # unique: a request creating the name meanwhile wins
        project = store.create_project(name, description, unique_name=True)
    except ConflictError as exc:
        if exc.field != "display_name":
            raise
        return _name_taken(name)
    return {"experiment_id": str(project.id)}


@router.get("/experiments/get")
def get_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One experiment by id (``0``: the user's "Default")."""
    project = store.get_project(project_of(store, message.get("experiment_id")))
    return {"experiment": shapes.experiment_shape(project)}


@router.get("/experiments/get-by-name")
def get_experiment_by_name(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One experiment by name; RESOURCE_DOES_NOT_EXIST lets ``set_experiment`` create it."""
    name = shapes.required_text(message.get("experiment_name"), "experiment_name", 500)
    project = store.find_project(name)
    if project is None:
        raise NotFoundError(f"no experiment named {name!r}", "experiment_name")
    return {"experiment": shapes.experiment_shape(project)}


@router.post("/experiments/update", response_model=None)
def update_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any] | Response:
    """Rename: ``update_project``. A name in use is RESOURCE_ALREADY_EXISTS; a deleted
    experiment is INVALID_STATE ("Cannot rename a non-active experiment"), as in MLflow."""
    pid = project_of(store, _required(message, "experiment_id"))
    name = validation.project_name(_required(message, "new_name"))
    found = store.find_project(name)
    if found is not None and found.id != pid:
        return _name_taken(name)
    project = store.get_project(pid)
    if project.deleted_at is not None:
        return mlflow_error("INVALID_STATE", "Cannot rename a non-active experiment.", 400)
    try:  # unique: a request giving another experiment the name meanwhile wins
        store.update_project(pid, display_name=name, unique_name=True)
    except ConflictError as exc:
        if exc.field != "display_name":
            raise
        return _name_taken(name)
    return {}


@router.post("/experiments/delete")
def delete_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """``delete_project``; an experiment already deleted is RESOURCE_DOES_NOT_EXIST, as
    MLflow's server answers (it looks among active experiments only)."""
    project = _project_in_state(store, message, deleted=False)
    store.delete_project(project.id)
    return {}


@router.post("/experiments/restore")
def restore_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """``restore_project``; an active experiment is RESOURCE_DOES_NOT_EXIST, as in MLflow."""
    project = _project_in_state(store, message, deleted=True)
    store.restore_project(project.id)
    return {}


@router.post("/experiments/search")
def search_experiments(message: MessageDep, store: StoreDep) -> Response:
    """The user's experiments of ``view_type`` (active ones by default), newest first, a page
    at a time (``filter`` is not served: see docs/mlflow.md)."""
    if message.get("filter"):
        raise ValidationError(
            "filters on experiments are not served by mltrail; search runs instead", "filter"
        )
    limit = shapes.integer(message.get("max_results"), "max_results", 1000)
    if not 1 <= limit <= MAX_EXPERIMENTS_PER_PAGE:
        raise ValidationError(f"must be between 1 and {MAX_EXPERIMENTS_PER_PAGE}", "max_results")
    offset = shapes.page_offset(message.get("page_token"))
    include = _view_type(message.get("view_type"))
    projects = sorted(store.list_projects(include), key=lambda p: (-p.created_at, -p.id))
    page = projects[offset : offset + limit]
    answer: dict[str, Any] = {"experiments": [shapes.experiment_shape(p) for p in page]}
    if offset + limit < len(projects):
        answer["next_page_token"] = str(offset + limit)
    return MlflowJSONResponse(answer)


def _view_type(value: Any) -> str:
    if value is None or value == "":
        return "active"
    found = _VIEW_TYPES.get(str(value).upper())
    if found is None:
        raise ValidationError(
            f"must be ACTIVE_ONLY, DELETED_ONLY or ALL, got {value!r}", "view_type"
        )
    return found


def _project_in_state(store: StoreDep, message: Any, *, deleted: bool) -> Project:
    """The experiment the message names, when it is deleted (``deleted``) or active; MLflow's
    server answers RESOURCE_DOES_NOT_EXIST for one in the other state."""
    project = store.get_project(project_of(store, _required(message, "experiment_id")))
    if (project.deleted_at is not None) != deleted:
        raise NotFoundError(f"No Experiment with id={project.id} exists", "experiment_id")
    return project


def _name_taken(name: str) -> Response:
    return mlflow_error(
        "RESOURCE_ALREADY_EXISTS", f"name: an experiment named {name!r} already exists", 400
    )


def _missing(field: str) -> str:
    raise ValidationError("is required", field)


def _required(message: Any, field: str) -> Any:
    value = message.get(field)
    return _missing(field) if value is None or value == "" else value
