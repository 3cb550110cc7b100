"""Offline runs and the store's identity through the Store interface, on SqlStore over SQLite
and PostgreSQL; tests/server/test_inprocess_store_contract.py runs it again through HttpStore
and the real app. The real-process proofs are in tests/reliability/test_offline_start.py."""

from __future__ import annotations

import re
import threading

import pytest

from mltrail.core.errors import ConflictError, ValidationError
from mltrail.store.base import Store


def test_the_store_reports_one_stable_identity(store: Store):
    first = store.store_identity()
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert store.store_identity() == first


def test_creating_an_offline_run_again_returns_the_same_experiment(store: Store):
    pid = store.create_project("offline").id
    store.create_experiment(pid, display_name="before")
    first = store.create_experiment(pid, display_name="offline-run", client_id="run-abc_1")
    again = store.create_experiment(pid, display_name="renamed?", client_id="run-abc_1")
    assert (again.experiment_id, again.display_name) == (first.experiment_id, "offline-run")
    assert first.experiment_id == 2  # numbered per project, no number lost to the repeat
    assert store.create_experiment(pid).experiment_id == 3
    assert [e.experiment_id for e in store.list_experiments(pid).items] == [1, 2, 3]


def test_an_offline_run_id_belongs_to_one_project(store: Store):
    pid = store.create_project("one").id
    store.create_experiment(pid, client_id="run-x")
    with pytest.raises(ConflictError, match="created in project"):
        store.create_experiment(store.create_project("two").id, client_id="run-x")
    with pytest.raises(ValidationError) as caught:
        store.create_experiment(pid, client_id="no spaces/or slashes")
    assert caught.value.field == "client_id"


def test_concurrent_creations_of_one_offline_run_make_one_experiment(store: Store):
    pid = store.create_project("race").id
    made: list[int] = []

    def create() -> None:
        made.append(store.create_experiment(pid, client_id="run-race").experiment_id)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1] * 6
    assert store.list_experiments(pid).total == 1
