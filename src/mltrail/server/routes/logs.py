"""Log lines: idempotent batch appends, long-poll reads and a server-sent event stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mltrail.core.codec import log_batch_from_wire, log_line_to_wire
from mltrail.core.types import LogLine, Status
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, LogsIn, LogsOut, StoredOut
from mltrail.store.base import Store

MAX_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.25
STREAM_POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0

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
    batch = log_batch_from_wire(body.model_dump())
    return {"stored": store.append_logs(project_id, experiment_id, batch)}


def _read(store: Store, p: int, e: int, after: int, limit: int) -> tuple[list[LogLine], Status]:
    lines = store.read_logs(p, e, after_seq=after, limit=limit)
    return lines, Status(store.get_experiment(p, e).status)


@router.get("", response_model=LogsOut)
async def read_logs(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    store: StoreDep,
    after_seq: int = Query(0, ge=0),
    limit: int = Query(10_000, ge=1, le=100_000),
    wait: float = Query(0.0, ge=0, description="long-poll seconds (at most 30)"),
) -> dict:
    """Lines after ``after_seq``; waits up to ``wait`` s for new ones while the run is live."""
    deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
    while True:
        lines, status = await run_in_threadpool(
            _read, store, project_id, experiment_id, after_seq, limit
        )
        remaining = deadline - time.monotonic()
        if lines or status.is_final or remaining <= 0:
            break
        await asyncio.sleep(min(POLL_SECONDS, remaining))
    last_seq = lines[-1].seq if lines else after_seq
    return {"lines": [log_line_to_wire(x) for x in lines], "status": status, "last_seq": last_seq}


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
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        lines, status = await run_in_threadpool(_read, store, p, e, after, 1000)
        for line in lines:
            data = orjson.dumps(log_line_to_wire(line))
            yield b"id: %d\nevent: line\ndata: %s\n\n" % (line.seq, data)
        if lines:
            after, last_sent = lines[-1].seq, time.monotonic()
            continue
        if status.is_final:
            yield b"event: end\ndata: %s\n\n" % orjson.dumps({"status": status.value})
            return
        if time.monotonic() - last_sent > HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(STREAM_POLL_SECONDS)
