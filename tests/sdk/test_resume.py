"""Resume and rewind, embedded and through a real server, on SQLite and PostgreSQL: exact
point counts, status, appended logs, re-logged steps stored once, rewinds all or nothing."""

from __future__ import annotations

import numpy as np
import pytest

from mltrail.config import Settings
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Status
from mltrail.sdk.experiment import start
from mltrail.store.base import Store
from mltrail.store.sql import SqlStore
from support.stores import refuse_rows_of


@pytest.fixture
def store(mode_store: Store) -> Store:
    """The store a run writes to, in each mode on each database."""
    return mode_store


def _series(store: Store, exp, key: str = "loss", phase: str = "train"):
    return store.read_series(exp.project_id, exp.experiment_id, key, phase)


def _first_run(store: Store, settings: Settings, steps: int = 100):
    with start("resume-tests", "r", settings=settings, store=store) as exp:
        for i in range(steps):
            exp.log({"loss": float(i)})
        exp.log({"acc": 0.5}, phase="validation")
        print("first run")
    return exp


def test_resume_continues_the_counter_and_stores_relogged_steps_once(store, settings):
    first = _first_run(store, settings)
    ref = (first.project_id, first.experiment_id)
    with start(resume=ref, settings=settings, store=store) as exp:
        assert (exp.project_id, exp.experiment_id) == ref
        assert exp.iteration == 99  # the counter continues after the last stored iteration
        assert store.get_experiment(*ref).status == Status.RUNNING
        with pytest.warns(RuntimeWarning, match="already stored"):
            for i in range(90, 110):  # restarted from an older checkpoint: 90..99 stored
                exp.log({"loss": float(i)}, iteration=i)
        exp.log({"loss": 110.0})  # counts up from there
        exp.log({"acc": 0.75}, iteration=99, phase="validation")  # same step: not again
        print("second run")
    series = _series(store, exp)
    assert series.iterations.tolist() == list(range(111))
    assert series.values.tolist() == [float(i) for i in range(111)]
    acc = _series(store, exp, "acc", "validation")
    assert acc.values.tolist() == [0.5]
    record = store.get_experiment(*ref)
    assert record.status == Status.DONE and record.metrics["train/loss"] == 110.0
    messages = [line.message for line in store.read_logs(*ref)]
    assert messages.index("first run") < messages.index("second run")  # logs append
    assert any(m.startswith("run resumed (was done)") for m in messages)


def test_resume_from_the_environment_names_the_project(store, settings):
    first = _first_run(store, settings, steps=10)
    env = {
        "MLTRAIL_HOME": str(settings.home),
        "MLTRAIL_RESUME": f"resume-tests/{first.experiment_id}",
    }
    resumed = Settings.from_env(env).with_(strict=True)
    with start(settings=resumed, store=store) as exp:
        exp.log({"loss": 10.0})
    assert exp.experiment_id == first.experiment_id
    assert _series(store, exp).iterations.tolist() == list(range(11))


def test_resume_of_a_missing_trashed_or_bad_experiment_is_refused(store, settings):
    first = _first_run(store, settings, steps=1)
    store.delete_experiment(first.project_id, first.experiment_id)
    with pytest.raises(ConflictError, match="restore it before resuming"):
        start(resume=(first.project_id, first.experiment_id), settings=settings, store=store)
    store.restore_experiment(first.project_id, first.experiment_id)
    with start(resume=(first.project_id, first.experiment_id), settings=settings, store=store):
        pass
    with pytest.raises(NotFoundError):
        start(resume=(first.project_id, 99), settings=settings, store=store)
    with pytest.raises(ValidationError, match="resume"):
        start(resume=(first.project_id,), settings=settings, store=store)  # type: ignore[arg-type]


def test_rewind_replaces_every_point_after_the_iteration(store, settings):
    with start("resume-tests", settings=settings.with_(system_metrics=False), store=store) as exp:
        for i in range(200):
            exp.log({"loss": float(i), "lr": 0.1})
            if i % 50 == 49:
                exp.log({"acc": i / 200}, phase="validation")
        removed = exp.rewind(120)
        # 79 loss + 79 lr points (121..199) and the validation points at 149 and 199
        assert removed == 79 + 79 + 2
        assert exp.iteration == 120
        for _ in range(30):
            exp.log({"loss": -1.0})  # 121..150 again
    loss = _series(store, exp)
    assert loss.iterations.tolist() == list(range(151))
    assert loss.values.tolist() == [float(i) for i in range(121)] + [-1.0] * 30
    assert _series(store, exp, "lr").iterations.tolist() == list(range(121))
    assert _series(store, exp, "acc", "validation").iterations.tolist() == [49, 99]
    [summary] = [s for s in store.list_series(exp.project_id, exp.experiment_id) if s.key == "loss"]
    assert (summary.count, summary.max, summary.last, summary.last_iteration) == (
        151,
        120.0,
        -1.0,
        150,
    )


def test_rewind_rebuilds_rollups_of_a_long_series(store, settings):
    n = 120_000  # several chunks and every rollup level
    with start("resume-tests", settings=settings.with_(system_metrics=False), store=store) as exp:
        for i in range(n):
            exp.log({"x": float(i)})
        exp.flush()
        assert exp.rewind(69_999) == n - 70_000
    ref = (exp.project_id, exp.experiment_id)
    full = store.read_series(*ref, "x", "train")
    assert full.total == 70_000 and np.array_equal(full.values, np.arange(70_000.0))
    view = store.read_series(*ref, "x", "train", max_points=500)
    assert view.downsampled and view.values.max() == 69_999.0 and view.iterations[-1] == 69_999
    zoom = store.read_series(*ref, "x", "train", max_points=100, start=60_000, end=90_000)
    assert zoom.iterations.max() == 69_999


def test_rewind_before_the_first_point_empties_the_series(store, settings):
    with start("resume-tests", settings=settings.with_(system_metrics=False), store=store) as exp:
        exp.log({"loss": 1.0}, iteration=5)
        assert exp.rewind(0) == 1
        assert store.list_series(exp.project_id, exp.experiment_id) == []
        with pytest.raises(ValidationError, match="iteration"):
            exp.rewind(-1)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_failed_rewind_changes_nothing(request, database, settings):
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    sql = SqlStore.open(url)
    try:
        with start("atomic", settings=settings.with_(system_metrics=False), store=sql) as exp:
            for i in range(100):
                exp.log({"a": float(i), "b": float(i)})
        refuse_rows_of(sql, "metric_series", exp.project_id, exp.experiment_id)
        with pytest.raises(Exception):  # noqa: B017 - the trigger's error, whatever its class
            sql.rewind_points(exp.project_id, exp.experiment_id, 10)
        for key in ("a", "b"):
            assert _series(sql, exp, key).iterations.tolist() == list(range(100))
    finally:
        sql.close()
