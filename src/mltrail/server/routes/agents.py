"""``/api/v1`` agents: register, heartbeat (which keeps a claimed job's lease), list."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mltrail.core import codec
from mltrail.core import jobs as jb
from mltrail.server.deps import StoreDep
from mltrail.server.routes.jobs import MAX_ID
from mltrail.server.schemas import ERROR_RESPONSES, RequestModel

router = APIRouter(tags=["agents"], responses=ERROR_RESPONSES)


class AgentIn(RequestModel):
    agent_id: str
    name: str
    queues: list[str] = Field(default_factory=lambda: [jb.DEFAULT_QUEUE])
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS
    projects: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="projects whose every job it runs; otherwise only its owner's own jobs",
    )


class AgentOut(BaseModel):
    agent_id: str
    name: str
    queues: list[str]
    lease_seconds: float
    registered_at: float
    last_seen_at: float
    job_id: int | None
    alive: bool
    projects: list[int]


class HeartbeatIn(RequestModel):
    job_id: int | None = Field(None, ge=1, le=MAX_ID)
    lease_seconds: float = jb.DEFAULT_LEASE_SECONDS


class HeartbeatOut(BaseModel):
    stop_requested: bool
    lease_lost: bool


@router.post("/agents", response_model=AgentOut)
def register_agent(body: AgentIn, store: StoreDep) -> dict:
    agent = store.register_agent(
        body.agent_id,
        name=body.name,
        queues=body.queues,
        lease_seconds=body.lease_seconds,
        projects=body.projects,
    )
    return codec.agent_to_wire(agent)


@router.get("/agents", response_model=list[AgentOut])
def list_agents(store: StoreDep) -> list[dict]:
    return [codec.agent_to_wire(a) for a in store.list_agents()]


@router.delete("/agents/{agent_id}", status_code=204)
def deregister_agent(agent_id: str, store: StoreDep) -> None:
    store.deregister_agent(agent_id)


@router.post("/agents/{agent_id}/heartbeat", response_model=HeartbeatOut)
def heartbeat(agent_id: str, body: HeartbeatIn, store: StoreDep) -> dict:
    """Extend the job's lease; tells whether a stop was requested or the lease was lost."""
    reply = store.heartbeat(agent_id, body.job_id, lease_seconds=body.lease_seconds)
    return codec.heartbeat_to_wire(reply)
