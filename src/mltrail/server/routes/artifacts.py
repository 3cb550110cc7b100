"""Artifacts: streamed uploads (``PUT``, any size) and downloads, the tree, checkpoints by hash.

An upload's body is not read by the server's body limit (see :func:`is_upload`): the Store
streams it into the blob store from a worker thread, pulling blocks from the event loop, so
memory stays bounded whatever the size; the per-file limit and the project's quota apply instead.
Downloads are served as attachments in a sandbox, never rendered by the browser as a page.
"""

from __future__ import annotations

import asyncio
import base64
import re
import weakref
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import anyio.from_thread
import anyio.to_thread
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
    read_sha256_trailer,
)
from mltrail.core.errors import ValidationError
from mltrail.core.wire import dump_json
from mltrail.server import body_tap
from mltrail.server.body_tap import BodyTooSlow, PendingTap
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.errors import error_response
from mltrail.server.http_protocol import ZERO_COPY_SEND
from mltrail.server.schemas import ERROR_RESPONSES, ArtifactOut, GcOut
from mltrail.store.artifacts import CHUNK_BYTES, ArtifactReader, Readable
from mltrail.store.base import Store

router = APIRouter(tags=["artifacts"], responses=ERROR_RESPONSES)
_EXPERIMENT = "/projects/{project_id}/experiments/{experiment_id}"
_UPLOAD_PATH = re.compile(r"^/api/v1/projects/[^/]+/experiments/[^/]+/artifacts/.")
Count = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
# 1 MiB blocks stay in the CPU's caches between being joined, hashed and written: 4 MiB blocks
# made the page-cache write and the sha256 read them from memory (server CPU per GiB uploaded
# 3.2-3.9 s with 4 MiB blocks, 1.8-2.0 s with 1 MiB)
BLOCK_BYTES = CHUNK_BYTES
BLOCKS_AHEAD = 8
# uploads store in worker threads of their own: each holds its thread for as long as its client
# takes to send the body, and slow (or idle) senders must not take every thread the other
# routes run in (WORKER_THREADS in server/app.py)
UPLOAD_THREADS = 16
# a sender just fast enough for its pace (body_tap.Pace) holds its thread for as long as its
# declared body takes (64 GiB at 4 KiB/s: months): one user's uploads take at most half the
# threads, so another user's upload never waits behind them all
UPLOAD_THREADS_PER_USER = UPLOAD_THREADS // 2
_upload_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_user_limiters: weakref.WeakKeyDictionary[Any, dict[object, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


async def store_upload(store: Store, *args: Any) -> Artifact:
    """``store.put_artifact(*args)`` (reading an upload's body) in a worker thread, at most
    :data:`UPLOAD_THREADS` at a time per event loop and :data:`UPLOAD_THREADS_PER_USER` of
    them for the store's user (a server without users shares all): more uploads wait their
    turn (their bodies unread, no ``100 Continue``) while every other route keeps its
    threads."""
    loop = asyncio.get_running_loop()
    limiter = _upload_limiters.get(loop)
    if limiter is None:
        limiter = _upload_limiters[loop] = anyio.CapacityLimiter(UPLOAD_THREADS)
    user = getattr(store, "user", None)
    if user is None:
        return await anyio.to_thread.run_sync(store.put_artifact, *args, limiter=limiter)
    mine = _user_limiters.setdefault(loop, {})
    own = mine.get(user.id)
    if own is None:
        own = mine[user.id] = anyio.CapacityLimiter(UPLOAD_THREADS_PER_USER)
    try:
        async with own:
            return await anyio.to_thread.run_sync(store.put_artifact, *args, limiter=limiter)
    finally:
        if not own.borrowed_tokens and not own.statistics().tasks_waiting:
            mine.pop(user.id, None)  # no limiter kept for every user that ever uploaded


def is_upload(method: str, path: str) -> bool:
    """Whether a request is an artifact upload, which the server's body limit leaves alone."""
    return method == "PUT" and _UPLOAD_PATH.match(path) is not None


class RequestBody:
    """A request body read from a worker thread, received ahead by the event loop.

    A task on the event loop receives the body into blocks of :data:`BLOCK_BYTES` and queues
    up to :data:`BLOCKS_AHEAD` of them while the worker thread hashes and stores the previous
    ones, so receiving and storing overlap and memory stays bounded (about 10 MiB). Receiving
    starts at the first read: the store checks membership and the room left first, and a
    refused upload gets no ``100 Continue`` (the first receive sends it).
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(BLOCKS_AHEAD)
        self._done = False
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        parts: list[bytes] = []
        held = 0
        chunks = self._request.stream().__aiter__()
        pace = body_tap.Pace()
        try:
            # a body whose sender keeps it waiting past its pace (no byte for IDLE_SECONDS,
            # or slower than the minimum average rate) is cut, as a tapped one is (its sender
            # would hold an upload thread for as long as it liked)
            while True:
                chunk = await pace.within(anext(chunks, None))
                if chunk is None:
                    break
                pace.record(len(chunk), 0.0)
                parts.append(chunk)
                held += len(chunk)
                if held >= BLOCK_BYTES:
                    await self._queue.put(b"".join(parts))
                    parts, held = [], 0
            if parts:
                await self._queue.put(b"".join(parts))
            await self._queue.put(b"")
        except TimeoutError:
            await self._queue.put(pace.cut())
        except Exception as exc:  # a client that went away: the reader raises it
            await self._queue.put(exc)

    def read(self, size: int = -1, /) -> bytes:
        if self._done:
            return b""
        if self._task is None:
            anyio.from_thread.run_sync(self._start)
        item = anyio.from_thread.run(self._queue.get)
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._done = not item
        return item

    def stop(self) -> None:
        """Stop receiving (the store finished or gave up early)."""
        if self._task is not None:
            self._task.cancel()


class TrailedBody:
    """An upload body that ends with its sender's sha256 (``sha256=trailer``): :meth:`read`
    gives the ``size`` bytes before the trailer, :meth:`sent_sha256` the digest after them
    (a :class:`~mltrail.store.artifacts.DigestedSource`, checked before anything is recorded).
    """

    def __init__(self, body: RequestBody | PendingTap, size: int) -> None:
        self._body = body
        self._left = size
        self._rest = b""
        self._trailer: bytes | None = None

    def read(self, size: int = -1, /) -> bytes:
        if self._left == 0:
            return b""
        block, self._rest = self._rest or self._body.read(), b""
        if len(block) > self._left:
            block, self._rest = block[: self._left], block[self._left :]
        self._left -= len(block)
        return block

    def sent_sha256(self) -> str | None:
        if self._trailer is None:  # asked again (a blob store checks twice): read once
            tail, self._rest = self._rest, b""
            while len(tail) <= TRAILER_BYTES and (more := self._body.read()):
                tail += more
            self._trailer = tail
        return read_sha256_trailer(self._trailer)


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


class TrailedTap(TrailedBody):
    """A trailed body read from the socket (:mod:`~mltrail.server.body_tap`): :meth:`readinto`
    fills the caller's buffer with the bytes before the trailer."""

    def __init__(self, body: PendingTap, size: int) -> None:
        super().__init__(body, size)
        self._tap = body

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        got = self._tap.readinto(view) if view else 0
        self._left -= got
        return got


def too_slow(exc: BodyTooSlow) -> Response:
    """The answer to an upload cut for its pace: a 408 naming the body, closing the
    connection (the rest of the body is never read)."""
    answer = error_response(408, "validation_error", exc.message, "body")
    answer.headers["Connection"] = "close"
    return answer


def upload_body(request: Request) -> RequestBody | PendingTap:
    """The body to store: read from the socket by the storing thread where the server offers
    that (:mod:`~mltrail.server.body_tap`), else received by the event loop; either from its
    first read on."""
    if PendingTap.offered(request.scope):
        return PendingTap(request.scope)
    return RequestBody(request)


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
