"""Lifecycle contract: rename, notes, tags, status transitions, trash, archive, restore and
purge, through the Store interface (SqlStore with a blob store here; tests/server re-runs it
through HttpStore in-process and against real servers)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest

from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.lifecycle import include
from mltrail.core.query import parse_query
from mltrail.core.types import LogBatch, LogLine, Status
from mltrail.core.validation import chart
from mltrail.store.base import Store
from mltrail.store.blobs import open_blobs
from mltrail.store.sql import SqlStore
from support.factories import batch, ramp
from support.servers import unique_name

HASH = "ab" * 20


@pytest.fixture
def store(migrated_db_url: str, tmp_path) -> Iterator[Store]:
    sql = SqlStore.open(migrated_db_url, blobs=open_blobs(tmp_path / "blobs"))
    yield sql
    sql.close()


def _numbers(store: Store, project: int, state: str = "active") -> list[int]:
    page = store.search_experiments(project, include=include(state))
    return [e.experiment_id for e in page.items]


def _fill(store: Store, project: int, number: int, shared: bytes) -> None:
    """Give an experiment one of everything an experiment can own."""
    ref = store.get_experiment(project, number).ref
    store.append_points(project, number, batch(1, ramp("loss", 0, 50)))
    line = LogLine(1.0, "stdout", "INFO", f"line of {number}")
    store.append_logs(project, number, LogBatch("c", 1, (line,)))
    store.put_external_metrics([ref], {"ex_cost": 3})
    store.put_chart([ref], chart("roc", chart_x=[1, 2], chart_y=[3, 4]))
    store.link_weights_hash(project, number, HASH, iteration=10, epoch=1)
    store.put_iteration_metrics(HASH, {"ex_acc": 0.9})
    store.put_artifact(project, number, "shared.bin", io.BytesIO(shared))
    store.put_artifact(project, number, "own.txt", io.BytesIO(f"own {number}".encode()))


def test_rename_describe_notes_and_tags(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    store.create_experiment(project, tags=["a", "b"])
    changed = store.update_experiment(
        project, 1, display_name="resnet", description="baseline", notes="# Why\n\n- lr"
    )
    assert (changed.display_name, changed.description, changed.notes) == (
        "resnet",
        "baseline",
        "# Why\n\n- lr",
    )
    tagged = store.update_experiment(project, 1, add_tags=["c", "a"], remove_tags=["b"])
    assert tagged.tags == ("a", "c")
    assert store.search_experiments(project, parse_query("tags = 'c'")).total == 1
    assert store.search_experiments(project, parse_query("tags = 'b'")).total == 0
    assert store.get_experiment(project, 1).notes == "# Why\n\n- lr"


def test_a_finished_run_runs_again_only_by_resuming(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    store.create_experiment(project)
    store.update_experiment(project, 1, status=Status.DONE)
    with pytest.raises(ConflictError, match="resum"):
        store.update_experiment(project, 1, status=Status.RUNNING)
    assert store.get_experiment(project, 1).status is Status.DONE
    assert store.update_experiment(project, 1, status=Status.FAILED).status is Status.FAILED
    resumed = store.update_experiment(project, 1, status=Status.RUNNING, resume=True)
    assert resumed.status is Status.RUNNING and resumed.ended_at is None


def test_record_status_is_the_status_update_without_the_answer(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    store.create_experiment(project, tags=["kept"])
    assert store.record_status(project, 1, Status.DONE) is None  # type: ignore[func-returns-value]
    done = store.get_experiment(project, 1)
    assert done.status is Status.DONE and done.ended_at is not None
    assert done.tags == ("kept",)
    with pytest.raises(ConflictError, match="resum"):  # the same rules as update_experiment
        store.record_status(project, 1, Status.RUNNING)
    assert store.get_experiment(project, 1).status is Status.DONE
    with pytest.raises(NotFoundError):
        store.record_status(project, 2, Status.DONE)


def test_a_given_end_time_is_the_stored_end(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    store.create_experiment(project, started_at=1_000.0)
    with pytest.raises(ValidationError) as running:  # a running run has no end
        store.update_experiment(project, 1, ended_at=2_000.5)
    assert running.value.field == "ended_at"
    for bad in (float("nan"), float("inf"), "soon", True):
        with pytest.raises(ValidationError) as refused:
            store.update_experiment(project, 1, status=Status.DONE, ended_at=bad)
        assert refused.value.field == "ended_at"
    assert store.get_experiment(project, 1).status is Status.RUNNING  # refused: nothing moved
    ended = store.update_experiment(project, 1, status=Status.DONE, ended_at=2_000.5)
    assert ended.status is Status.DONE and ended.ended_at == 2_000.5
    assert store.get_experiment(project, 1).ended_at == 2_000.5
    assert store.search_experiments(project, parse_query("ended = 2000.5")).total == 1
    later = store.update_experiment(project, 1, ended_at=3_000.25)  # a finished run's end
    assert later.ended_at == 3_000.25 and later.status is Status.DONE
    with pytest.raises(ValidationError) as resumed:  # a resume clears the end: refused whole
        store.update_experiment(project, 1, status=Status.RUNNING, resume=True, ended_at=4.0)
    assert resumed.value.field == "ended_at"
    assert store.get_experiment(project, 1).status is Status.DONE


RESUMES = {
    "resume_experiment": lambda store, p, e: store.resume_experiment(p, e),  # POST .../resume
    "update_experiment(resume=True)": lambda store, p, e: store.update_experiment(
        p, e, status=Status.RUNNING, resume=True, display_name="again"
    ),  # PATCH {"resume": true}
}


def test_resume_experiment_resumes(store: Store) -> None:
    _check_one_resume(store, "resume_experiment")


def test_update_with_resume_is_the_same_resume(store: Store) -> None:
    _check_one_resume(store, "update_experiment(resume=True)")


def _check_one_resume(store: Store, entrance: str) -> None:
    project = store.create_project(unique_name("life")).id
    created = store.create_experiment(project)
    beat = store.record_heartbeat(project, 1).last_heartbeat
    assert store.request_stop(project, 1).stop_requested
    store.update_experiment(project, 1, status=Status.DONE)
    resumed = RESUMES[entrance](store, project, 1)
    assert resumed.status is Status.RUNNING and resumed.ended_at is None
    assert resumed.stop_requested is False
    assert resumed.started_at == created.started_at
    assert resumed.last_heartbeat is not None and resumed.last_heartbeat >= beat
    notes = [line.message for line in store.read_logs(project, 1)]
    assert notes[-1] == "run resumed (was done)"
    if entrance != "resume_experiment":
        assert resumed.display_name == "again"  # the other changes apply with the resume
    store.delete_experiment(project, 1)
    with pytest.raises(ConflictError, match="trash"):
        RESUMES[entrance](store, project, 1)
    store.create_experiment(project)  # a client that never heartbeats (MLflow's) is not judged
    store.update_experiment(project, 2, status=Status.FAILED)
    assert RESUMES[entrance](store, project, 2).last_heartbeat is None


def test_trash_archive_and_restore(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    for _ in range(4):
        store.create_experiment(project)
    trashed = store.delete_experiment(project, 2)
    assert trashed.state == "deleted" and trashed.deleted_at is not None
    assert store.archive_experiment(project, 3).state == "archived"
    assert _numbers(store, project) == [1, 4]
    assert store.list_experiments(project).total == 2
    assert _numbers(store, project, "deleted") == [2]
    assert _numbers(store, project, "archived") == [3]
    assert _numbers(store, project, "all") == [1, 2, 3, 4]
    assert store.get_experiment(project, 2).state == "deleted"  # still readable by number
    restored = store.restore_experiment(project, 2)
    assert restored.state == "active" and restored.deleted_at is None
    store.restore_experiment(project, 3)
    assert _numbers(store, project) == [1, 2, 3, 4]


def test_purge_leaves_nothing_behind_and_numbers_are_not_reused(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    shared = b"shared bytes " * 100
    for number in (1, 2):
        store.create_experiment(project)
        _fill(store, project, number, shared)
        store.update_experiment(project, number, status=Status.DONE)
    with pytest.raises(ConflictError):  # a live run is stopped before it is purged
        store.create_experiment(project)
        store.purge_experiment(project, 3)
    store.update_experiment(project, 3, status=Status.STOPPED)
    removed = store.purge_experiment(project, 1)
    assert removed == 1  # own.txt's blob; shared.bin's is still used by experiment 2
    for read in (
        lambda: store.get_experiment(project, 1),
        lambda: store.list_series(project, 1),
        lambda: store.read_logs(project, 1),
        lambda: store.list_charts(project, 1),
        lambda: store.list_artifacts(project, 1),
    ):
        with pytest.raises(NotFoundError):
            read()
    assert [link.experiment_id for link in store.find_weights_hash(HASH)] == [2]
    assert [a.experiment_id for a in store.find_checkpoints(HASH)] in ([], [2])
    assert _numbers(store, project, "all") == [2, 3]
    assert store.create_experiment(project).experiment_id == 4
    assert hashlib.sha256(shared).hexdigest() == store.list_artifacts(project, 2)[-1].sha256


def test_list_totals_stay_exact_through_trash_archive_and_purge(store: Store) -> None:
    project = store.create_project(unique_name("life")).id
    for _ in range(6):
        store.create_experiment(project, status=Status.DONE)
    store.delete_experiment(project, 2)
    store.delete_experiment(project, 3)
    store.archive_experiment(project, 4)
    store.purge_experiment(project, 3)
    store.purge_experiment(project, 5)  # purged straight from the active list
    totals = {
        state: store.search_experiments(project, include=include(state)).total
        for state in ("active", "archived", "deleted", "all")
    }
    assert totals == {"active": 2, "archived": 1, "deleted": 1, "all": 4}
    assert store.list_experiments(project, limit=1).total == 2
    other = store.create_project(unique_name("life")).id  # another project's counts apart
    store.create_experiment(other)
    assert store.list_experiments(other).total == 1
    assert store.list_experiments(project).total == 2
