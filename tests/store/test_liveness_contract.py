"""Liveness through the Store interface: heartbeats, the crashed status judged at read time,
stopping dead runs, agent leases. On SqlStore over SQLite and PostgreSQL with an injected clock
(so the rules are checked exactly, without waiting); tests/server/test_inprocess_liveness.py
runs the suite again through HttpStore and the real app. The real-process proofs (SIGKILLed
trainers, followers) are in tests/reliability/test_liveness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.core.errors import ConflictError, NotFoundError
from mltrail.core.liveness import ending_note, stop_grace
from mltrail.core.types import Status
from mltrail.store.base import Store
from mltrail.store.sql import SqlStore
from support.factories import T0

CRASH_AFTER = 60.0
GRACE = stop_grace(CRASH_AFTER)


class FakeClock:
    """The store's clock, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def judged_sql_store(migrated_db_url: str, clock: FakeClock) -> Iterator[SqlStore]:
    """A SqlStore on SQLite and PostgreSQL on ``clock``, judging runs after CRASH_AFTER s."""
    store = SqlStore.open(migrated_db_url, clock=clock, crash_after=CRASH_AFTER)
    yield store
    store.close()


@pytest.fixture
def store(judged_sql_store: SqlStore) -> Store:
    return judged_sql_store


@pytest.fixture
def run(store: Store):
    """A running experiment that heartbeated at T0."""
    exp = store.create_experiment(store.create_project("liveness").id)
    store.record_heartbeat(exp.project_id, exp.experiment_id)
    return exp


def _status(store: Store, exp) -> Status:
    return store.get_experiment(exp.project_id, exp.experiment_id).status


def test_a_heartbeat_answers_the_stored_status_the_time_and_crash_after(store, run, clock):
    clock.advance(5)
    live = store.record_heartbeat(run.project_id, run.experiment_id)
    assert (live.status, live.last_heartbeat, live.crash_after) == (
        Status.RUNNING,
        T0 + 5,
        CRASH_AFTER,
    )
    assert store.get_experiment(run.project_id, run.experiment_id).last_heartbeat == T0 + 5


def test_a_run_whose_heartbeats_stop_reads_crashed_everywhere(store, run, clock):
    p, e = run.project_id, run.experiment_id
    clock.advance(CRASH_AFTER - 1)
    assert _status(store, run) is Status.RUNNING
    assert not store.tail_logs(p, e).ended
    clock.advance(2)
    got = store.get_experiment(p, e)
    assert (got.status, got.last_heartbeat, got.ended_at) == (Status.CRASHED, T0, None)
    assert store.list_experiments(p).items[0].status is Status.CRASHED
    assert store.latest_experiment(p).status is Status.CRASHED
    tail = store.tail_logs(p, e, wait=5)  # a follower's long poll returns at once
    assert tail.ended and (tail.status, tail.last_heartbeat) == (Status.CRASHED, T0)
    assert ending_note(tail.status, tail.last_heartbeat).startswith(
        "experiment crashed: no heartbeat since "
    )


def test_a_run_that_never_heartbeated_is_never_judged(store, clock):
    exp = store.create_experiment(store.create_project("no-beats").id)
    clock.advance(100 * CRASH_AFTER)
    got = store.get_experiment(exp.project_id, exp.experiment_id)
    assert (got.status, got.last_heartbeat) == (Status.RUNNING, None)


def test_ended_runs_are_not_judged_and_a_crashed_run_can_still_end(store, run, clock):
    clock.advance(CRASH_AFTER + 1)
    assert _status(store, run) is Status.CRASHED
    # the SDK of a run that was only paused (a long GC, a suspended laptop) ends it normally
    ended = store.update_experiment(run.project_id, run.experiment_id, status=Status.DONE)
    assert ended.status is Status.DONE and ended.ended_at == clock.now
    clock.advance(10 * CRASH_AFTER)
    assert _status(store, run) is Status.DONE


def test_a_crashed_run_that_heartbeats_again_runs_again_and_its_logs_say_so(store, run, clock):
    p, e = run.project_id, run.experiment_id
    clock.advance(CRASH_AFTER + 30)
    assert _status(store, run) is Status.CRASHED
    live = store.record_heartbeat(p, e)
    assert live.status is Status.RUNNING and _status(store, run) is Status.RUNNING
    (note,) = store.read_logs(p, e)
    assert (note.stream, note.level, note.time) == ("mltrail", "WARNING", clock.now)
    assert f"heartbeat again after {CRASH_AFTER + 30:.0f} s" in note.message
    store.record_heartbeat(p, e)  # an ordinary heartbeat adds nothing
    assert len(store.read_logs(p, e)) == 1


def test_stopping_a_crashed_run_records_stopped_at_its_last_heartbeat(store, run, clock):
    p, e = run.project_id, run.experiment_id
    clock.advance(CRASH_AFTER + 1)
    stopped = store.request_stop(p, e)
    assert (stopped.status, stopped.ended_at, stopped.stop_requested) == (
        Status.STOPPED,
        T0,
        True,
    )
    assert store.tail_logs(p, e).ended
    assert store.record_heartbeat(p, e).status is Status.STOPPED  # a late beat changes nothing
    assert _status(store, run) is Status.STOPPED
    with pytest.raises(ConflictError):
        store.request_stop(p, e)


def test_stopping_a_run_that_never_heartbeated_records_stopped_at_once(store, clock):
    exp = store.create_experiment(store.create_project("silent").id)
    clock.advance(1)
    stopped = store.request_stop(exp.project_id, exp.experiment_id)
    assert (stopped.status, stopped.ended_at) == (Status.STOPPED, clock.now)
    assert store.tail_logs(exp.project_id, exp.experiment_id).ended


def test_stopping_a_run_silent_past_the_grace_records_stopped(store, run, clock):
    clock.advance(GRACE + 1)  # not crashed yet (CRASH_AFTER), but no living run is this quiet
    assert _status(store, run) is Status.RUNNING
    stopped = store.request_stop(run.project_id, run.experiment_id)
    assert (stopped.status, stopped.ended_at) == (Status.STOPPED, T0)


def test_a_heartbeating_run_is_asked_to_stop_and_reads_crashed_if_it_goes_silent(store, run, clock):
    p, e = run.project_id, run.experiment_id
    clock.advance(1)
    asked = store.request_stop(p, e)
    assert (asked.status, asked.stop_requested) == (Status.RUNNING, True)
    clock.advance(GRACE - 2)
    assert _status(store, run) is Status.RUNNING
    clock.advance(2)  # GRACE + 1 after its last heartbeat, still short of CRASH_AFTER
    assert GRACE + 1 < CRASH_AFTER
    tail = store.tail_logs(p, e)
    assert tail.ended and tail.status is Status.CRASHED


def test_a_heartbeat_for_an_unknown_experiment_is_not_found(store, run):
    with pytest.raises(NotFoundError):
        store.record_heartbeat(run.project_id, run.experiment_id + 1)


def test_an_agents_lease_keeps_its_jobs_experiment_running(store, clock):
    project_id = store.create_project("leased").id
    lease = 2 * CRASH_AFTER  # a lease longer than crash_after: the lease decides
    store.register_agent("agent-l", name="host", queues=["default"], lease_seconds=lease)
    job = store.submit_job(project_id, ["sleep", "1000"])
    claimed = store.claim_job("agent-l", ["default"], lease_seconds=lease)
    assert claimed is not None and claimed.job_id == job.job_id
    e = job.experiment_id
    clock.advance(CRASH_AFTER / 2)
    store.heartbeat("agent-l", job.job_id, lease_seconds=lease)  # the agent's heartbeat
    assert store.get_experiment(project_id, e).last_heartbeat == clock.now
    clock.advance(CRASH_AFTER + 1)  # past crash_after, inside the lease
    assert store.get_experiment(project_id, e).status is Status.RUNNING
    clock.advance(lease)  # the agent died: its lease ran out, nobody expired it yet
    assert store.get_experiment(project_id, e).status is Status.CRASHED
    store.expire_leases()
    assert store.get_experiment(project_id, e).status is Status.FAILED


def test_stopping_a_job_whose_agent_died_ends_it_stopped_for_good(store, clock):
    project_id = store.create_project("dead-agent").id
    store.register_agent("agent-d", name="host", queues=["default"], lease_seconds=5)
    job = store.submit_job(project_id, ["sleep", "1000"], max_retries=3)
    store.claim_job("agent-d", ["default"], lease_seconds=5)
    store.heartbeat("agent-d", job.job_id, lease_seconds=5)
    clock.advance(GRACE + 1)  # the agent died with its job; its lease ran out
    stopped = store.request_stop(project_id, job.experiment_id)
    assert (stopped.status, stopped.ended_at) == (Status.STOPPED, T0)
    store.expire_leases()  # not re-queued (retries are left) nor failed: it was stopped
    assert store.get_job(job.job_id).status is Status.STOPPED
    assert store.get_experiment(project_id, job.experiment_id).status is Status.STOPPED
