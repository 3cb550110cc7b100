"""MLflow 3's logged models, kept as what they are in mltrail: files in a run's artifact tree.

``log_model`` (and autologging, which calls it) creates a logged model, uploads its files to the
model's ``artifact_uri`` and finalizes it. mltrail keeps no table of models: a model's id names
its run and its name (``m-<project>-<experiment>-<hex of the name>``), its files live under
``models/<name>/`` of the run's artifacts, and it reads ``READY`` once files are there. Model tags,
params and metrics are not kept (docs/mlflow.md).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter

from mltrail.core.errors import ValidationError
from mltrail.core.types import ExperimentRef
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowRoute
from mltrail.server.mlflow.messages import MessageDep, ModelDep, StoreDep
from mltrail.store.base import Store

router = APIRouter(route_class=MlflowRoute)
_MODEL_ID = re.compile(r"^m-([1-9][0-9]{0,17})-([1-9][0-9]{0,17})-((?:[0-9a-f]{2}){1,250})$")
_SAFE_NAME = re.compile(r"^[\w.\-]{1,200}$")
MODELS_FOLDER = "models"


def model_id(ref: ExperimentRef, name: str) -> str:
    """The id of the model named ``name`` of a run."""
    return f"m-{ref.project_id}-{ref.experiment_id}-{name.encode().hex()}"


def parse_model_id(value: str) -> tuple[ExperimentRef, str]:
    """The run and the name a model id holds."""
    match = _MODEL_ID.match(value)
    name = None
    if match is not None:
        try:
            name = bytes.fromhex(match[3]).decode()
        except UnicodeDecodeError:
            name = None
    if match is None or name is None:
        raise ValidationError(f"is not a model id this server gave, got {value!r}", "model_id")
    return ExperimentRef(int(match[1]), int(match[2])), name


def _folder(name: str) -> str:
    return f"{MODELS_FOLDER}/{name if _SAFE_NAME.match(name) else name.encode().hex()}"


def _model(store: Store, ref: ExperimentRef, name: str, status: str | None = None) -> dict:
    experiment = store.get_experiment(ref.project_id, ref.experiment_id)
    if status is None:
        files = store.list_artifacts(ref.project_id, ref.experiment_id, _folder(name))
        status = "LOGGED_MODEL_READY" if files else "LOGGED_MODEL_PENDING"
    millis = round(experiment.created_at * 1000)
    info = {
        "model_id": model_id(ref, name),
        "experiment_id": str(ref.project_id),
        "name": name,
        "creation_timestamp_ms": millis,
        "last_updated_timestamp_ms": millis,
        "artifact_uri": f"{shapes.artifact_uri(ref)}/{_folder(name)}",
        "status": status,
        "source_run_id": shapes.run_id(ref),
    }
    return {"model": {"info": info, "data": {}}}


@router.post("/logged-models")
def create_logged_model(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """A model of a run (``source_run_id`` is required: the model's files are the run's)."""
    ref = shapes.parse_run_id(message.get("source_run_id"), "source_run_id")
    name = shapes.text_value(message.get("name") or "model", "name", 200) or "model"
    return _model(store, ref, name, "LOGGED_MODEL_PENDING")


@router.get("/logged-models/{model}")
def get_logged_model(model: ModelDep, store: StoreDep) -> dict[str, Any]:
    ref, name = parse_model_id(model)
    return _model(store, ref, name)


@router.patch("/logged-models/{model}")
def finalize_logged_model(model: ModelDep, message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """The status the client sets (READY once its files are uploaded)."""
    ref, name = parse_model_id(model)
    status = message.get("status")
    if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_PENDING"):
        raise ValidationError(f"is not a logged model status, got {status!r}", "status")
    return _model(store, ref, name, status)


@router.patch("/logged-models/{model}/tags")
@router.post("/logged-models/{model}/params")
def model_tags_or_params(model: ModelDep, store: StoreDep) -> dict[str, Any]:
    """Accepted for the model's run (checked), not kept."""
    ref, _ = parse_model_id(model)
    store.get_experiment(ref.project_id, ref.experiment_id)
    return {}


@router.post("/logged-models/search")
def search_logged_models(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """No model table to search: none listed (the client's artifact listing asks per run)."""
    return {"models": []}


@router.post("/runs/outputs")
@router.post("/runs/log-inputs")
def log_inputs_or_outputs(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """The datasets a run used and the models it produced (already files of the run):
    accepted for a run the user may write to, not kept (docs/mlflow.md)."""
    ref = message.run()
    store.get_experiment(ref.project_id, ref.experiment_id)
    return {}
