"""An append marks its experiment's last activity (the project's ``last_activity``) to the
second: a time set less than a second ago is kept, so a stream of small appends does not
rewrite the experiment's row (a WAL page) each time (store/sql/access.py). SQLite and
PostgreSQL, on an injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.sql import SqlStore
from support.factories import T0, batch, chunk


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(migrated_db_url: str, clock: FakeClock) -> Iterator[SqlStore]:
    store = SqlStore.open(migrated_db_url, clock=clock)
    yield store
    store.close()


def test_an_append_marks_the_last_activity_to_the_second(store: SqlStore, clock) -> None:
    project = store.create_project("activity")
    exp = store.create_experiment(project.id)
    step = iter(range(100))

    def append_at(now: float) -> float | None:
        clock.now = now
        i = next(step)
        store.append_points(project.id, exp.experiment_id, batch(i, chunk("loss", [i], [0.5])))
        return store.get_project(project.id).last_activity

    assert append_at(T0 + 10) == T0 + 10
    assert append_at(T0 + 10.4) == T0 + 10  # less than a second later: kept
    assert append_at(T0 + 10.99) == T0 + 10
    assert append_at(T0 + 11.2) == T0 + 11.2  # a second or more: moved
    assert append_at(T0 + 5) == T0 + 5  # a clock set back is followed, as before
