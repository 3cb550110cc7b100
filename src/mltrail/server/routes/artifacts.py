"""Artifacts: streamed uploads (``PUT``, any size) and downloads, the tree, checkpoints by hash.

An upload's body is not read by the server's body limit (see ``routes.is_upload``): the Store
streams it into the blob store from a worker thread (``server/uploads.py``), so memory stays
bounded whatever the size; the per-file limit and the project's quota apply instead.
Downloads are served as attachments in a sandbox, never rendered by the browser as a page.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.requests import ClientDisconnect

from mltrail.core import codec
from mltrail.core.artifacts import (
    SHA256_TRAILER,
    TRAILER_BYTES,
    Artifact,
    ArtifactUpload,
    artifact_upload,
)
from mltrail.core.errors import ValidationError
from mltrail.core.wire import dump_json
from mltrail.server.body_tap import BodyTooSlow, PendingTap
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.errors import error_response
from mltrail.server.http_protocol import ZERO_COPY_SEND
from mltrail.server.schemas import ERROR_RESPONSES, ArtifactOut, GcOut
from mltrail.server.uploads import TrailedBody, TrailedTap, store_upload, too_slow, upload_body
from mltrail.store.artifacts import ArtifactReader, Readable

router = APIRouter(tags=["artifacts"], responses=ERROR_RESPONSES)
_EXPERIMENT = "/projects/{project_id}/experiments/{experiment_id}"
Count = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


def _declared_upload(
    request: Request, path: str, sha256: str | None, **point: Any
) -> tuple[ArtifactUpload, bool]:
    """The upload the request declares: its size from Content-Length (less a trailer's)."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    trailed = sha256 == SHA256_TRAILER
    if trailed:
        if size is None or size < TRAILER_BYTES:
            raise ValidationError(
                f"sha256=trailer needs a Content-Length of at least {TRAILER_BYTES}", "sha256"
            )
        size -= TRAILER_BYTES
    upload = artifact_upload(path, size=size, sha256_value=None if trailed else sha256, **point)
    return upload, trailed


@router.put(
    _EXPERIMENT + "/artifacts/{path:path}",
    response_model=ArtifactOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        }
    },
)
async def put_artifact(
    request: Request,
    project_id: ProjectId,
    experiment_id: ExperimentId,
    path: str,
    store: StoreDep,
    sha256: str | None = None,
    media_type: str | None = None,
    iteration: Count = None,
    epoch: Count = None,
    weights_hash: str | None = None,
) -> Any:
    """Store the body's bytes at ``path`` (streamed; ``sha256`` and Content-Length, when
    sent, are verified; ``sha256=trailer``: the body ends with the sender's digest). Visible
    only once every byte is stored and verified."""
    upload, trailed = _declared_upload(
        request,
        path,
        sha256,
        media_type_value=media_type,
        iteration=iteration,
        epoch=epoch,
        weights_hash_value=weights_hash,
    )
    body = upload_body(request)
    size = upload.size
    source: Readable = body
    if trailed and size is not None:
        source = TrailedTap(body, size) if isinstance(body, PendingTap) else TrailedBody(body, size)
    try:
        artifact = await store_upload(store, project_id, experiment_id, upload, source)
    except BodyTooSlow as exc:
        return too_slow(exc)
    except ClientDisconnect:
        return error_response(400, "validation_error", "the upload was cut short", "body")
    finally:
        body.stop()
    return codec.artifact_to_wire(artifact)


@router.get(_EXPERIMENT + "/artifacts", response_model=list[ArtifactOut])
def list_artifacts(
    project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep, prefix: str | None = None
) -> list[dict]:
    """The experiment's artifacts by path (those under ``prefix/`` when given)."""
    found = store.list_artifacts(project_id, experiment_id, prefix)
    return [codec.artifact_to_wire(a) for a in found]


def _headers(artifact: Artifact) -> dict[str, str]:
    record = base64.urlsafe_b64encode(dump_json(codec.artifact_to_wire(artifact)))
    name = artifact.path.rsplit("/", 1)[-1]
    return {
        "X-Mltrail-Artifact": record.decode().rstrip("="),
        "X-Mltrail-Sha256": artifact.sha256,
        "ETag": f'"{artifact.sha256}"',
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }


class FileSendResponse(Response):
    """A download whose bytes the server sends straight from the blob's file
    (``http.response.zerocopysend``, ``sendfile``): no chunk is read into Python, where
    streaming them cost the server 0.6-0.9 s of CPU per GiB."""

    def __init__(self, reader: ArtifactReader, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(None, media_type=media_type, headers=headers)
        self.reader = reader

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(
                {
                    "type": ZERO_COPY_SEND,
                    "file": self.reader.file,
                    "offset": 0,
                    "count": self.reader.artifact.size,
                }
            )
        finally:
            self.reader.close()


def _stream(reader: ArtifactReader) -> Iterator[bytes]:
    try:
        yield from reader.chunks
    finally:
        reader.close()


@router.get(
    _EXPERIMENT + "/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_artifact(
    request: Request,
    project_id: ProjectId,
    experiment_id: ExperimentId,
    path: str,
    store: StoreDep,
    redirect: bool = True,
) -> Response:
    """The artifact's bytes, streamed, with its record in ``X-Mltrail-Artifact`` and its digest
    in ``X-Mltrail-Sha256``. With presigned URLs on, a 307 to the object storage instead
    (``redirect=false`` streams through the server anyway)."""
    reader, headers = _opened(store, (project_id, experiment_id), path)
    if reader.url is not None and redirect:
        reader.close()
        return RedirectResponse(reader.url, status_code=307, headers=headers)
    headers["Content-Length"] = str(reader.artifact.size)
    media_type = reader.artifact.media_type
    if reader.file is not None and ZERO_COPY_SEND in request.scope.get("extensions", {}):
        return FileSendResponse(reader, media_type=media_type, headers=headers)
    return StreamingResponse(_stream(reader), media_type=media_type, headers=headers)


@router.head(
    _EXPERIMENT + "/artifacts/{path:path}",
    responses={200: {"description": "the download's headers, without its bytes"}},
)
def artifact_head(
    request: Request,
    project_id: ProjectId,
    experiment_id: ExperimentId,
    path: str,
    store: StoreDep,
    redirect: bool = True,
) -> Response:
    """The download's answer without its bytes (``curl -I``, a client checking the size or the
    digest first): the same status and headers, Content-Length the artifact's size."""
    reader, headers = _opened(store, (project_id, experiment_id), path)
    reader.close()
    if reader.url is not None and redirect:
        return RedirectResponse(reader.url, status_code=307, headers=headers)
    headers["Content-Length"] = str(reader.artifact.size)
    return Response(headers=headers, media_type=reader.artifact.media_type)


def _opened(
    store: StoreDep, ref: tuple[int, int], path: str
) -> tuple[ArtifactReader, dict[str, str]]:
    """The artifact's reader and its download's headers (record, digest; a redirect's too)."""
    reader = store.open_artifact(*ref, path)
    return reader, _headers(reader.artifact)


@router.delete(_EXPERIMENT + "/artifacts/{path:path}", status_code=204)
def delete_artifact(
    project_id: ProjectId, experiment_id: ExperimentId, path: str, store: StoreDep
) -> Response:
    """Remove the path from the tree; ``mltrail gc`` deletes its bytes if nothing else uses them."""
    store.delete_artifact(project_id, experiment_id, path)
    return Response(status_code=204)


@router.get("/weights/{weights_hash}/checkpoints", response_model=list[ArtifactOut])
def find_checkpoints(weights_hash: str, store: StoreDep) -> list[dict]:
    """Stored checkpoints holding these weights, newest first, in the user's projects."""
    return [codec.artifact_to_wire(a) for a in store.find_checkpoints(weights_hash)]


@router.post("/gc", response_model=GcOut)
def collect_garbage(store: StoreDep, older_than_seconds: float = Query(3600.0, ge=0)) -> dict:
    """Delete blobs no artifact references and stale upload leftovers (administrators)."""
    report = store.collect_garbage(older_than_seconds)
    return {"blobs": report.blobs, "bytes": report.bytes, "staging": report.staging}
