"""The jobs half of HttpStore: submission, claims (long-polled), reports."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.core import codec
from mltrail.core import jobs as jobs_core
from mltrail.core.jobs import DEFAULT_QUEUE, MAX_WAIT_SECONDS, Job
from mltrail.core.types import Status
from mltrail.store.http.transport import HttpNoun
from mltrail.store.jobs import JobStore

CLAIM_TIMEOUT_MARGIN = 30.0


class HttpJobs(HttpNoun, JobStore):
    """The jobs half of HttpStore: each :class:`JobStore` method is one request."""

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
        # checked here too, so a bad argument fails before a large upload
        spec = jobs_core.job_spec(
            command, queue=queue, env=env, source=source, max_retries=max_retries
        )
        data = jobs_core.snapshot_bytes(snapshot)
        body = {
            "command": list(spec.command),
            "queue": spec.queue,
            "display_name": display_name,
            "description": description,
            "env": spec.env,
            "source": spec.source,
            "snapshot_base64": None if data is None else base64.b64encode(data).decode("ascii"),
            "max_retries": spec.max_retries,
        }
        path = f"/projects/{int(project_id)}/jobs"
        return codec.job_from_wire(self._http.call("POST", path, body=body))

    def get_job(self, job_id: int) -> Job:
        return codec.job_from_wire(self._get(f"/jobs/{int(job_id)}"))

    def get_job_snapshot(self, job_id: int) -> bytes:
        answer = self._get(f"/jobs/{int(job_id)}/snapshot")
        return base64.b64decode(answer["snapshot_base64"])

    def list_jobs(
        self,
        *,
        project_id: int | None = None,
        queue: str | None = None,
        status: Status | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        found = self._get(
            "/jobs",
            limit=limit,
            project_id=project_id,
            queue=queue,
            status=None if status is None else Status(status).value,
        )
        return [codec.job_from_wire(j) for j in found]

    def claim_job(
        self,
        agent_id: str,
        queues: Sequence[str],
        *,
        lease_seconds: float,
        wait_seconds: float = 0.0,
    ) -> Job | None:
        # not repeatable: a claim whose answer was lost must not be sent twice; the lease of a
        # job claimed that way expires and the job is re-queued or failed as configured
        wait = min(max(float(wait_seconds), 0.0), MAX_WAIT_SECONDS)
        body = {
            "agent_id": agent_id,
            "queues": list(queues),
            "lease_seconds": lease_seconds,
            "wait_seconds": wait,
        }
        timeout = wait + CLAIM_TIMEOUT_MARGIN
        answer = self._http.call("POST", "/jobs/claim", body=body, timeout=timeout)
        return None if answer["job"] is None else codec.job_from_wire(answer["job"])

    def hand_back_job(
        self, job_id: int, agent_id: str, *, attempt: int, lease_expires_at: float
    ) -> bool:
        body = {"agent_id": agent_id, "attempt": attempt, "lease_expires_at": lease_expires_at}
        path = f"/jobs/{int(job_id)}/hand-back"
        # not repeatable: a second hand-back of the same claim answers False, so a retry after a
        # lost answer would report a job handed back as not handed back; the caller reads the job
        return bool(self._http.call("POST", path, body=body)["handed_back"])

    def finish_job(
        self,
        job_id: int,
        agent_id: str,
        *,
        status: Status,
        exit_code: int | None = None,
        error: str | None = None,
    ) -> Job:
        body = {
            "agent_id": agent_id,
            "status": Status(status).value,
            "exit_code": exit_code,
            "error": error,
        }
        path = f"/jobs/{int(job_id)}/finish"
        return codec.job_from_wire(self._http.call("POST", path, body=body, repeatable=True))

    def expire_leases(self, now: float | None = None) -> list[Job]:
        return [codec.job_from_wire(j) for j in self._http.call("POST", "/jobs/expire-leases")]
