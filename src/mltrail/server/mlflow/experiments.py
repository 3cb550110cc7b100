"""MLflow experiments: create, get, get-by-name and search, onto mltrail's projects.

An MLflow experiment is an mltrail project (its ``experiment_id`` is the project id); the
user sees the projects they are a member of, as through ``/api/v1``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowJSONResponse, MlflowRoute, mlflow_error
from mltrail.server.mlflow.messages import MessageDep, StoreDep, project_of

MAX_EXPERIMENTS_PER_PAGE = 50_000  # MLflow's MAX_EXPERIMENTS_LISTED_PER_PAGE

router = APIRouter(route_class=MlflowRoute)


@router.post("/experiments/create", response_model=None)
def create_experiment(message: MessageDep, store: StoreDep) -> dict[str, Any] | Response:
    """A new project; a name already in use is RESOURCE_ALREADY_EXISTS, as in MLflow."""
    name = validation.project_name(message.get("name") or _missing("name"))
    tags = shapes.tag_pairs(message.items("tags"))
    if store.find_project(name) is not None:
        return mlflow_error(
            "RESOURCE_ALREADY_EXISTS", f"name: an experiment named {name!r} already exists", 400
        )
    description = validation.project_description(tags.get(shapes.NOTE_TAG, ""))
    return {"experiment_id": str(store.create_project(name, description).id)}


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


@router.post("/experiments/search")
def search_experiments(message: MessageDep, store: StoreDep) -> Response:
    """The user's experiments, newest first, a page at a time (``filter`` is not served:
    see docs/mlflow.md)."""
    if message.get("filter"):
        raise ValidationError(
            "filters on experiments are not served by mltrail; search runs instead", "filter"
        )
    limit = shapes.integer(message.get("max_results"), "max_results", 1000)
    if not 1 <= limit <= MAX_EXPERIMENTS_PER_PAGE:
        raise ValidationError(f"must be between 1 and {MAX_EXPERIMENTS_PER_PAGE}", "max_results")
    offset = shapes.page_offset(message.get("page_token"))
    projects = sorted(store.list_projects(), key=lambda p: (-p.created_at, -p.id))
    page = projects[offset : offset + limit]
    answer: dict[str, Any] = {"experiments": [shapes.experiment_shape(p) for p in page]}
    if offset + limit < len(projects):
        answer["next_page_token"] = str(offset + limit)
    return MlflowJSONResponse(answer)


def _missing(field: str) -> str:
    raise ValidationError("is required", field)
