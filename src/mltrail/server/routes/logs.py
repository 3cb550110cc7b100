"""Log lines: idempotent batch appends, long-poll reads and a server-sent event stream.

Both reads are ``store.tail_logs``: the lines with the status read before them, whose
``ended`` says when a follower is done (the same end condition the CLI uses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mltrail.core import codec
from mltrail.core.types import LogTail, Status
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.polling import follow_logs, poll_in_threads
from mltrail.server.schemas import ERROR_RESPONSES, LogsIn, LogsOut, StoredOut
from mltrail.store.base import Store
from mltrail.store.logs import MAX_WAIT_SECONDS, READ_LIMIT

router = APIRouter(
    prefix="/projects/{project_id}/experiments/{experiment_id}/logs",
    tags=["logs"],
    responses=ERROR_RESPONSES,
)


@router.post("", response_model=StoredOut)
def append_logs(
    project_id: ProjectId, experiment_id: ExperimentId, body: LogsIn, store: StoreDep
) -> dict:
    """Store lines in order; a retried (client_id, seq) answers ``{"stored": 0}``."""
    batch = codec.log_batch_from_wire(body.model_dump())
    return {"stored": store.append_logs(project_id, experiment_id, batch)}


def _worth_answering(tail: LogTail) -> bool:
    return bool(tail.lines) or Status(tail.status).is_final


@router.get("", response_model=LogsOut)
async def read_logs(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    store: StoreDep,
    after_seq: int = Query(0, ge=0),
    limit: int = Query(READ_LIMIT, ge=1, le=100_000),
    wait: float = Query(0.0, ge=0, description="long-poll seconds (at most 30)"),
) -> dict:
    """Lines after ``after_seq``; waits up to ``wait`` s for new ones while the run is live."""

    def read() -> LogTail:
        return store.tail_logs(project_id, experiment_id, after_seq=after_seq, limit=limit)

    tail = await poll_in_threads(read, _worth_answering, min(wait, MAX_WAIT_SECONDS))
    return codec.log_tail_to_wire(tail)


@router.get("/stream", response_class=StreamingResponse)
async def stream_logs(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    request: Request,
    store: StoreDep,
    after_seq: int = Query(0, ge=0),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Server-sent events: ``line`` events (id = seq) as lines arrive, ``end`` when it ends.

    Reconnecting clients resume after ``Last-Event-ID``.
    """
    if last_event_id and last_event_id.isdigit():
        after_seq = max(after_seq, int(last_event_id))
    await run_in_threadpool(store.get_experiment, project_id, experiment_id)  # 404/403 first
    events = _log_events(request, store, project_id, experiment_id, after_seq)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _log_events(
    request: Request, store: Store, p: int, e: int, after: int
) -> AsyncIterator[bytes]:
    async for tail in follow_logs(request, store, p, e, after):
        if tail is None:
            yield b": keep-alive\n\n"
            continue
        for line in tail.lines:
            data = orjson.dumps(codec.log_line_to_wire(line))
            yield b"id: %d\nevent: line\ndata: %s\n\n" % (line.seq, data)
        if tail.ended:
            end = {"status": tail.status.value, "last_heartbeat": tail.last_heartbeat}
            yield b"event: end\ndata: %s\n\n" % orjson.dumps(end)
