"""The client's log calls: ``logs/read`` for a finished run, a live stream for a running one.

A finished run (status done, stopped or failed) is read in pages: ``logs/read?amount=N`` then
``&timestamp=<the last line's timestamp>`` for the lines after it, until a page is empty. mltrail
pages by sequence number, so the timestamp is turned into one (a binary search over
``read_logs``, lines taken to be in time order as they are within one run), and a page never
ends inside a group of lines sharing a timestamp.

A running run: ``logs`` answers ``{"url"}``, which the client follows with ``sseclient`` as a
Firebase stream: ``put`` events whose data is ``{"path": "/<seq>", "data": {ts, category, level,
message}}``, ``keep-alive`` events, ``id:`` = the line's seq so a reconnect resumes. The URL
carries its own short-lived token (the client sends no header there). When the run ends the
stream closes (``Connection: close``); the client's reconnect is then answered ``410`` with the
reason, which ends its log thread (the original client was made to follow forever: it prints that
HTTPError's traceback on stderr, after every line was printed).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mltrail.core.errors import AuthenticationError, MltrailError
from mltrail.core.types import LOCAL_USER, LogLine
from mltrail.server.deps import ExperimentId, ProjectId, user_store
from mltrail.server.missinglink import tokens
from mltrail.server.missinglink.errors import MissingLinkRoute
from mltrail.server.missinglink.shapes import (
    log_record,
    log_timestamp,
    parse_log_timestamp,
)
from mltrail.server.missinglink.tokens import MissingLinkStore
from mltrail.server.polling import follow_logs
from mltrail.store.base import Store

MAX_AMOUNT = 50_000
RECONNECT_MILLISECONDS = 100
KEEP_ALIVE = b"event: keep-alive\ndata: null\n\n"
# The last bytes of a stream: a keep-alive left open, so the chunked-encoding trailer that the
# client's sseclient reads raw (it bypasses chunk decoding) closes it as an ignored event
# instead of becoming an event of its own with empty data, which the client would fail to parse.
STREAM_END = b"event: keep-alive\nretry: %d\n" % RECONNECT_MILLISECONDS

router = APIRouter(
    prefix="/projects/{project_id}/experiments/{experiment_id}", route_class=MissingLinkRoute
)


@router.get("/logs/read")
def read_logs(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    store: MissingLinkStore,
    amount: int = Query(10_000, ge=1, le=MAX_AMOUNT),
    timestamp: str | None = Query(None),
) -> dict[str, Any]:
    """Up to about ``amount`` lines after ``timestamp`` (from the start without it)."""
    cursor = None if timestamp is None else parse_log_timestamp(timestamp)

    def read(after_seq: int, limit: int) -> list[LogLine]:
        return store.read_logs(project_id, experiment_id, after_seq=after_seq, limit=limit)

    store.get_experiment(project_id, experiment_id)  # 404 / 403 before anything else
    after = 0 if cursor is None else _first_after(read, cursor)
    return {"logs": [log_record(line) for line in _page(read, after, amount)]}


@router.get("/logs")
def live_logs_url(
    project_id: ProjectId, experiment_id: ExperimentId, request: Request, store: MissingLinkStore
) -> dict[str, str]:
    """The live stream's URL, with a token for this experiment's logs only."""
    store.get_experiment(project_id, experiment_id)
    url = str(
        request.url_for(
            "missinglink_log_stream", project_id=project_id, experiment_id=experiment_id
        )
    )
    issued_from = getattr(request.state, "missinglink_token", None)
    if issued_from is None:  # the embedded UI's server: no tokens at all
        return {"url": url}
    claims = {"project": project_id, "experiment": experiment_id}
    token = tokens.mint(issued_from, audience=tokens.LOGS_AUDIENCE, claims=claims)
    return {"url": f"{url}?auth={token}"}


@router.get("/logs/stream", name="missinglink_log_stream")
async def stream_logs(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    request: Request,
    auth: str | None = Query(None),
    last_event_id: str | None = Header(None),
) -> StreamingResponse:
    """Firebase-style server-sent events of the run's lines until it ends; 410 after that."""
    store = await run_in_threadpool(_stream_store, request, auth, project_id, experiment_id)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    tail = await run_in_threadpool(
        functools.partial(store.tail_logs, project_id, experiment_id, after_seq=after, limit=1)
    )
    if tail.ended:  # a reconnect after the last line: the client stops following
        raise _Ended(
            f"project {project_id} experiment {experiment_id} has ended ({tail.status.value})"
        )
    events = _events(request, store, project_id, experiment_id, after)
    headers = {"Cache-Control": "no-cache", "Connection": "close", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


class _Ended(MltrailError):
    """The run ended and every line was sent: the client stops following."""

    status_code = 410
    kind = "gone"


def _stream_store(request: Request, auth: str | None, project_id: int, experiment_id: int) -> Store:
    """The store of the user the stream URL's token was minted for, for that experiment only."""
    if not request.app.state.require_auth:
        return user_store(request, LOCAL_USER)
    claims = tokens.verify(tokens.token_lookup(request), auth, audience=tokens.LOGS_AUDIENCE)
    if (claims.get("project"), claims.get("experiment")) != (project_id, experiment_id):
        raise AuthenticationError("this stream token is for another experiment's logs", "auth")
    return user_store(request, claims["user"])


async def _events(
    request: Request, store: Store, p: int, e: int, after: int
) -> AsyncIterator[bytes]:
    async for tail in follow_logs(request, store, p, e, after):
        if tail is None:
            yield KEEP_ALIVE
            continue
        for line in tail.lines:
            data = json.dumps({"path": f"/{line.seq}", "data": log_record(line, "ts")})
            yield b"id: %d\nevent: put\ndata: %s\n\n" % (line.seq, data.encode())
        if tail.ended:
            yield STREAM_END


Reader = Callable[[int, int], list[LogLine]]


def _first_after(read: Reader, cursor: str) -> int:
    """The smallest ``after_seq`` whose next line is timestamped past ``cursor``."""

    def past(after_seq: int) -> bool:
        lines = read(after_seq, 1)
        return not lines or log_timestamp(lines[0]) > cursor

    if past(0):
        return 0
    low, high = 0, 1
    while not past(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if past(middle) else (middle, high)
    return high


def _page(read: Reader, after: int, amount: int) -> list[LogLine]:
    """Up to ``amount`` lines after ``after``, never ending inside a group of one timestamp."""
    lines = read(after, amount + 1)
    if len(lines) <= amount:
        return lines
    page, last = lines[:amount], log_timestamp(lines[amount - 1])
    if log_timestamp(lines[amount]) != last:
        return page
    while page and log_timestamp(page[-1]) == last:
        page.pop()
    if page:
        return page
    group = lines  # one timestamp fills the page: return all of its lines
    while True:
        more = read(group[-1].seq, amount)
        same = list(itertools.takewhile(lambda line: log_timestamp(line) == last, more))
        group.extend(same)
        if len(same) < len(more) or not more:
            return group
