"""A project's lifecycle through the Store interface: rename, delete and restore, on SqlStore
over SQLite and PostgreSQL; tests/server/test_inprocess_store_contract.py runs it again through
HttpStore and the real app. Membership rules for them: tests/store/test_sql_store.py."""

from __future__ import annotations

import pytest

from mltrail.core import validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import ExperimentRef, Status
from mltrail.store.base import Store
from support.factories import log_batch, ramp_batch


def test_a_project_is_renamed_and_described(store: Store) -> None:
    project = store.create_project("before", "old words")
    renamed = store.update_project(project.id, display_name="after")
    assert (renamed.display_name, renamed.description) == ("after", "old words")
    assert store.update_project(project.id, description="new words").description == "new words"
    assert store.find_project("after").id == project.id
    assert store.find_project("before") is None
    with pytest.raises(ValidationError) as bad:
        store.update_project(project.id, display_name="x" * 141)
    assert bad.value.field == "display_name"
    with pytest.raises(ValidationError):
        store.update_project(project.id)  # nothing to change
    assert store.get_project(project.id).display_name == "after"


def test_a_deleted_project_is_hidden_closed_to_new_runs_and_restorable(store: Store) -> None:
    kept = store.create_project("kept")
    gone = store.create_project("gone")
    store.create_experiment(gone.id, display_name="run")
    deleted = store.delete_project(gone.id)
    assert deleted.deleted_at is not None
    assert [p.id for p in store.list_projects()] == [kept.id]
    assert [p.id for p in store.list_projects("deleted")] == [gone.id]
    assert [p.id for p in store.list_projects("all")] == [kept.id, gone.id]
    # still readable, by id and by name; its experiments are kept as they were
    assert store.get_project(gone.id).deleted_at == deleted.deleted_at
    assert store.find_project("gone").id == gone.id
    assert store.get_experiment(gone.id, 1).display_name == "run"
    for refused in (
        lambda: store.create_experiment(gone.id),
        lambda: store.update_project(gone.id, display_name="renamed"),
        lambda: store.delete_project(gone.id),
    ):
        with pytest.raises(ConflictError) as err:
            refused()
        assert err.value.field == "project"
    restored = store.restore_project(gone.id)
    assert restored.deleted_at is None
    assert restored.experiment_count == 1
    assert store.create_experiment(gone.id).experiment_id == 2
    with pytest.raises(ConflictError):
        store.restore_project(gone.id)
    with pytest.raises(ValidationError) as bad:
        store.list_projects("archived")
    assert bad.value.field == "include"


def test_the_runs_of_a_deleted_project_take_no_writes_until_it_is_restored(store: Store) -> None:
    """As MLflow refuses log_metric / set_tag to the runs of a deleted experiment: every write
    to an experiment of a deleted project is a ConflictError naming the project; reads, a stop
    request and heartbeats (liveness, not data) still work, and a restore opens it again."""
    gone = store.create_project("gone")
    run = store.create_experiment(gone.id, display_name="run")
    p, e = gone.id, run.experiment_id
    store.append_points(p, e, ramp_batch(1))
    store.delete_project(p)
    ref = (ExperimentRef(p, e),)
    chart = validation.chart("c", chart_x=[1], chart_y=[1.0])
    writes = {
        "append_points": lambda: store.append_points(p, e, ramp_batch(2, start=5)),
        "append_logs": lambda: store.append_logs(p, e, log_batch("c", 1, "hello")),
        "update_experiment": lambda: store.update_experiment(p, e, tags=["t"]),
        "finish": lambda: store.update_experiment(p, e, status=Status.DONE),
        "put_external_metrics": lambda: store.put_external_metrics(ref, {"ex_a": 1}),
        "put_chart": lambda: store.put_chart(ref, chart),
        "link_weights_hash": lambda: store.link_weights_hash(
            p, e, "a" * 40, iteration=1, epoch=None
        ),
        "rewind_points": lambda: store.rewind_points(p, e, 0),
    }
    for name, write in writes.items():
        with pytest.raises(ConflictError) as err:
            write()
        assert err.value.field == "project", name
        assert f"project {p} is deleted" in err.value.message, name
    assert [s.count for s in store.list_series(p, e)] == [5]  # nothing was half-written
    assert store.get_experiment(p, e).tags == ()
    store.record_heartbeat(p, e)
    store.request_stop(p, e)
    store.restore_project(p)
    assert store.append_points(p, e, ramp_batch(2, start=5)) == 5
    assert store.update_experiment(p, e, tags=["t"]).tags == ("t",)


def test_a_write_by_weights_hash_skips_the_experiments_of_deleted_projects(store: Store) -> None:
    """A hash names experiments in many projects: a deleted one's take no write by it (as by
    their ids) while the others' do; a hash held only there is not found for writing."""
    kept, gone = store.create_project("kept"), store.create_project("gone")
    h, only_gone = "b" * 40, "c" * 40
    for project in (kept, gone):
        e = store.create_experiment(project.id).experiment_id
        store.link_weights_hash(project.id, e, h, iteration=1, epoch=None)
    store.link_weights_hash(gone.id, 1, only_gone, iteration=2, epoch=None)
    store.delete_project(gone.id)
    target = (validation.weights_hash(h),)
    assert store.put_external_metrics(target, {"ex_a": 1}) == [ExperimentRef(kept.id, 1)]
    assert store.put_chart(target, validation.chart("c", chart_x=[1], chart_y=[1.0])) == [
        ExperimentRef(kept.id, 1)
    ]
    assert store.put_iteration_metrics(h, {"ex_b": 2}) == 1
    for write in (
        lambda: store.put_external_metrics((validation.weights_hash(only_gone),), {"ex_a": 1}),
        lambda: store.put_iteration_metrics(only_gone, {"ex_b": 2}),
    ):
        with pytest.raises(NotFoundError) as err:
            write()
        assert err.value.field == "weights_hash" and "deleted" in err.value.message
    gone_run = store.get_experiment(gone.id, 1)
    assert "ex_a" not in gone_run.ex_metrics
    assert store.read_iteration_metrics(gone.id, 1) == []
    assert store.list_charts(gone.id, 1) == []
    assert len(store.find_weights_hash(h)) == 2  # reads still see both


def test_an_active_project_is_found_before_a_deleted_one_of_the_same_name(store: Store) -> None:
    old = store.create_project("twin")
    store.delete_project(old.id)
    new = store.create_project("twin")
    assert store.find_project("twin").id == new.id


def test_every_project_of_a_name_is_found_active_ones_first(store: Store) -> None:
    # the name lookups that refuse a shared name listed every project to find the namesakes
    gone = store.create_project("namesake")
    store.delete_project(gone.id)
    first, second = store.create_project("namesake"), store.create_project("namesake")
    store.create_project("namesake-not")
    assert [p.id for p in store.find_projects("namesake")] == [first.id, second.id, gone.id]
    assert store.find_projects("namesake")[2].deleted_at is not None
    assert store.find_projects("nobody's") == []
    assert store.find_projects("namesake\x00") == []


def test_a_unique_name_is_refused_when_another_project_has_it(store: Store) -> None:
    taken = store.create_project("taken-name")
    other = store.create_project("other-name")
    with pytest.raises(ConflictError) as err:
        store.create_project("taken-name", unique_name=True)
    assert err.value.field == "display_name"
    with pytest.raises(ConflictError) as err:
        store.update_project(other.id, display_name="taken-name", unique_name=True)
    assert err.value.field == "display_name"
    assert store.get_project(other.id).display_name == "other-name"
    store.delete_project(taken.id)  # a deleted project keeps its name
    with pytest.raises(ConflictError):
        store.create_project("taken-name", unique_name=True)
    # its own name, a free one, and without the check a taken one (names may repeat)
    assert store.update_project(other.id, "other-name", unique_name=True).id == other.id
    assert store.create_project("free-name", unique_name=True).display_name == "free-name"
    assert store.create_project("taken-name").id not in (taken.id, other.id)


def test_a_name_no_project_can_have_finds_none(store: Store) -> None:
    """MLflow's get-by-name passes any text: one with NUL was a 400 'a number is out of range'
    naming the body on PostgreSQL (its text cannot hold NUL), instead of 'no such experiment'."""
    store.create_project("plain")
    for name in ("plain\x00", "\x00", "plain\t", "p" * 1000):
        assert store.find_project(name) is None, repr(name)
