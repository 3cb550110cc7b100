"""The jobs and agents tables, and turning their rows into :class:`Job` / :class:`Agent`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    select,
)

from mltrail.core import validation
from mltrail.core.errors import NotFoundError
from mltrail.core.types import Status
from mltrail.store import jobs_base as jb
from mltrail.store.jobs_base import Agent, Job
from mltrail.store.sql.access import Scope, load_json
from mltrail.store.sql.tables import experiments, metadata, projects

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    ),
    Column("queue", String(100), nullable=False),
    Column("command", Text, nullable=False),
    Column("env", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("snapshot", LargeBinary),
    Column("status", String(16), nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("agent_id", String(100)),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("created_at", Double, nullable=False),
    Column("claimed_at", Double),
    Column("ended_at", Double),
    Column("lease_expires_at", Double),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("name", String(200), nullable=False),
    Column("queues", Text, nullable=False),
    Column("lease_seconds", Double, nullable=False),
    Column("registered_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("job_id", Integer),
    Column("gone", Boolean, nullable=False),
)

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
        alive=not row.gone and jb.is_alive(row.last_seen_at, row.lease_seconds, now),
    )


def visible(scope: Scope) -> Any:
    return jobs.c.project_id.in_(select(projects.c.id).where(scope.visible_projects()))


def load_job(conn: Connection, scope: Scope, job_id: Any, *, lock: bool = False) -> Any:
    jid = validation.require_int(job_id, "job", minimum=1)
    query = job_select().where(jobs.c.id == jid).where(visible(scope))
    if lock:
        query = query.with_for_update(of=jobs)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"job {jid} does not exist", "job")
    return row
