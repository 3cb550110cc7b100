"""Remote execution tried as an attacker would: two ordinary users, real agents, a real server.

Each test is one attack of issue 12: a job reading its agent's token, a project member making
another user's agent run their code, agent routes used on another user's agent, user names
enumerated through invitations. Both databases (``db_server``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_helpers import wait_for

from mltrail.core.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from mltrail.core.types import ExperimentRef, LogBatch, LogLine, Status
from mltrail.store.http import HttpStore
from support.servers import unique_name

AGENT_ARGS = ("--lease-timeout", "3", "--grace-period", "2", "--poll", "1")
REFUSED = (PermissionDeniedError, NotFoundError)


def _user(server: Any, prefix: str) -> tuple[str, str, HttpStore]:
    name = unique_name(prefix)
    token = server.make_token(name)
    return name, token, HttpStore(server.url, token)


def _messages(store: HttpStore, project: int, experiment: int) -> list[str]:
    return [line.message for line in store.read_logs(project, experiment, limit=50_000)]


def _line_after(store: HttpStore, project: int, experiment: int, prefix: str) -> str | None:
    for message in _messages(store, project, experiment):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return None


# the job prints its token and its whole environment, then waits for the test to let it end
TOKEN_JOB = """
import os, sys, time
print("token=" + os.environ["MLTRAIL_TOKEN"], flush=True)
print("environ=" + repr(sorted(os.environ.items())), flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
"""


def test_a_jobs_token_is_its_own_reaches_only_its_project_and_ends_with_the_job(
    db_server: Any, agent_factory: Any, tmp_path: Path
) -> None:
    _, alice_token, alice = _user(db_server, "alice")
    project = alice.create_project("jobs").id
    other_run = alice.create_experiment(project).experiment_id
    private = alice.create_project("private").id
    release = tmp_path / "release"
    job = alice.submit_job(project, [sys.executable, "-c", TOKEN_JOB, str(release)])
    # the worst case of the issue: an administrator's agent, started for Alice's project
    admin = HttpStore(db_server.url, db_server.admin_token)
    agent = agent_factory(db_server, *AGENT_ARGS, "--project", str(project))
    token = wait_for(lambda: _line_after(alice, project, job.experiment_id, "token="))
    environ = _line_after(alice, project, job.experiment_id, "environ=") or ""
    assert token.startswith("mltj_")
    for secret in (db_server.admin_token, alice_token):
        assert secret not in token and secret not in environ  # never the agent's, nor Alice's

    as_job = HttpStore(db_server.url, token)
    me = httpx.get(db_server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"].startswith("alice") and me.json()["is_admin"] is False
    # inside its project: reads, and writes to its own experiment
    assert [p.id for p in as_job.list_projects()] == [project]
    assert as_job.get_experiment(project, other_run).experiment_id == other_run
    line = LogLine(1.0, "stdout", "INFO", "from the job's token")
    as_job.append_logs(project, job.experiment_id, LogBatch("job-token", 1, (line,)))
    as_job.put_external_metrics([ExperimentRef(project, job.experiment_id)], {"ex_ok": 1})
    # nothing else: other experiments, other projects, project-level writes, agents, admin
    refused = {
        "write another run": lambda: as_job.put_external_metrics(
            [ExperimentRef(project, other_run)], {"ex_x": 1}
        ),
        "stop another run": lambda: as_job.request_stop(project, other_run),
        "new experiment": lambda: as_job.create_experiment(project),
        "submit a job": lambda: as_job.submit_job(project, ["true"]),
        "invite": lambda: as_job.add_project_member(project, "someone"),
        "other project": lambda: as_job.get_project(private),
        "other project's runs": lambda: as_job.list_experiments(private),
        "new project": lambda: as_job.create_project("mine"),
        "register an agent": lambda: as_job.register_agent(
            "job-agent", name="x", queues=["default"], lease_seconds=5
        ),
        "list agents": lambda: as_job.list_agents(),
        "collect garbage": lambda: as_job.collect_garbage(),
    }
    allowed = []
    for name, call in refused.items():
        try:
            call()
        except REFUSED:
            continue
        allowed.append(name)
    assert allowed == []
    assert alice.get_experiment(project, other_run).ex_metrics == {}

    release.touch()
    done = wait_for(lambda: (j := admin.get_job(job.job_id)).status.is_final and j)
    assert done.status is Status.DONE
    with pytest.raises(AuthenticationError):
        as_job.get_experiment(project, job.experiment_id)  # the token ended with the job
    assert db_server.admin_token not in agent.stderr.replace("MLTRAIL_TOKEN", "")
    admin.close()
    alice.close()
    as_job.close()


def test_bob_cannot_make_alices_agent_run_his_job(
    db_server: Any, agent_factory: Any, tmp_path: Path
) -> None:
    alice_name, alice_token, alice = _user(db_server, "alice")
    _, _, bob = _user(db_server, "bob")
    queue = unique_name("gpu")
    bobs = bob.create_project("bob's").id
    # Bob "adds" Alice: only an invitation until she accepts
    assert bob.add_project_member(bobs, alice_name) == "invited"
    evil = bob.submit_job(bobs, [sys.executable, "-c", "print('bob ran on alice')"], queue=queue)
    agent_factory(db_server, *AGENT_ARGS, "--queue", queue, token=alice_token)
    alices = alice.create_project("alice's").id
    own = alice.submit_job(alices, [sys.executable, "-c", "print('alice ran')"], queue=queue)
    wait_for(lambda: alice.get_job(own.job_id).status is Status.DONE)
    # even a member Alice agreed to be, Bob's job needs Alice to start her agent for it
    alice.accept_invitation(bobs)
    second = alice.submit_job(alices, [sys.executable, "-c", "print('again')"], queue=queue)
    wait_for(lambda: alice.get_job(second.job_id).status is Status.DONE)
    [job] = bob.list_jobs(project_id=bobs)
    assert (job.status, job.agent_id, job.attempts) == (Status.QUEUED, None, 0)
    assert job.queue_served is False  # Alice's agent would not run it: nothing to learn
    assert _messages(bob, bobs, evil.experiment_id) == []
    # Alice opts her agent into Bob's project: now it runs his job
    agent_factory(
        db_server, *AGENT_ARGS, "--queue", queue, "--project", str(bobs), token=alice_token
    )
    wait_for(lambda: bob.get_job(evil.job_id).status is Status.DONE)
    assert _messages(bob, bobs, evil.experiment_id) == ["bob ran on alice"]
    alice.close()
    bob.close()


def test_an_agent_can_be_started_only_for_projects_its_owner_belongs_to(db_server: Any) -> None:
    _, _, alice = _user(db_server, "alice")
    _, _, bob = _user(db_server, "bob")
    bobs = bob.create_project("bob's").id
    with pytest.raises(PermissionDeniedError) as err:
        alice.register_agent("a-1", name="a", queues=["q"], lease_seconds=5, projects=[bobs])
    assert err.value.field == "project"
    alice.close()
    bob.close()


def test_agent_routes_of_another_owner_answer_403(db_server: Any) -> None:
    _, _, alice = _user(db_server, "alice")
    _, bob_token, bob = _user(db_server, "bob")
    agent_id = unique_name("alices-agent")
    alice.register_agent(agent_id, name="alice's", queues=["q"], lease_seconds=30)
    project = alice.create_project("p").id
    job = alice.submit_job(project, ["true"], queue="q")
    claimed = alice.claim_job(agent_id, ["q"], lease_seconds=30)
    assert claimed is not None and claimed.job_id == job.job_id
    api = db_server.url + "/api/v1"
    headers = {"Authorization": f"Bearer {bob_token}"}
    answers = {
        "re-register": httpx.post(
            api + "/agents", json={"agent_id": agent_id, "name": "bob's"}, headers=headers
        ),
        "heartbeat": httpx.post(
            f"{api}/agents/{agent_id}/heartbeat", json={"job_id": job.job_id}, headers=headers
        ),
        "deregister": httpx.delete(f"{api}/agents/{agent_id}", headers=headers),
        "claim": httpx.post(api + "/jobs/claim", json={"agent_id": agent_id}, headers=headers),
    }
    assert {k: a.status_code for k, a in answers.items()} == dict.fromkeys(answers, 403)
    assert all(a.json()["error"]["field"] == "agent_id" for a in answers.values())
    # Bob sees neither the agent nor the queue names Alice's agents serve
    assert bob.list_agents() == []
    [mine] = alice.list_agents()
    assert (mine.agent_id, mine.name, mine.alive) == (agent_id, "alice's", True)
    alice.close()
    bob.close()


def test_inviting_tells_nothing_about_which_user_names_exist(db_server: Any) -> None:
    alice_name, _, alice = _user(db_server, "alice")
    _, bob_token, bob = _user(db_server, "bob")
    project = bob.create_project("b").id
    api = f"{db_server.url}/api/v1/projects/{project}/members"
    headers = {"Authorization": f"Bearer {bob_token}"}
    real = httpx.post(api, json={"user_name": alice_name}, headers=headers)
    ghost = httpx.post(api, json={"user_name": unique_name("ghost")}, headers=headers)
    assert (real.status_code, real.json()) == (ghost.status_code, ghost.json())
    assert real.json() == {"ok": True, "membership": "invited"}
    assert [i.project_id for i in alice.list_invitations()] == [project]
    alice.close()
    bob.close()
