"""The ``mlflow-artifacts`` proxy endpoints onto mltrail's artifact store.

A run's ``artifact_uri`` is ``mlflow-artifacts:/<project>/<run_id>/artifacts``, which the MLflow
client resolves to ``/api/2.0/mlflow-artifacts/artifacts/<project>/<run_id>/artifacts/<path>``:
uploads (``PUT``, streamed as ``/api/v1``'s are), downloads, listings (``?path=`` one folder
level, as MLflow answers) and deletes, each one artifact Store call on that experiment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from mltrail.core.artifacts import artifact_path, artifact_upload
from mltrail.core.errors import ValidationError
from mltrail.core.types import ExperimentRef
from mltrail.server.body_tap import BodyTooSlow
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.errors import MlflowRoute, mlflow_error
from mltrail.server.mlflow.messages import MessageDep, PathDep, StoreDep
from mltrail.server.uploads import store_upload, upload_body
from mltrail.store.artifacts import ArtifactReader

router = APIRouter(route_class=MlflowRoute)
_RUN_ROOT = re.compile(r"^(?P<project>[^/]+)/(?P<run>[^/]+)/artifacts(?:/(?P<path>.*))?$")


def _locate(full: str) -> tuple[ExperimentRef, str | None]:
    """``<project>/<run_id>/artifacts[/<path>]`` as the run and the path in its tree."""
    match = _RUN_ROOT.match(full.strip("/"))
    if match is None:
        raise ValidationError(
            "must be <experiment_id>/<run_id>/artifacts/<path> (a run's artifact_uri)", "path"
        )
    ref = shapes.parse_run_id(match["run"])
    if str(ref.project_id) != match["project"]:
        raise ValidationError(f"run {match['run']} is not in experiment {match['project']}", "path")
    return ref, match["path"] or None


@router.put("/artifacts/{path:path}")
async def upload_artifact(request: Request, path: PathDep, store: StoreDep) -> dict[str, Any]:
    """Store the body at the path of the run's tree."""
    ref, inner = _locate(path)
    declared = request.headers.get("content-length")
    upload = artifact_upload(
        inner or "", size=int(declared) if declared and declared.isdigit() else None
    )
    body = upload_body(request)
    try:
        await store_upload(store, ref.project_id, ref.experiment_id, upload, body)
    except ClientDisconnect as exc:  # BodyTooSlow: the pace it missed, in MLflow's shape
        cut = str(exc) if isinstance(exc, BodyTooSlow) else "the upload was cut short"
        raise ValidationError(cut, "body") from None
    finally:
        body.stop()
    return {}


@router.get("/artifacts")
def list_artifacts(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One folder level: files with their sizes, sub-folders with ``is_dir``."""
    raw = message.get("path")
    if not raw:
        return {"files": []}  # above any run: MLflow lists experiments' folders, mltrail none
    ref, inner = _locate(raw)
    folder = f"{artifact_path(inner)}/" if inner else ""
    found = store.list_artifacts(ref.project_id, ref.experiment_id, folder.rstrip("/") or None)
    files: dict[str, dict[str, Any]] = {}
    for artifact in found:
        rest = artifact.path[len(folder) :]
        name, sep, _ = rest.partition("/")
        if sep:
            files.setdefault(name, {"path": name, "is_dir": True})
        else:
            files[name] = {"path": name, "is_dir": False, "file_size": artifact.size}
    return {"files": list(files.values())}


@router.get("/artifacts/{path:path}", response_model=None)
def download_artifact(path: PathDep, store: StoreDep) -> Response:
    """The artifact's bytes, streamed."""
    ref, inner = _locate(path)
    if inner is None:
        return mlflow_error("INVALID_PARAMETER_VALUE", "path: names a folder, not a file", 400)
    reader = store.open_artifact(ref.project_id, ref.experiment_id, artifact_path(inner))
    if reader.url is not None:
        reader.close()
        return RedirectResponse(reader.url, status_code=307)
    headers = {"Content-Length": str(reader.artifact.size), "X-Content-Type-Options": "nosniff"}
    return StreamingResponse(
        _stream(reader), media_type="application/octet-stream", headers=headers
    )


@router.delete("/artifacts/{path:path}")
def delete_artifact(path: PathDep, store: StoreDep) -> dict[str, Any]:
    """Remove a file, or every file under a folder, from the run's tree."""
    ref, inner = _locate(path)
    found = store.list_artifacts(ref.project_id, ref.experiment_id, inner)
    targets = [a.path for a in found] or ([inner] if inner else [])
    for target in targets:
        store.delete_artifact(ref.project_id, ref.experiment_id, target)
    return {}


def _stream(reader: ArtifactReader) -> Iterator[bytes]:
    try:
        yield from reader.chunks
    finally:
        reader.close()
