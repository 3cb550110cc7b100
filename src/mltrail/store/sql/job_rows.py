"""Rows of the jobs and agents tables, shared by ``jobs.py`` and ``agents.py``: selecting them
(within the user's scope), turning them into :class:`Job` / :class:`Agent`, touching agents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, PermissionDeniedError
from mltrail.core.jobs import Agent, Job, agent_accepts, is_alive
from mltrail.core.types import Status
from mltrail.store.sql.access import Scope, load_json, refuse_job_token
from mltrail.store.sql.tables import agents, experiments, jobs, projects

# every column but the snapshot, which only get_job_snapshot reads
JOB_COLUMNS = [c for c in jobs.c if c.name != "snapshot"]


def job_select() -> Any:
    return select(*JOB_COLUMNS, experiments.c.number).join(
        experiments, experiments.c.id == jobs.c.experiment_id
    )


def to_job(row: Any, served: bool | None = None) -> Job:
    return Job(
        job_id=row.id,
        project_id=row.project_id,
        experiment_id=row.number,
        queue=row.queue,
        command=tuple(load_json(row.command, [])),
        env=load_json(row.env, {}),
        source=load_json(row.source, {}),
        status=Status(row.status),
        created_at=row.created_at,
        max_retries=row.max_retries,
        attempts=row.attempts,
        agent_id=row.agent_id,
        exit_code=row.exit_code,
        error=row.error,
        claimed_at=row.claimed_at,
        ended_at=row.ended_at,
        lease_expires_at=row.lease_expires_at,
        queue_served=served,
        user_id=row.user_id,
    )


def to_agent(row: Any, now: float) -> Agent:
    return Agent(
        agent_id=row.id,
        name=row.name,
        queues=tuple(load_json(row.queues, [])),
        lease_seconds=row.lease_seconds,
        registered_at=row.registered_at,
        last_seen_at=row.last_seen_at,
        job_id=row.job_id,
        alive=not row.gone and is_alive(row.last_seen_at, row.lease_seconds, now),
        projects=tuple(load_json(row.projects, [])),
    )


def visible(scope: Scope) -> Any:
    return jobs.c.project_id.in_(select(projects.c.id).where(scope.visible_projects()))


def load_job(conn: Connection, scope: Scope, job_id: Any, *, lock: bool = False) -> Any:
    jid = validation.require_int(job_id, "job", minimum=1, maximum=validation.MAX_DB_ID)
    query = job_select().where(jobs.c.id == jid).where(visible(scope))
    if lock:
        query = query.with_for_update(of=jobs)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"job {jid} does not exist", "job")
    return row


def touch_agent(conn: Connection, agent_id: str, now: float, **values: Any) -> None:
    """Mark the agent seen now (and set ``values``). NotFoundError when it is not registered."""
    found = conn.execute(
        update(agents).where(agents.c.id == agent_id).values(last_seen_at=now, gone=False, **values)
    ).rowcount
    if not found:
        raise NotFoundError(f"agent {agent_id} is not registered", "agent_id")


def owned_agent(conn: Connection, scope: Scope, agent_id: str) -> Any:
    """The agent's row, when the scope's user owns it (any agent in embedded mode).

    Raises:
        PermissionDeniedError: another user's agent, or a job's token (field ``agent_id``).
        NotFoundError: no such agent (field ``agent_id``).
    """
    refuse_job_token(scope, "act as an agent")
    row = conn.execute(select(agents).where(agents.c.id == agent_id)).first()
    if row is None:
        raise NotFoundError(f"agent {agent_id} is not registered", "agent_id")
    if scope.user is not None and row.user_id != scope.user.id:
        raise PermissionDeniedError(f"agent {agent_id} belongs to another user", "agent_id")
    return row


def live_agents(conn: Connection, now: float) -> list[Any]:
    """Rows of the agents alive now."""
    rows = conn.execute(select(agents).where(agents.c.gone.is_(False))).all()
    return [r for r in rows if is_alive(r.last_seen_at, r.lease_seconds, now)]


def is_served(job_row: Any, serving: list[Any]) -> bool:
    """Whether a live agent that would run the job serves its queue. Only agents that would
    take it count, so the answer says nothing of other users' queues."""
    return any(
        job_row.queue in load_json(a.queues, [])
        and agent_accepts(
            a.user_id, tuple(load_json(a.projects, [])), job_row.user_id, job_row.project_id
        )
        for a in serving
    )
