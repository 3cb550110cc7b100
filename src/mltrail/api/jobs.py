"""``api.jobs``: queue commands as remote experiments; what agents call to run them.

Jobs have no contract form to adapt, so these methods take and return the core types
(:class:`~mltrail.core.jobs.Job`); the CLI renders them with the codec's wire shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mltrail.api.snapshots import job_source
from mltrail.core import jobs as jobs_core
from mltrail.core.jobs import DEFAULT_QUEUE, Job
from mltrail.core.types import LogBatch, Status
from mltrail.store.base import Store


class JobsApi:
    """``api.jobs``: submit, list and run remote jobs."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def submit(
        self,
        project: int,
        command: Sequence[str],
        *,
        queue: str = DEFAULT_QUEUE,
        display_name: str | None = None,
        description: str = "",
        env: Any = None,
        retries: int = 0,
        source: str = "auto",
        cwd: Path | None = None,
    ) -> Job:
        """Queue ``command`` as a new experiment of ``project``.

        Args:
            project: project id.
            command: argv of the command.
            queue: the queue agents claim from.
            display_name / description: the experiment's.
            env: environment variables: a mapping or ``K=V`` strings (MLTRAIL_* reserved).
            retries: re-queue this many times when the agent dies mid-run.
            source: ``auto`` (git when the checkout is clean and pushed, else a tarball),
                ``git``, ``tarball`` or ``none``.
            cwd: the directory the source is taken from (the current one by default).
        """
        # checked before the directory is packed, so a bad argument fails fast
        spec = jobs_core.job_spec(list(command), queue=queue, env=env, max_retries=retries)
        src, snapshot = job_source(cwd or Path.cwd(), source)
        return self._store.submit_job(
            project,
            spec.command,
            queue=spec.queue,
            display_name=display_name,
            description=description,
            env=spec.env,
            source=src,
            snapshot=snapshot,
            max_retries=spec.max_retries,
        )

    def list(
        self,
        *,
        project: int | None = None,
        queue: str | None = None,
        status: Status | str | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        """Jobs newest first, each saying whether a live agent serves its queue."""
        wanted = None if status is None else Status(status)
        return self._store.list_jobs(project_id=project, queue=queue, status=wanted, limit=limit)

    def queue_served(self, queue: str) -> bool:
        """Whether a live agent serves ``queue`` (known from its newest job)."""
        return any(j.queue_served for j in self._store.list_jobs(queue=queue, limit=1))

    def get(self, job_id: int) -> Job:
        return self._store.get_job(job_id)

    def snapshot(self, job_id: int) -> bytes:
        """The tarball uploaded with the job."""
        return self._store.get_job_snapshot(job_id)

    # --- what an agent calls -------------------------------------------------------------------
    def claim(
        self, agent_id: str, queues: Sequence[str], *, lease_seconds: float, wait_seconds: float
    ) -> Job | None:
        """The oldest queued job of ``queues`` under a lease, waiting up to ``wait_seconds``."""
        return self._store.claim_job(
            agent_id, queues, lease_seconds=lease_seconds, wait_seconds=wait_seconds
        )

    def append_output(self, job: Job, batch: LogBatch) -> int:
        """Store a batch of the job's output in its experiment's logs (idempotent)."""
        return self._store.append_logs(job.project_id, job.experiment_id, batch)

    def finish(
        self,
        job_id: int,
        agent_id: str,
        *,
        status: Status,
        exit_code: int | None = None,
        error: str | None = None,
    ) -> Job:
        """Report the job's end (ConflictError when the agent lost its lease)."""
        return self._store.finish_job(
            job_id, agent_id, status=status, exit_code=exit_code, error=error
        )
