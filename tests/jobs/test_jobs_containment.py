"""A job's whole process tree is contained: it ends with a stop, with the job and with its agent,
and a job printing at full speed does not grow its agent's memory. Real agents, a real server.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from jobs_helpers import (
    ESCAPING_JOB,
    final_job,
    process_alive,
    wait_for,
    wait_for_escaping_pids,
)

from mltrail.core.types import Status

AGENT_ARGS = ("--lease-timeout", "3", "--grace-period", "2", "--poll", "1")


def test_stop_ends_every_descendant_setsid_and_daemons_included(
    db_server: Any, agent_factory: Any, db_store: Any
) -> None:
    http_store = db_store
    project = http_store.create_project("contain").id
    job = http_store.submit_job(project, [sys.executable, "-c", ESCAPING_JOB])
    agent = agent_factory(db_server, *AGENT_ARGS)
    pids = wait_for_escaping_pids(http_store, job, agent, db_server)
    assert all(process_alive(p) for p in pids.values())
    http_store.request_stop(project, job.experiment_id)
    done = wait_for(lambda: final_job(http_store, job.job_id))
    assert done.status is Status.STOPPED
    alive = wait_for(lambda: not any(process_alive(p) for p in pids.values()) or None, timeout=15)
    assert alive  # every process of the job is gone


def test_a_sigkilled_agent_takes_its_job_down_and_the_retry_is_the_only_copy(
    db_server: Any, agent_factory: Any, db_store: Any
) -> None:
    http_store = db_store
    project = http_store.create_project("contain").id
    job = http_store.submit_job(project, [sys.executable, "-c", ESCAPING_JOB], max_retries=1)
    doomed = agent_factory(db_server, *AGENT_ARGS)
    first = wait_for_escaping_pids(http_store, job, doomed, db_server)
    os.kill(doomed.proc.pid, signal.SIGKILL)  # the agent alone: the job runs in its own session
    # 30 s: the shim notices its agent's death at its next poll, slower on a loaded machine
    gone = wait_for(lambda: not any(process_alive(p) for p in first.values()) or None, timeout=30)
    assert gone  # nothing of the first attempt outlives its agent
    retrying = agent_factory(db_server, *AGENT_ARGS)
    # every pid from the retry: the log holds both attempts, the retry's lines come last
    second = wait_for_escaping_pids(
        http_store, job, retrying, db_server, other_than=set(first.values())
    )
    assert http_store.get_job(job.job_id).attempts == 2
    assert not any(process_alive(p) for p in first.values())  # one copy runs: the retry
    http_store.request_stop(project, job.experiment_id)
    wait_for(lambda: final_job(http_store, job.job_id))
    wait_for(lambda: not any(process_alive(p) for p in second.values()) or None, timeout=30)


# 25 MB: before the log queue was bounded the agent grew by 136 MiB printing 50 MB and 57-61
# MiB printing 20 MB (about 2.6 MiB per MB: some 70 MiB for 25 MB, over the 40 MiB bound);
# bounded (8 MiB of lines queued), it grows by about 21 MiB whatever the flood's size
FLOOD_LINES = 250_000
FLOOD_JOB = f"""
import sys
line = "y" * 99 + "\\n"
out = sys.stdout
for i in range({FLOOD_LINES}):
    out.write(line)
out.flush()
"""
RSS_BOUND_MIB = 40


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


def test_an_output_flood_keeps_the_agent_under_its_memory_bound_and_loses_nothing(
    server: Any, agent_factory: Any, http_store: Any
) -> None:
    project = http_store.create_project("flood").id
    agent = agent_factory(server, *AGENT_ARGS)
    wait_for(lambda: http_store.list_agents())
    time.sleep(1)  # the agent has imported everything and registered: its settled size
    baseline = _rss_mib(agent.proc.pid)
    job = http_store.submit_job(project, [sys.executable, "-c", FLOOD_JOB])
    peak = baseline
    while final_job(http_store, job.job_id) is None:
        peak = max(peak, _rss_mib(agent.proc.pid))
        time.sleep(0.05)
    done = http_store.get_job(job.job_id)
    print(f"agent RSS {baseline:.0f} MiB at rest, peak {peak:.0f} MiB during a 25 MB flood")
    assert done.status is Status.DONE
    assert peak - baseline < RSS_BOUND_MIB
    total = http_store.get_experiment(project, job.experiment_id)
    lines = []
    while batch := http_store.read_logs(
        project, job.experiment_id, after_seq=lines[-1].seq if lines else 0, limit=50_000
    ):
        lines.extend(batch)
    assert total.experiment_id == job.experiment_id
    assert len([x for x in lines if x.stream == "stdout"]) == FLOOD_LINES
