"""``/api/v1`` jobs and agents: submit, list, claim (long-poll), heartbeat, finish.

Thin handlers: each parses its body, makes one store call and answers. The claim long-poll runs
on the event loop and asks the store (in a worker thread) every quarter second, so a waiting
agent holds no worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mltrail.core.errors import ValidationError
from mltrail.core.types import Status
from mltrail.server.deps import StoreDep
from mltrail.server.schemas import ERROR_RESPONSES
from mltrail.store import jobs_base as jb

POLL_SECONDS = 0.25
MAX_ID = 2**31 - 1  # database integers: larger ids cannot exist
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)


# --- bodies ------------------------------------------------------------------------------------
class JobIn(BaseModel):
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


class ClaimIn(BaseModel):
    agent_id: str
    queues: list[str] = Field(default_factory=lambda: [jb.DEFAULT_QUEUE])
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS
    wait_seconds: float = Field(0.0, ge=0, le=jb.MAX_WAIT_SECONDS)


class ClaimOut(BaseModel):
    job: JobOut | None


class FinishIn(BaseModel):
    agent_id: str
    status: Status
    exit_code: int | None = Field(None, ge=-MAX_ID, le=MAX_ID)
    error: str | None = None


class AgentIn(BaseModel):
    agent_id: str
    name: str
    queues: list[str] = Field(default_factory=lambda: [jb.DEFAULT_QUEUE])
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS


class AgentOut(BaseModel):
    agent_id: str
    name: str
    queues: list[str]
    lease_seconds: float
    registered_at: float
    last_seen_at: float
    job_id: int | None
    alive: bool


class HeartbeatIn(BaseModel):
    job_id: int | None = Field(None, ge=1, le=MAX_ID)
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS


class HeartbeatOut(BaseModel):
    stop_requested: bool
    lease_lost: bool


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
    job = store.submit_job(  # type: ignore[attr-defined]
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
    return jb.job_to_wire(job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    store: StoreDep,
    project_id: int | None = Query(None, ge=1, le=MAX_ID),
    queue: str | None = None,
    status: Status | None = None,
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[dict]:
    """Jobs newest first; ``queue_served`` is false when no live agent serves the queue."""
    jobs = store.list_jobs(project_id=project_id, queue=queue, status=status, limit=limit)  # type: ignore[attr-defined]
    return [jb.job_to_wire(j) for j in jobs]


@router.post("/jobs/claim", response_model=ClaimOut)
async def claim_job(body: ClaimIn, store: StoreDep) -> dict:
    """Take the oldest queued job of the agent's queues, waiting up to ``wait_seconds``."""
    deadline = time.monotonic() + body.wait_seconds
    while True:
        job = await run_in_threadpool(
            store.claim_job,  # type: ignore[attr-defined]
            body.agent_id,
            body.queues,
            lease_seconds=body.lease_seconds,
        )
        remaining = deadline - time.monotonic()
        if job is not None or remaining <= 0:
            return {"job": None if job is None else jb.job_to_wire(job)}
        await asyncio.sleep(min(POLL_SECONDS, remaining))


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, store: StoreDep) -> dict:
    return jb.job_to_wire(store.get_job(job_id))  # type: ignore[attr-defined]


@router.get("/jobs/{job_id}/snapshot", response_model=SnapshotOut)
def get_job_snapshot(job_id: JobId, store: StoreDep) -> dict:
    """The uploaded tarball, base64-encoded."""
    data = store.get_job_snapshot(job_id)  # type: ignore[attr-defined]
    return {"snapshot_base64": base64.b64encode(data).decode("ascii")}


@router.post("/jobs/{job_id}/finish", response_model=JobOut)
def finish_job(job_id: JobId, body: FinishIn, store: StoreDep) -> dict:
    """Record the exit; 409 when the agent no longer holds the job."""
    job = store.finish_job(  # type: ignore[attr-defined]
        job_id, body.agent_id, status=body.status, exit_code=body.exit_code, error=body.error
    )
    return jb.job_to_wire(job)


@router.post("/jobs/expire-leases", response_model=list[JobOut])
def expire_leases(store: StoreDep) -> list[dict]:
    """Re-queue or fail running jobs whose agent stopped heartbeating."""
    return [jb.job_to_wire(j) for j in store.expire_leases()]  # type: ignore[attr-defined]


# --- agents ------------------------------------------------------------------------------------
@router.post("/agents", response_model=AgentOut)
def register_agent(body: AgentIn, store: StoreDep) -> dict:
    agent = store.register_agent(  # type: ignore[attr-defined]
        body.agent_id, name=body.name, queues=body.queues, lease_seconds=body.lease_seconds
    )
    return jb.agent_to_wire(agent)


@router.get("/agents", response_model=list[AgentOut])
def list_agents(store: StoreDep) -> list[dict]:
    return [jb.agent_to_wire(a) for a in store.list_agents()]  # type: ignore[attr-defined]


@router.delete("/agents/{agent_id}", status_code=204)
def deregister_agent(agent_id: str, store: StoreDep) -> None:
    store.deregister_agent(agent_id)  # type: ignore[attr-defined]


@router.post("/agents/{agent_id}/heartbeat", response_model=HeartbeatOut)
def heartbeat(agent_id: str, body: HeartbeatIn, store: StoreDep) -> dict:
    """Extend the job's lease; tells whether a stop was requested or the lease was lost."""
    reply = store.heartbeat(agent_id, body.job_id, lease_seconds=body.lease_seconds)  # type: ignore[attr-defined]
    return {"stop_requested": reply.stop_requested, "lease_lost": reply.lease_lost}
