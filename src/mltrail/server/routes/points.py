"""Metric points: columnar ingest, series summaries and (downsampled) series reads."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from mltrail.core.errors import ValidationError
from mltrail.core.points import batch_chunk_count, series_queries
from mltrail.core.series_codec import (
    POINTS_MEDIA_TYPE,
    metric_batch_from_binary,
    metric_batch_from_wire,
    packed_series_pieces,
    series_answer_to_wire,
    series_to_wire,
    summary_to_wire,
)
from mltrail.core.wire import parse_json
from mltrail.server.deps import (
    MAX_INT64,
    ExperimentId,
    OrjsonResponse,
    PendingStore,
    PendingStoreDep,
    ProjectId,
    StoreDep,
    authenticating,
    bearer,
)
from mltrail.server.schemas import (
    ERROR_RESPONSES,
    PointsIn,
    RemovedOut,
    RewindIn,
    SeriesBatchIn,
    SeriesOut,
    SeriesPackedOut,
    StoredOut,
    SummaryOut,
)

MAX_READ_POINTS = 1_000_000

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)
experiment_router = APIRouter(prefix="/projects/{project_id}/experiments/{experiment_id}")


def _points_schema() -> dict[str, Any]:
    """PointsIn's JSON schema with its chunks inlined (the route reads its body itself)."""
    schema = PointsIn.model_json_schema()
    schema["properties"]["chunks"]["items"] = schema.pop("$defs")["ChunkIn"]
    return schema


async def _points_body(request: Request) -> tuple[bool, bytes]:
    """The body's bytes, and whether it is the binary form (decoded off the event loop)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        return media_type == POINTS_MEDIA_TYPE, await request.body()
    except ClientDisconnect:  # gone before its body ended: bad input, not a traceback and a 500
        raise ValidationError("the connection ended before the body did", "body") from None


class PointsRoute(APIRoute):
    """The point-batch route, called without FastAPI's dependency solving when its ids are
    plain: the SDK sends a batch every 50,000 points, and solving the route's four
    dependencies and encoding its answer cost the server's event loop about as much as
    reading the batch's body. Anything else (an id FastAPI would refuse) goes through
    FastAPI's own handler, so its answers stay FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.dependant.call
        assert endpoint is not None

        async def handle(request: Request) -> Response:
            ids = [_plain_id(request.path_params.get(name)) for name in _IDS]
            if None in ids:
                return await full(request)
            pending = PendingStore(request, await bearer(request))
            body = await _points_body(request)
            kwargs = dict(zip(_IDS, ids, strict=True), body=body, store=pending)
            return OrjsonResponse(await run_in_threadpool(endpoint, **kwargs))

        return handle


_IDS = ("project_id", "experiment_id")


def _plain_id(text: Any) -> int | None:
    """A path id of plain ASCII digits without a leading zero, within 1..MAX_INT64 (what
    :data:`ProjectId` takes as it is); None for anything else."""
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or text[0] == "0":
        return None
    value = int(text) if len(text) <= 19 else 0
    return value if 1 <= value <= MAX_INT64 else None


@authenticating  # the token is checked in this handler's worker thread: one hop a batch
def append_points(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    body: Annotated[tuple[bool, bytes], Depends(_points_body)],
    store: PendingStoreDep,
) -> dict:
    """Store a batch once: a retried (client_id, seq) answers ``{"stored": 0}``.

    The body is JSON (``PointsIn``: columns as base64) or, with Content-Type
    ``application/vnd.mltrail.points``, the same columns as raw little-endian bytes after a
    JSON header (:func:`mltrail.core.series_codec.metric_batch_to_binary`)."""
    binary, content = body
    batch = metric_batch_from_binary(content) if binary else _batch_from_json(content)
    return {"stored": store.append_points(project_id, experiment_id, batch)}


experiment_router.add_api_route(
    "/points",
    append_points,
    methods=["POST"],
    response_model=StoredOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _points_schema()},
                POINTS_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    route_class_override=PointsRoute,
)


def _batch_from_json(content: bytes) -> Any:
    try:
        data = parse_json(content)
    except ValueError:
        raise ValidationError("body is not valid UTF-8 JSON", "body") from None
    if isinstance(data, dict) and isinstance(data.get("chunks"), list):
        batch_chunk_count(len(data["chunks"]))  # before each chunk is validated
    try:
        checked = PointsIn.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None
    return metric_batch_from_wire(checked.model_dump())


@experiment_router.post("/points/rewind", response_model=RemovedOut)
def rewind_points(
    project_id: ProjectId, experiment_id: ExperimentId, body: RewindIn, store: StoreDep
) -> dict:
    """Discard every point after ``iteration`` in all the experiment's series, atomically (the
    discarded points are not kept); answers how many were removed."""
    return {"removed": store.rewind_points(project_id, experiment_id, body.iteration)}


@experiment_router.get("/series", response_model=list[SummaryOut])
def list_series(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> list[dict]:
    """Count, last, min and max of every series of the experiment."""
    return [summary_to_wire(s) for s in store.list_series(project_id, experiment_id)]


@experiment_router.get("/series/read", response_model=SeriesOut | SeriesPackedOut)
def read_series(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    store: StoreDep,
    key: str = Query(..., min_length=1),
    phase: str = Query("train"),
    max_points: int | None = Query(None, ge=2, le=MAX_READ_POINTS),
    start: int | None = Query(None, description="first iteration to keep (inclusive)"),
    end: int | None = Query(None, description="last iteration to keep (inclusive)"),
    format: Literal["json", "packed"] = Query("json"),
    times: bool = Query(False, description="add each point's wall-clock time (unix seconds)"),
) -> Response:
    """A series in iteration order, min/max downsampled to ``max_points`` when given.

    ``start``/``end`` keep only that iteration range (a zoomed chart re-reads it at its own
    resolution). ``format=packed`` sends the columns as base64 arrays: exact and compact.
    ``times=true`` adds a ``times`` column (unix seconds, null where unknown).
    """
    series = store.read_series(
        project_id,
        experiment_id,
        key,
        phase,
        max_points=max_points,
        start=start,
        end=end,
        times=times,
    )
    # returned as a response so large series skip response-model validation
    if format == "json":
        return OrjsonResponse(series_to_wire(series))
    # an export: base64 made piece by piece as the client takes it (core/series_codec.py)
    return PiecesResponse(*packed_series_pieces(series))


class PiecesResponse(Response):
    """A JSON body of known length sent in the pieces an iterator makes as they are sent:
    the server never holds the whole body, nor (the transport's buffer pausing each send) a
    copy of its unsent rest. A 50,000-point export held 1.5 MB of body beside its columns,
    and the same again in asyncio's write buffer while the client read the first part."""

    media_type = "application/json"

    def __init__(self, size: int, pieces: Iterator[bytes]) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [(b"content-length", str(size).encode()),
                            (b"content-type", b"application/json")]  # fmt: skip
        self._pieces = pieces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send(start | {"headers": self.raw_headers})
        for piece in self._pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@router.post("/series/read")
def read_series_batch(body: SeriesBatchIn, store: StoreDep) -> OrjsonResponse:
    """Many series in one request: every chart of an experiment page (an entry without
    ``key``: all its series) or of a compare view. Each is read as ``series/read`` reads one;
    an entry that finds nothing answers ``error`` in its place (docs/rest.md)."""
    queries = series_queries(body.series)
    answers = store.read_series_batch(
        queries, max_points=body.max_points, start=body.start, end=body.end, times=body.times
    )
    packed = body.format == "packed"
    return OrjsonResponse({"series": [series_answer_to_wire(a, packed=packed) for a in answers]})


router.include_router(experiment_router)
