"""The JobStore half of HttpStore: jobs and agents over the server's REST API.

Mixed into HttpStore, it uses its ``_request`` plumbing, so errors and retries behave alike.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from mltrail.core.types import Status
from mltrail.store import jobs_base as jb
from mltrail.store.jobs_base import Agent, HeartbeatReply, Job

CLAIM_TIMEOUT_MARGIN = 30.0


class HttpJobStore(jb.JobStore):
    """Needs ``self._request(method, path, body=, params=, repeatable=, timeout=)``."""

    _request: Any

    def submit_job(
        self,
        project_id: int,
        command: Sequence[str],
        *,
        queue: str = jb.DEFAULT_QUEUE,
        display_name: str | None = None,
        description: str = "",
        env: Mapping[str, str] | None = None,
        source: Mapping[str, Any] | None = None,
        snapshot: bytes | None = None,
        max_retries: int = 0,
    ) -> Job:
        # checked here too, so a bad argument fails before a large upload
        spec = jb.job_spec(command, queue=queue, env=env, source=source, max_retries=max_retries)
        data = jb.snapshot_bytes(snapshot)
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
        return jb.job_from_wire(
            self._request("POST", f"/projects/{int(project_id)}/jobs", body=body)
        )

    def get_job(self, job_id: int) -> Job:
        return jb.job_from_wire(self._request("GET", f"/jobs/{int(job_id)}", repeatable=True))

    def get_job_snapshot(self, job_id: int) -> bytes:
        answer = self._request("GET", f"/jobs/{int(job_id)}/snapshot", repeatable=True)
        return base64.b64decode(answer["snapshot_base64"])

    def list_jobs(
        self,
        *,
        project_id: int | None = None,
        queue: str | None = None,
        status: Status | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        params: dict[str, Any] = {"limit": limit}
        if project_id is not None:
            params["project_id"] = project_id
        if queue is not None:
            params["queue"] = queue
        if status is not None:
            params["status"] = Status(status).value
        return [
            jb.job_from_wire(j)
            for j in self._request("GET", "/jobs", params=params, repeatable=True)
        ]

    def register_agent(
        self, agent_id: str, *, name: str, queues: Sequence[str], lease_seconds: float
    ) -> Agent:
        body = {
            "agent_id": agent_id,
            "name": name,
            "queues": list(queues),
            "lease_seconds": lease_seconds,
        }
        return jb.agent_from_wire(self._request("POST", "/agents", body=body, repeatable=True))

    def deregister_agent(self, agent_id: str) -> None:
        self._request("DELETE", f"/agents/{quote(agent_id, safe='')}", repeatable=True)

    def list_agents(self) -> list[Agent]:
        return [jb.agent_from_wire(a) for a in self._request("GET", "/agents", repeatable=True)]

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
        wait = min(max(float(wait_seconds), 0.0), jb.MAX_WAIT_SECONDS)
        body = {
            "agent_id": agent_id,
            "queues": list(queues),
            "lease_seconds": lease_seconds,
            "wait_seconds": wait,
        }
        answer = self._request(
            "POST", "/jobs/claim", body=body, timeout=wait + CLAIM_TIMEOUT_MARGIN
        )
        return None if answer["job"] is None else jb.job_from_wire(answer["job"])

    def heartbeat(
        self, agent_id: str, job_id: int | None = None, *, lease_seconds: float
    ) -> HeartbeatReply:
        body = {"job_id": job_id, "lease_seconds": lease_seconds}
        answer = self._request(
            "POST", f"/agents/{quote(agent_id, safe='')}/heartbeat", body=body, repeatable=True
        )
        return HeartbeatReply(
            stop_requested=answer["stop_requested"], lease_lost=answer["lease_lost"]
        )

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
        return jb.job_from_wire(
            self._request("POST", f"/jobs/{int(job_id)}/finish", body=body, repeatable=True)
        )

    def expire_leases(self, now: float | None = None) -> list[Job]:
        return [jb.job_from_wire(j) for j in self._request("POST", "/jobs/expire-leases")]
