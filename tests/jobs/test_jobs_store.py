"""The JobStore contract: claims, leases, retries, stops. On SqlStore over SQLite and PostgreSQL
here; tests/server/test_http_jobs_contract.py runs it through HttpStore against a real server."""

from __future__ import annotations

import threading
import uuid

import pytest

from mltrail.core.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Status
from mltrail.store.sql import SqlStore


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    """SqlStore on SQLite and PostgreSQL; tests/server/test_http_jobs_contract.py runs this
    suite again through HttpStore against a real server."""
    return sql_store


@pytest.fixture
def project_id(store: SqlStore) -> int:
    return store.create_project("jobs").id


_RUN = {"id": ""}


@pytest.fixture(autouse=True)
def fresh_agent_ids() -> None:
    """Agent ids belong to their owner: each test (a new user on a shared server) uses its own."""
    _RUN["id"] = uuid.uuid4().hex[:8]


def _aid(name: str) -> str:
    return f"{name}-{_RUN['id']}"


def _agent(
    store: SqlStore, agent_id: str = "agent-1", queues: tuple[str, ...] = ("default",)
) -> str:
    store.register_agent(_aid(agent_id), name="host", queues=queues, lease_seconds=5)
    return _aid(agent_id)


def test_submit_creates_a_queued_experiment_and_job(store: SqlStore, project_id: int) -> None:
    job = store.submit_job(
        project_id, ["python", "-c", "print(1)"], queue="gpu", env={"A": "1"}, display_name="first"
    )
    experiment = store.get_experiment(project_id, job.experiment_id)
    assert experiment.status is Status.QUEUED and experiment.display_name == "first"
    assert (job.status, job.queue, job.command, job.env) == (
        Status.QUEUED,
        "gpu",
        ("python", "-c", "print(1)"),
        {"A": "1"},
    )
    assert store.get_job(job.job_id) == job


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"command": []}, "command"),
        ({"command": "echo hi"}, "command"),
        ({"command": ["echo"], "queue": "no spaces"}, "queue"),
        ({"command": ["echo"], "env": {"MLTRAIL_URL": "x"}}, "env"),
        ({"command": ["echo"], "env": {"1BAD": "x"}}, "env"),
        ({"command": ["echo"], "max_retries": -1}, "max_retries"),
        (
            {"command": ["echo"], "source": {"kind": "git", "url": "u", "commit": "zz"}},
            "source.commit",
        ),
    ],
)
def test_bad_submissions_name_the_field_and_write_nothing(
    store: SqlStore, project_id: int, kwargs: dict, field: str
) -> None:
    kwargs = dict(kwargs)
    command = kwargs.pop("command")
    with pytest.raises(ValidationError) as info:
        store.submit_job(project_id, command, **kwargs)
    assert info.value.field == field
    assert store.list_jobs() == [] and store.list_experiments(project_id).total == 0


def test_submit_to_a_missing_project_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.submit_job(999, ["echo"])
    assert info.value.field == "project"


def test_claim_runs_the_experiment_and_finish_ends_it(store: SqlStore, project_id: int) -> None:
    job = store.submit_job(project_id, ["echo"])
    agent = _agent(store)
    claimed = store.claim_job(agent, ["default"], lease_seconds=5)
    assert claimed is not None and claimed.job_id == job.job_id and claimed.attempts == 1
    assert store.get_experiment(project_id, job.experiment_id).status is Status.RUNNING
    assert store.claim_job(agent, ["default"], lease_seconds=5) is None
    done = store.finish_job(
        job.job_id, agent, status=Status.FAILED, exit_code=3, error="exited with code 3"
    )
    assert (done.status, done.exit_code) == (Status.FAILED, 3)
    assert store.get_experiment(project_id, job.experiment_id).status is Status.FAILED
    # a retried report is accepted, another agent's is refused
    assert (
        store.finish_job(job.job_id, agent, status=Status.FAILED, exit_code=3).status
        is Status.FAILED
    )
    with pytest.raises(ConflictError):
        store.finish_job(job.job_id, _agent(store, "agent-2"), status=Status.DONE, exit_code=0)


def test_claims_follow_queues_and_submission_order(store: SqlStore, project_id: int) -> None:
    a = store.submit_job(project_id, ["a"], queue="cpu")
    b = store.submit_job(project_id, ["b"], queue="gpu")
    c = store.submit_job(project_id, ["c"], queue="cpu")
    agent = _agent(store, queues=("cpu",))
    got = [store.claim_job(agent, ["cpu"], lease_seconds=5) for _ in range(3)]
    assert [j.job_id if j else None for j in got] == [a.job_id, c.job_id, None]
    assert store.get_job(b.job_id).status is Status.QUEUED


def test_concurrent_claims_never_hand_out_a_job_twice(store: SqlStore, project_id: int) -> None:
    submitted = {store.submit_job(project_id, ["echo", str(i)]).job_id for i in range(40)}
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(agent: str) -> None:
        while (job := store.claim_job(agent, ["default"], lease_seconds=30)) is not None:
            with lock:
                claimed.append(job.job_id)

    agents = [_agent(store, f"agent-{i}") for i in range(6)]
    threads = [threading.Thread(target=claim_all, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(claimed) == sorted(submitted)
    assert all(j.attempts == 1 for j in store.list_jobs())


def test_expired_lease_requeues_while_retries_allow_then_fails(
    store: SqlStore, project_id: int
) -> None:
    if not isinstance(store, SqlStore):
        pytest.skip("the server keeps its own clock: expire_leases(now=...) is SqlStore's")
    job = store.submit_job(project_id, ["sleep", "100"], max_retries=1)
    agent = _agent(store)
    first = store.claim_job(agent, ["default"], lease_seconds=5)
    assert first is not None and first.lease_expires_at is not None
    assert store.expire_leases(now=first.lease_expires_at - 1) == []
    [requeued] = store.expire_leases(now=first.lease_expires_at + 1)
    assert requeued.status is Status.QUEUED and "lease expired" in (requeued.error or "")
    assert store.get_experiment(project_id, job.experiment_id).status is Status.QUEUED
    assert store.heartbeat(agent, job.job_id, lease_seconds=5).lease_lost
    second = store.claim_job(agent, ["default"], lease_seconds=5)
    assert second is not None and second.attempts == 2
    [failed] = store.expire_leases(now=second.lease_expires_at + 1)
    assert failed.status is Status.FAILED
    assert store.get_experiment(project_id, job.experiment_id).status is Status.FAILED
    notes = [x.message for x in store.read_logs(project_id, job.experiment_id)]
    assert len(notes) == 2 and all(f"lease expired: agent {agent}" in n for n in notes)


def test_heartbeat_extends_the_lease_and_reports_stop(store: SqlStore, project_id: int) -> None:
    job = store.submit_job(project_id, ["sleep", "100"])
    agent = _agent(store)
    claimed = store.claim_job(agent, ["default"], lease_seconds=5)
    assert claimed is not None
    reply = store.heartbeat(agent, job.job_id, lease_seconds=60)
    assert not reply.stop_requested and not reply.lease_lost
    assert store.get_job(job.job_id).lease_expires_at > claimed.lease_expires_at + 50
    store.request_stop(project_id, job.experiment_id)
    assert store.heartbeat(agent, job.job_id, lease_seconds=60).stop_requested


def test_a_job_stopped_while_queued_never_runs(store: SqlStore, project_id: int) -> None:
    job = store.submit_job(project_id, ["echo"])
    store.request_stop(project_id, job.experiment_id)
    assert store.claim_job(_agent(store), ["default"], lease_seconds=5) is None
    assert store.get_job(job.job_id).status is Status.STOPPED
    assert store.get_experiment(project_id, job.experiment_id).status is Status.STOPPED
    with pytest.raises(ConflictError):
        store.request_stop(project_id, job.experiment_id)


def test_a_job_of_a_deleted_project_waits_until_it_is_restored(
    store: SqlStore, project_id: int
) -> None:
    """Its run would take no write (each a 409 naming the project): it stays queued, handed to
    no agent, and a restore hands it out as it was."""
    job = store.submit_job(project_id, ["echo"])
    store.delete_project(project_id)
    agent = _agent(store)
    assert store.claim_job(agent, ["default"], lease_seconds=5) is None
    assert store.get_job(job.job_id).status is Status.QUEUED
    store.restore_project(project_id)
    claimed = store.claim_job(agent, ["default"], lease_seconds=5)
    assert claimed is not None and claimed.job_id == job.job_id


def test_list_jobs_says_whether_a_live_agent_serves_the_queue(
    store: SqlStore, project_id: int
) -> None:
    store.submit_job(project_id, ["echo"], queue="nobody")
    store.submit_job(project_id, ["echo"], queue="served")
    _agent(store, queues=("served",))
    served = {j.queue: j.queue_served for j in store.list_jobs()}
    assert served == {"nobody": False, "served": True}
    store.deregister_agent(_aid("agent-1"))
    assert [a.alive for a in store.list_agents()] == [False]
    assert not any(j.queue_served for j in store.list_jobs())


def test_snapshot_round_trips_and_is_bounded(store: SqlStore, project_id: int) -> None:
    job = store.submit_job(project_id, ["ls"], source={"kind": "tarball"}, snapshot=b"\x1f\x8bdata")
    assert store.get_job_snapshot(job.job_id) == b"\x1f\x8bdata"
    assert job.source["kind"] == "tarball" and job.source["size"] == 6
    other = store.submit_job(project_id, ["ls"])
    with pytest.raises(NotFoundError):
        store.get_job_snapshot(other.job_id)


def test_unregistered_agent_cannot_claim(store: SqlStore, project_id: int) -> None:
    with pytest.raises(NotFoundError) as info:
        store.claim_job("ghost", ["default"], lease_seconds=5)
    assert info.value.field == "agent_id"


def test_finish_keeps_an_error_message_with_nul_characters(
    store: SqlStore, project_id: int
) -> None:
    job = store.submit_job(project_id, ["echo"])
    agent = _agent(store)
    store.claim_job(agent, ["default"], lease_seconds=5)
    done = store.finish_job(job.job_id, agent, status=Status.FAILED, error="bad\x00byte")
    assert done.error == "bad\ufffdbyte"


def test_a_claim_mints_the_jobs_own_token_shown_nowhere_else(
    store: SqlStore, project_id: int
) -> None:
    job = store.submit_job(project_id, ["true"])
    claimed = store.claim_job(_agent(store), ["default"], lease_seconds=5)
    assert claimed is not None and claimed.job_id == job.job_id
    assert claimed.token is not None and claimed.token.startswith("mltj_")
    assert store.get_job(job.job_id).token is None
    assert [j.token for j in store.list_jobs()] == [None]


def test_a_claim_handed_back_leaves_the_job_queued_as_before(
    store: SqlStore, project_id: int
) -> None:
    """A claim whose answer could not be delivered: the job goes back to its queue with no
    attempt spent, its token revoked, and the next claim gets it as the first."""
    job = store.submit_job(project_id, ["echo"])
    agent = _agent(store)
    claimed = store.claim_job(agent, ["default"], lease_seconds=30)
    assert claimed is not None and claimed.lease_expires_at is not None
    as_claimed = {"attempt": claimed.attempts, "lease_expires_at": claimed.lease_expires_at}
    # another agent of the same owner hands back nothing
    assert not store.hand_back_job(job.job_id, _agent(store, "agent-2"), **as_claimed)
    assert store.hand_back_job(job.job_id, agent, **as_claimed)
    back = store.get_job(job.job_id)
    assert (back.status, back.attempts, back.agent_id) == (Status.QUEUED, 0, None)
    assert (back.claimed_at, back.lease_expires_at) == (None, None)
    assert store.get_experiment(project_id, job.experiment_id).status is Status.QUEUED
    assert store.heartbeat(agent, job.job_id, lease_seconds=30).lease_lost
    assert not store.hand_back_job(job.job_id, agent, **as_claimed)  # done already: no change
    again = store.claim_job(agent, ["default"], lease_seconds=30)
    assert again is not None and (again.job_id, again.attempts) == (job.job_id, 1)
    assert again.token != claimed.token
    if isinstance(store, SqlStore):
        with pytest.raises(AuthenticationError):
            store.auth.authenticate_request(claimed.token)


def test_a_job_that_moved_on_since_its_claim_is_not_handed_back(
    store: SqlStore, project_id: int
) -> None:
    job = store.submit_job(project_id, ["echo"])
    agent = _agent(store)
    claimed = store.claim_job(agent, ["default"], lease_seconds=30)
    assert claimed is not None and claimed.lease_expires_at is not None
    as_claimed = {"attempt": claimed.attempts, "lease_expires_at": claimed.lease_expires_at}
    store.heartbeat(agent, job.job_id, lease_seconds=60)  # the agent runs it: a new lease
    assert not store.hand_back_job(job.job_id, agent, **as_claimed)
    assert store.get_job(job.job_id).status is Status.RUNNING
    store.finish_job(job.job_id, agent, status=Status.DONE, exit_code=0)
    lease = store.get_job(job.job_id).lease_expires_at
    assert not store.hand_back_job(job.job_id, agent, attempt=1, lease_expires_at=lease or 0.0)
    assert store.get_job(job.job_id).status is Status.DONE
    with pytest.raises(NotFoundError):
        store.hand_back_job(job.job_id + 10_000, agent, **as_claimed)
