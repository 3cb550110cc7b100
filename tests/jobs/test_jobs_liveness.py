"""An agent-run experiment does not read crashed while its agent is alive: a real server
judging runs after 2 s, a real agent on a 30 s lease (it heartbeats every 10 s), a job that runs
5 s (two and a half crash windows) without the SDK (no heartbeat of its own). The lease keeps
it running; it ends done."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jobs_helpers import wait_for

from mltrail.core.types import Status

CRASH_AFTER = "2"


@pytest.fixture
def judging_server(server_factory: Any, migrated_sqlite_url: str) -> Any:
    return server_factory(migrated_sqlite_url, env={"MLTRAIL_CRASH_AFTER": CRASH_AFTER})


@pytest.fixture
def store(judging_server: Any) -> Iterator[Any]:
    from mltrail.store.http import HttpStore

    with HttpStore(judging_server.url, judging_server.admin_token) as http_store:
        yield http_store


def test_a_live_agents_job_never_reads_crashed(judging_server, agent_factory, store) -> None:
    project = store.create_project("leased").id
    job = store.submit_job(project, [sys.executable, "-c", "import time; time.sleep(5)"])
    agent_factory(judging_server, "--lease-timeout", "30", "--poll", "1")
    wait_for(lambda: store.get_job(job.job_id).status is not Status.QUEUED, timeout=60)
    seen: list[Status] = []
    while not store.get_job(job.job_id).status.is_final:
        seen.append(store.get_experiment(project, job.experiment_id).status)
        time.sleep(0.3)
    final = store.get_experiment(project, job.experiment_id)
    print(f"\n{len(seen)} reads while the job ran: {sorted({s.value for s in seen})}")
    assert Status.CRASHED not in seen and Status.RUNNING in seen
    assert final.status is Status.DONE and final.last_heartbeat is not None
