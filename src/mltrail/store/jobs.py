"""The jobs noun of the Store: commands queued for agents, claimed atomically under a lease.

A job's life: ``submit_job`` creates the experiment (status ``queued``) and the job; an agent's
``claim_job`` takes the oldest queued job of its queues atomically and holds a lease on it;
``AgentStore.heartbeat`` extends the lease and tells the agent whether a stop was requested;
``finish_job`` records the exit. When an agent stops heartbeating, ``expire_leases`` re-queues
the job while ``max_retries`` allows, else marks it failed.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.core.jobs import DEFAULT_QUEUE, Job
from mltrail.core.types import Status


class JobStore(abc.ABC):
    """Jobs on queues, behind intent-named methods."""

    @abc.abstractmethod
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
        """Create the experiment (status ``queued``) and its job, in one transaction.

        Args:
            project_id: the project the experiment belongs to.
            command: argv of the command to run.
            queue: the queue agents claim from.
            display_name: the experiment's display name.
            description: the experiment's description.
            env: extra environment variables for the command (MLTRAIL_* reserved).
            source: where the working directory comes from (see :class:`Job`).
            snapshot: the tarball (gzip) when ``source`` is of kind ``tarball``.
            max_retries: how many times a job whose agent died is re-queued before failing.

        Raises:
            ValidationError: naming the field at fault; nothing is written then.
        """

    @abc.abstractmethod
    def get_job(self, job_id: int) -> Job:
        """One job. NotFoundError when it does not exist or is in a project the user cannot see."""

    @abc.abstractmethod
    def get_job_snapshot(self, job_id: int) -> bytes:
        """The uploaded tarball of the job. NotFoundError when the job has none."""

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        project_id: int | None = None,
        queue: str | None = None,
        status: Status | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        """Jobs, newest first, with ``queue_served`` filled in (a live agent serves the queue)."""

    @abc.abstractmethod
    def claim_job(
        self,
        agent_id: str,
        queues: Sequence[str],
        *,
        lease_seconds: float,
        wait_seconds: float = 0.0,
    ) -> Job | None:
        """Atomically take the oldest queued job of ``queues``; ``None`` when none came in time.

        Expires stale leases first. Two agents never get the same job: PostgreSQL uses
        ``SELECT ... FOR UPDATE SKIP LOCKED``, SQLite an immediate transaction. Jobs whose
        experiment was asked to stop while queued are marked stopped instead of handed out;
        those of a deleted project stay queued until it is restored. Waits up to
        ``wait_seconds`` (a long poll) for a job to arrive.
        """

    @abc.abstractmethod
    def hand_back_job(
        self, job_id: int, agent_id: str, *, attempt: int, lease_expires_at: float
    ) -> bool:
        """Put a job just claimed back on its queue, as if the claim had not happened: for a
        claim whose answer cannot be delivered (its agent's connection closed during the
        claim's own transaction), so no job sits claimed by an agent that never heard of it.

        Atomic, and only while the job is exactly as that claim left it: running on
        ``agent_id``, in attempt ``attempt``, under the lease the claim set (no heartbeat,
        finish, expiry or later claim since). The job is queued again, the attempt not
        counted, its token revoked, its experiment ``queued`` and the agent free.

        Args:
            job_id: the claimed job.
            agent_id: the agent that claimed it.
            attempt: ``attempts`` of the claim's answer.
            lease_expires_at: ``lease_expires_at`` of the claim's answer.

        Not idempotent: a repeated hand-back of the same claim answers False (the job moved
        on: it is queued already). So HttpStore sends it once and never retries it; when its
        answer is lost, it raises :class:`~mltrail.core.errors.TransportError` and the caller
        learns the outcome by reading the job (``queued`` with ``attempts`` one less: handed
        back).

        Returns:
            True when the job went back to its queue; False when it had moved on (nothing is
            written then; so a repeated hand-back answers False too).

        Raises:
            NotFoundError: no such job (or agent) the user can see.
            TransportError: (HttpStore) the answer did not arrive; the hand-back may have
                happened.
        """

    @abc.abstractmethod
    def finish_job(
        self,
        job_id: int,
        agent_id: str,
        *,
        status: Status,
        exit_code: int | None = None,
        error: str | None = None,
    ) -> Job:
        """Record the end of a job and of its experiment.

        Raises:
            ConflictError: the agent no longer holds the job (its lease expired).
        """

    @abc.abstractmethod
    def expire_leases(self, now: float | None = None) -> list[Job]:
        """Re-queue (while retries allow) or fail running jobs whose lease has expired."""
