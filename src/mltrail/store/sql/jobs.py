"""Jobs and agents in the database: submission, atomic claims, leases, heartbeats.

Claims take the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL;
on SQLite the same statement runs inside the ``BEGIN IMMEDIATE`` write transaction, which
serialises claimers. The job row and its experiment's status change in one transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update

from mltrail.core import jobs as jobs_core
from mltrail.core import validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.jobs import DEFAULT_QUEUE, MAX_WAIT_SECONDS, Job, JobSpec
from mltrail.core.polling import poll
from mltrail.core.types import LogBatch, LogLine, Status
from mltrail.store.jobs import JobStore
from mltrail.store.sql import experiments as exp
from mltrail.store.sql import logs
from mltrail.store.sql.access import Scope, SqlNoun, check_project, dump_json, load_json
from mltrail.store.sql.engine import Database
from mltrail.store.sql.job_rows import (
    is_served,
    job_select,
    live_agents,
    load_job,
    owned_agent,
    to_job,
    touch_agent,
    visible,
)
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.tables import agents, experiments, job_tokens, jobs
from mltrail.store.sql.tables import projects as project_rows
from mltrail.store.sql.users import mint_job_token

_CLAIM_SCAN = 20  # jobs skipped per claim because their experiment was asked to stop
EXPIRY_INTERVAL_SECONDS = 1.0


def _set_experiment_status(
    conn: Connection, scope: Scope, now: float, row: Any, status: Status
) -> None:
    ref = (row.project_id, row.number)
    # a job's claim or retry runs the experiment again, whatever it recorded last
    changes = {"status": status, "rerun": True}
    exp.apply_changes(conn, scope, Judge.stored(now), ref, changes, internal=True)


# --- submission and reads --------------------------------------------------------------------
def submit_job(
    conn: Connection,
    scope: Scope,
    now: float,
    project_id: Any,
    spec: JobSpec,
    fields: dict[str, Any],
    snapshot: bytes | None,
) -> Job:
    """Create the queued experiment and its job in one transaction."""
    check_project(conn, scope, project_id)
    experiment = exp.create_experiment(
        conn, scope, Judge.stored(now), project_id, {**fields, "status": Status.QUEUED}
    )
    pk = conn.execute(
        select(experiments.c.id).where(
            and_(
                experiments.c.project_id == experiment.project_id,
                experiments.c.number == experiment.experiment_id,
            )
        )
    ).scalar_one()
    source = dict(spec.source)
    if source.get("kind") == "tarball" and snapshot is None:
        raise ValidationError("a tarball source needs the snapshot bytes", "snapshot")
    if snapshot is not None:
        source = {
            "kind": "tarball",
            "size": len(snapshot),
            "sha256": hashlib.sha256(snapshot).hexdigest(),
        }
    inserted = conn.execute(
        jobs.insert().values(
            project_id=experiment.project_id,
            experiment_id=pk,
            queue=spec.queue,
            command=dump_json(list(spec.command), "command"),
            env=dump_json(spec.env, "env"),
            source=dump_json(source, "source"),
            snapshot=snapshot,
            status=Status.QUEUED.value,
            max_retries=spec.max_retries,
            attempts=0,
            created_at=now,
            user_id=scope.user.id if scope.user is not None else None,
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return to_job(load_job(conn, scope, int(key[0])))


def get_job(conn: Connection, scope: Scope, job_id: Any) -> Job:
    return to_job(load_job(conn, scope, job_id))


def get_job_snapshot(conn: Connection, scope: Scope, job_id: Any) -> bytes:
    row = load_job(conn, scope, job_id)
    data = conn.execute(select(jobs.c.snapshot).where(jobs.c.id == row.id)).scalar()
    if data is None:
        raise NotFoundError(f"job {row.id} has no uploaded snapshot", "job")
    return bytes(data)


def list_jobs(
    conn: Connection,
    scope: Scope,
    now: float,
    *,
    project_id: Any = None,
    queue: Any = None,
    status: Any = None,
    limit: Any = 1000,
) -> list[Job]:
    """Newest first; ``queue_served`` tells whether a live agent serves each job's queue."""
    query = job_select().where(visible(scope)).order_by(jobs.c.id.desc())
    if project_id is not None:
        query = query.where(jobs.c.project_id == check_project(conn, scope, project_id))
    if queue is not None:
        query = query.where(jobs.c.queue == jobs_core.queue_name(queue))
    if status is not None:
        query = query.where(jobs.c.status == validation.status(status).value)
    query = query.limit(validation.require_int(limit, "limit", minimum=1))
    serving = live_agents(conn, now)
    return [to_job(r, is_served(r, serving)) for r in conn.execute(query).all()]


# --- claims and leases --------------------------------------------------------------------------
def claim_job(
    conn: Connection, scope: Scope, now: float, agent_id: Any, queues: Any, lease: Any
) -> Job | None:
    """Take the oldest queued job of ``queues`` that the agent may run (its owner queued it,
    or started it for the job's project: :func:`~mltrail.core.jobs.agent_accepts`), or
    ``None``. The job gets a fresh token of its own (:attr:`Job.token`), the only one it sees.
    A job of a deleted project stays queued until it is restored: its run could write nothing."""
    aid, names = jobs_core.agent_id(agent_id), jobs_core.queue_names(queues)
    lease_s = jobs_core.lease_seconds(lease)
    agent = owned_agent(conn, scope, aid)
    touch_agent(conn, aid, now)
    live = select(project_rows.c.id).where(project_rows.c.deleted_at.is_(None))
    accepted = and_(visible(scope), jobs.c.project_id.in_(live))
    if scope.user is not None:  # an embedded agent runs every job of its own store
        projects = jobs_core.project_ids(load_json(agent.projects, []))
        accepted = and_(
            accepted, or_(jobs.c.user_id == scope.user.id, jobs.c.project_id.in_(projects))
        )
    for _ in range(_CLAIM_SCAN):
        row = conn.execute(
            job_select()
            .add_columns(experiments.c.stop_requested)
            .where(jobs.c.status == Status.QUEUED.value, jobs.c.queue.in_(names), accepted)
            .order_by(jobs.c.id)
            .limit(1)
            .with_for_update(of=jobs, skip_locked=True)
        ).first()
        if row is None:
            return None
        if row.stop_requested:  # stopped while queued: it never runs
            _end_job(conn, scope, now, row, Status.STOPPED, error="stopped before it started")
            continue
        _update_job(
            conn,
            row.id,
            status=Status.RUNNING.value,
            agent_id=aid,
            attempts=jobs.c.attempts + 1,
            claimed_at=now,
            lease_expires_at=now + lease_s,
            exit_code=None,
            error=None,
        )
        touch_agent(conn, aid, now, job_id=row.id)
        _set_experiment_status(conn, scope, now, row, Status.RUNNING)
        # the claim is the agent's first heartbeat for the run (see core/liveness.py)
        conn.execute(
            update(experiments)
            .where(experiments.c.id == row.experiment_id)
            .values(last_heartbeat=now)
        )
        claimed = to_job(load_job(conn, scope, row.id))
        return dataclasses.replace(claimed, token=_mint_token(conn, now, claimed))
    return None


def hand_back_job(
    conn: Connection, scope: Scope, now: float, job_id: Any, agent_id: Any, attempt: Any, lease: Any
) -> bool:
    """:meth:`JobStore.hand_back_job`: the claim's changes undone, while its state holds."""
    aid = jobs_core.agent_id(agent_id)
    owned_agent(conn, scope, aid)
    row = load_job(conn, scope, job_id, lock=True)
    as_claimed = (
        row.status == Status.RUNNING.value
        and row.agent_id == aid
        and row.attempts == attempt
        and row.lease_expires_at == lease
    )
    if not as_claimed:
        return False
    _update_job(
        conn,
        row.id,
        status=Status.QUEUED.value,
        agent_id=None,
        attempts=jobs.c.attempts - 1,
        claimed_at=None,
        lease_expires_at=None,
    )
    conn.execute(delete(job_tokens).where(job_tokens.c.job_id == row.id))
    conn.execute(
        update(agents).where(agents.c.id == aid, agents.c.job_id == row.id).values(job_id=None)
    )
    _set_experiment_status(conn, scope, now, row, Status.QUEUED)
    return True


def _update_job(conn: Connection, job_id: int, **values: Any) -> None:
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def _mint_token(conn: Connection, now: float, job: Job) -> str:
    """A fresh token for this attempt of the job; the tokens of earlier attempts go."""
    conn.execute(delete(job_tokens).where(job_tokens.c.job_id == job.job_id))
    token, digest = mint_job_token()
    conn.execute(
        job_tokens.insert().values(
            token_sha256=digest, job_id=job.job_id, attempt=job.attempts, created_at=now
        )
    )
    return token


def finish_job(
    conn: Connection,
    scope: Scope,
    now: float,
    job_id: Any,
    agent_id: Any,
    status: Any,
    exit_code: Any,
    error: Any,
) -> Job:
    aid, final = jobs_core.agent_id(agent_id), jobs_core.final_status(status)
    owned_agent(conn, scope, aid)
    row = load_job(conn, scope, job_id, lock=True)
    if row.agent_id == aid and row.status == final.value:  # a retried report
        return to_job(row)
    if row.agent_id != aid or row.status != Status.RUNNING.value:
        raise ConflictError(
            f"job {row.id} is not running on agent {aid} (status {row.status})", "job"
        )
    code = (
        None
        if exit_code is None
        else validation.require_int(
            exit_code, "exit_code", minimum=-validation.MAX_DB_ID, maximum=validation.MAX_DB_ID
        )
    )
    # PostgreSQL text cannot hold NUL; an agent's message is free text, so replace rather than refuse
    message = None if error is None else str(error).replace("\x00", "\ufffd")[:10_000]
    _end_job(conn, scope, now, row, final, exit_code=code, error=message)
    conn.execute(update(agents).where(agents.c.id == aid).values(job_id=None, last_seen_at=now))
    return to_job(load_job(conn, scope, row.id))


def _end_job(
    conn: Connection,
    scope: Scope,
    now: float,
    row: Any,
    status: Status,
    *,
    exit_code: int | None = None,
    error: str | None = None,
) -> None:
    _update_job(
        conn,
        row.id,
        status=status.value,
        exit_code=exit_code,
        error=error,
        ended_at=now,
        lease_expires_at=None,
    )
    conn.execute(delete(job_tokens).where(job_tokens.c.job_id == row.id))  # its token ends too
    _set_experiment_status(conn, scope, now, row, status)


def expire_leases(conn: Connection, db: Database, now: float) -> list[Job]:
    """Re-queue or fail every running job whose lease ran out, saying so in its logs; a job
    asked to stop ends stopped (a stop of its dead run may have recorded that already)."""
    rows = conn.execute(
        job_select()
        .add_columns(experiments.c.stop_requested)
        .where(jobs.c.status == Status.RUNNING.value, jobs.c.lease_expires_at < now)
        .order_by(jobs.c.id)
        .with_for_update(of=jobs, skip_locked=True)
    ).all()
    unscoped = Scope()  # whoever notices an expired lease may recover it
    for row in rows:
        note = f"lease expired: agent {row.agent_id} stopped heartbeating (attempt {row.attempts})"
        if row.stop_requested:
            _end_job(conn, unscoped, now, row, Status.STOPPED, error=note + "; asked to stop")
        elif row.attempts <= row.max_retries:
            _update_job(
                conn,
                row.id,
                status=Status.QUEUED.value,
                lease_expires_at=None,
                error=note + "; re-queued",
            )
            conn.execute(delete(job_tokens).where(job_tokens.c.job_id == row.id))
            _set_experiment_status(conn, unscoped, now, row, Status.QUEUED)
        else:
            _end_job(conn, unscoped, now, row, Status.FAILED, error=note)
        conn.execute(update(agents).where(agents.c.job_id == row.id).values(job_id=None))
        line = LogLine(time=now, stream="agent", level="ERROR", message=note)
        batch = LogBatch(client_id=f"mltrail-lease:job:{row.id}", seq=row.attempts, lines=(line,))
        logs.append_logs(conn, db, unscoped, (row.project_id, row.number), batch, internal=True)
    return [to_job(load_job(conn, unscoped, r.id)) for r in rows]


class SqlJobs(SqlNoun, JobStore):
    """The jobs half of SqlStore."""

    def submit_job(
        self,
        project_id: int,
        command: Sequence[str],
        *,
        queue: str = DEFAULT_QUEUE,
        display_name: str | None = None,
        description: str = "",
        env: Mapping[str, str] | None = None,
        source: Mapping[str, Any] | None = None,
        snapshot: bytes | None = None,
        max_retries: int = 0,
    ) -> Job:
        spec = jobs_core.job_spec(
            command, queue=queue, env=env, source=source, max_retries=max_retries
        )
        data = jobs_core.snapshot_bytes(snapshot)
        fields: dict[str, Any] = {"display_name": display_name, "description": description}
        if spec.source.get("kind") == "git":
            fields["source"] = {"commit": spec.source["commit"], "remote": spec.source["url"]}
        with self._db.write() as conn:
            return submit_job(conn, self._scope, self._now(), project_id, spec, fields, data)

    def get_job(self, job_id: int) -> Job:
        with self._db.read() as conn:
            return get_job(conn, self._scope, job_id)

    def get_job_snapshot(self, job_id: int) -> bytes:
        with self._db.read() as conn:
            return get_job_snapshot(conn, self._scope, job_id)

    def list_jobs(
        self,
        *,
        project_id: int | None = None,
        queue: str | None = None,
        status: Status | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        self.expire_leases()
        with self._db.read() as conn:
            filters = {"project_id": project_id, "queue": queue, "status": status}
            return list_jobs(conn, self._scope, self._now(), limit=limit, **filters)

    def claim_job(
        self,
        agent_id: str,
        queues: Sequence[str],
        *,
        lease_seconds: float,
        wait_seconds: float = 0.0,
    ) -> Job | None:
        def claim_once() -> Job | None:
            self._expire_now_and_then()
            with self._db.write() as conn:
                now = self._now()
                return claim_job(conn, self._scope, now, agent_id, queues, lease_seconds)

        wait = min(float(wait_seconds), MAX_WAIT_SECONDS)
        return poll(claim_once, lambda job: job is not None, wait)

    def hand_back_job(
        self, job_id: int, agent_id: str, *, attempt: int, lease_expires_at: float
    ) -> bool:
        with self._db.write() as conn:
            now = self._now()
            return hand_back_job(
                conn, self._scope, now, job_id, agent_id, attempt, lease_expires_at
            )

    def _expire_now_and_then(self) -> None:
        """Expire leases at most once a second per database: claims poll several times a second."""
        now = time.monotonic()
        if now - self._db.last_expiry >= EXPIRY_INTERVAL_SECONDS:
            self._db.last_expiry = now
            self.expire_leases()

    def finish_job(
        self,
        job_id: int,
        agent_id: str,
        *,
        status: Status,
        exit_code: int | None = None,
        error: str | None = None,
    ) -> Job:
        with self._db.write() as conn:
            now = self._now()
            return finish_job(conn, self._scope, now, job_id, agent_id, status, exit_code, error)

    def expire_leases(self, now: float | None = None) -> list[Job]:
        with self._db.write() as conn:
            return expire_leases(conn, self._db, self._now() if now is None else now)
