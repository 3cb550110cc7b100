"""Agents in the database: registration, heartbeats that extend a job's lease, listing.

Every call about an agent is its owner's (the user who registered it): another user's
register, heartbeat, claim, report or deregister of that agent id is refused (403).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from mltrail.core import jobs as jobs_core
from mltrail.core import validation
from mltrail.core.jobs import Agent, HeartbeatReply
from mltrail.core.types import Status
from mltrail.store.agents import AgentStore
from mltrail.store.sql.access import Scope, SqlNoun, check_project, dump_json, refuse_job_token
from mltrail.store.sql.job_rows import job_select, owned_agent, to_agent, touch_agent
from mltrail.store.sql.tables import agents, experiments, jobs


def register_agent(
    conn: Connection,
    scope: Scope,
    now: float,
    agent_id: Any,
    name: Any,
    queues: Any,
    lease: Any,
    projects: Any = None,
) -> Agent:
    """Create or refresh the agent; ``projects`` (each one its owner may see) are those it
    runs every job of, besides its owner's own jobs."""
    aid = jobs_core.agent_id(agent_id)
    refuse_job_token(scope, "register an agent")
    opted = jobs_core.project_ids(projects)
    for project_id in opted:
        check_project(conn, scope, project_id)
    values = {
        "name": validation.require_text(name, "name", min_len=1, max_len=200),
        "queues": dump_json(list(jobs_core.queue_names(queues)), "queues"),
        "lease_seconds": jobs_core.lease_seconds(lease),
        "last_seen_at": now,
        "gone": False,
        "user_id": scope.user.id if scope.user else None,
        "projects": dump_json(list(opted), "projects"),
    }
    if conn.execute(select(agents.c.id).where(agents.c.id == aid)).first():
        owned_agent(conn, scope, aid)
        conn.execute(update(agents).where(agents.c.id == aid).values(**values))
    else:
        conn.execute(agents.insert().values(id=aid, registered_at=now, **values))
    return to_agent(conn.execute(select(agents).where(agents.c.id == aid)).one(), now)


def deregister_agent(conn: Connection, scope: Scope, now: float, agent_id: Any) -> None:
    aid = jobs_core.agent_id(agent_id)
    owned_agent(conn, scope, aid)
    conn.execute(
        update(agents).where(agents.c.id == aid).values(gone=True, job_id=None, last_seen_at=now)
    )


def list_agents(conn: Connection, scope: Scope, now: float) -> list[Agent]:
    refuse_job_token(scope, "list agents")
    query = select(agents).order_by(agents.c.last_seen_at.desc())
    if not scope.sees_all:
        assert scope.user is not None
        query = query.where(agents.c.user_id == scope.user.id)
    return [to_agent(r, now) for r in conn.execute(query).all()]


def heartbeat(
    conn: Connection, scope: Scope, now: float, agent_id: Any, job_id: Any, lease: Any
) -> HeartbeatReply:
    aid, lease_s = jobs_core.agent_id(agent_id), jobs_core.lease_seconds(lease)
    owned_agent(conn, scope, aid)
    touch_agent(conn, aid, now)
    if job_id is None:
        return HeartbeatReply()
    row = conn.execute(
        job_select().add_columns(experiments.c.stop_requested).where(jobs.c.id == int(job_id))
    ).first()
    if row is None or row.agent_id != aid or row.status != Status.RUNNING.value:
        return HeartbeatReply(lease_lost=True)
    conn.execute(update(jobs).where(jobs.c.id == row.id).values(lease_expires_at=now + lease_s))
    # the job's experiment is alive as long as its agent is (see core/liveness.py)
    conn.execute(
        update(experiments).where(experiments.c.id == row.experiment_id).values(last_heartbeat=now)
    )
    return HeartbeatReply(stop_requested=bool(row.stop_requested))


class SqlAgents(SqlNoun, AgentStore):
    """The agents half of SqlStore."""

    def register_agent(
        self,
        agent_id: str,
        *,
        name: str,
        queues: Sequence[str],
        lease_seconds: float,
        projects: Sequence[int] = (),
    ) -> Agent:
        with self._db.write() as conn:
            now = self._now()
            return register_agent(
                conn, self._scope, now, agent_id, name, queues, lease_seconds, list(projects)
            )

    def deregister_agent(self, agent_id: str) -> None:
        with self._db.write() as conn:
            deregister_agent(conn, self._scope, self._now(), agent_id)

    def list_agents(self) -> list[Agent]:
        with self._db.read() as conn:
            return list_agents(conn, self._scope, self._now())

    def heartbeat(
        self, agent_id: str, job_id: int | None = None, *, lease_seconds: float
    ) -> HeartbeatReply:
        with self._db.write() as conn:
            return heartbeat(conn, self._scope, self._now(), agent_id, job_id, lease_seconds)
