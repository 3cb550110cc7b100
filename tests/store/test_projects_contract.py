"""A project's lifecycle through the Store interface: rename, delete and restore, on SqlStore
over SQLite and PostgreSQL; tests/server/test_inprocess_store_contract.py runs it again through
HttpStore and the real app. Membership rules for them: tests/store/test_sql_store.py."""

from __future__ import annotations

import pytest

from mltrail.core.errors import ConflictError, ValidationError
from mltrail.store.base import Store


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


def test_an_active_project_is_found_before_a_deleted_one_of_the_same_name(store: Store) -> None:
    old = store.create_project("twin")
    store.delete_project(old.id)
    new = store.create_project("twin")
    assert store.find_project("twin").id == new.id
