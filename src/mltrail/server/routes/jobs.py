"""``/api/v1`` jobs: submit, list, claim (long-poll), finish.

Thin handlers: each parses its body, makes one store call and answers. The claim long-poll runs
on the event loop (``server/polling.py``): each ask is one ``claim_job`` in a worker thread, so a
waiting agent holds no worker thread, and none is made once the agent's connection has closed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from mltrail.core import codec
from mltrail.core import jobs as jb
from mltrail.core.errors import ValidationError
from mltrail.core.jobs import Job
from mltrail.core.types import Status
from mltrail.server.deps import StoreDep
from mltrail.server.polling import poll_while_connected
from mltrail.server.schemas import ERROR_RESPONSES, RequestModel

MAX_ID = 2**31 - 1  # database integers: larger ids cannot exist
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)


# --- bodies ------------------------------------------------------------------------------------
class JobIn(RequestModel):
    """A job to queue: the command, where its files come from, its environment."""

    command: list[str] = Field(min_length=1)
    queue: str = jb.DEFAULT_QUEUE
    display_name: str | None = None
    description: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    source: dict[str, Any] | None = None
    snapshot_base64: str | None = Field(None, description="gzip tarball of the working directory")
    max_retries: int = Field(0, ge=0, le=jb.MAX_RETRIES)


class JobOut(BaseModel):
    job_id: int
    project_id: int
    experiment_id: int
    queue: str
    command: list[str]
    env: dict[str, str]
    source: dict[str, Any]
    status: Status
    created_at: float
    max_retries: int
    attempts: int
    agent_id: str | None
    exit_code: int | None
    error: str | None
    claimed_at: float | None
    ended_at: float | None
    lease_expires_at: float | None
    queue_served: bool | None
    token: str | None = Field(
        None, description="only in a claim's answer: the job's own short-lived token"
    )
    user_id: int | None = None


class ClaimIn(RequestModel):
    agent_id: str
    queues: list[str] = Field(default_factory=lambda: [jb.DEFAULT_QUEUE])
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS
    wait_seconds: float = Field(0.0, ge=0, le=jb.MAX_WAIT_SECONDS)


class ClaimOut(BaseModel):
    job: JobOut | None


class FinishIn(RequestModel):
    agent_id: str
    status: Status
    exit_code: int | None = Field(None, ge=-MAX_ID, le=MAX_ID)
    error: str | None = None


class SnapshotOut(BaseModel):
    snapshot_base64: str


def _decode_snapshot(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("must be base64", "snapshot_base64") from None


# --- jobs --------------------------------------------------------------------------------------
@router.post("/projects/{project_id}/jobs", response_model=JobOut, status_code=201)
def submit_job(
    project_id: Annotated[int, Path(ge=1, le=MAX_ID)], body: JobIn, store: StoreDep
) -> dict:
    """Create the experiment (status ``queued``) and its job."""
    job = store.submit_job(
        project_id,
        body.command,
        queue=body.queue,
        display_name=body.display_name,
        description=body.description,
        env=body.env,
        source=body.source,
        snapshot=_decode_snapshot(body.snapshot_base64),
        max_retries=body.max_retries,
    )
    return codec.job_to_wire(job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    store: StoreDep,
    project_id: int | None = Query(None, ge=1, le=MAX_ID),
    queue: str | None = None,
    status: Status | None = None,
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[dict]:
    """Jobs newest first; ``queue_served`` is false when no live agent serves the queue."""
    jobs = store.list_jobs(project_id=project_id, queue=queue, status=status, limit=limit)
    return [codec.job_to_wire(j) for j in jobs]


@router.post("/jobs/claim", response_model=ClaimOut)
async def claim_job(body: ClaimIn, request: Request, store: StoreDep) -> dict:
    """Take the oldest queued job of the agent's queues, waiting up to ``wait_seconds``; an
    agent that went away while it waited (killed, say) takes none, and a job claimed for one
    that went away during the claim itself goes back to its queue."""

    def claim() -> Job | None:
        return store.claim_job(body.agent_id, body.queues, lease_seconds=body.lease_seconds)

    def hand_back(job: Job) -> bool:
        lease = job.lease_expires_at  # a claim's answer holds its lease
        return lease is not None and store.hand_back_job(
            job.job_id, body.agent_id, attempt=job.attempts, lease_expires_at=lease
        )

    job = await poll_while_connected(request, claim, body.wait_seconds, hand_back)
    return {"job": None if job is None else codec.job_to_wire(job)}


class HandBackIn(RequestModel):
    agent_id: str
    attempt: int = Field(ge=1, le=MAX_ID)
    lease_expires_at: float


class HandBackOut(BaseModel):
    handed_back: bool


@router.post("/jobs/{job_id}/hand-back", response_model=HandBackOut)
def hand_back_job(job_id: JobId, body: HandBackIn, store: StoreDep) -> dict:
    """Put a job the agent just claimed back on its queue, while it is as that claim left it
    (``attempt`` and ``lease_expires_at`` from the claim's answer); ``handed_back`` false when
    it had moved on (nothing written then)."""
    handed_back = store.hand_back_job(
        job_id, body.agent_id, attempt=body.attempt, lease_expires_at=body.lease_expires_at
    )
    return {"handed_back": handed_back}


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, store: StoreDep) -> dict:
    return codec.job_to_wire(store.get_job(job_id))


@router.get("/jobs/{job_id}/snapshot", response_model=SnapshotOut)
def get_job_snapshot(job_id: JobId, store: StoreDep) -> dict:
    """The uploaded tarball, base64-encoded."""
    data = store.get_job_snapshot(job_id)
    return {"snapshot_base64": base64.b64encode(data).decode("ascii")}


@router.post("/jobs/{job_id}/finish", response_model=JobOut)
def finish_job(job_id: JobId, body: FinishIn, store: StoreDep) -> dict:
    """Record the exit; 409 when the agent no longer holds the job."""
    job = store.finish_job(
        job_id, body.agent_id, status=body.status, exit_code=body.exit_code, error=body.error
    )
    return codec.job_to_wire(job)


@router.post("/jobs/expire-leases", response_model=list[JobOut])
def expire_leases(store: StoreDep) -> list[dict]:
    """Re-queue or fail running jobs whose agent stopped heartbeating."""
    return [codec.job_to_wire(j) for j in store.expire_leases()]
