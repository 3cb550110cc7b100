"""Writes by weights hash are one Store call: one HTTP request in server mode (counted in the
server's JSON access log) and all-or-nothing (a database trigger refuses one target's row; no
other target keeps a write), embedded and through a real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mltrail.api import Api
from mltrail.core.errors import MltrailError
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from support.servers import ServerProcess
from support.stores import refuse_rows_of

HASH = "cd" * 20


def _seed(store) -> tuple[int, list[int]]:
    """A project with two experiments holding HASH (and one without it)."""
    project = store.create_project("by-hash").id
    numbers = []
    for epoch in range(2):
        number = store.create_experiment(project).experiment_id
        store.link_weights_hash(project, number, HASH, iteration=10 * epoch, epoch=epoch)
        numbers.append(number)
    store.create_experiment(project)
    return project, numbers


def _requests_of(server: ServerProcess, call: Callable[[], object]) -> list[tuple[str, str]]:
    """The requests ``call`` sent to ``server``, from its access log."""
    before = len(server.access_log())
    call()
    return [(x["method"], x["path"]) for x in server.access_log()[before:]]


@pytest.fixture
def server_api(server: ServerProcess) -> Iterator[Api]:
    with Api(HttpStore(server.url, server.admin_token)) as api:
        yield api


def test_each_by_hash_write_is_one_request(server: ServerProcess, server_api: Api) -> None:
    project, numbers = _seed(server_api.store)
    calls = [
        (
            lambda: server_api.experiments.update_metrics('{"ex_audit": "ok"}', weights_hash=HASH),
            ("POST", "/api/v1/external-metrics"),
        ),
        (
            lambda: server_api.experiments.update_chart(
                "roc", weights_hash=HASH, chart_x="[1, 2]", chart_y="[0.5, 0.7]"
            ),
            ("POST", "/api/v1/charts"),
        ),
        (
            lambda: server_api.experiments.update_metrics_per_iteration(HASH, {"ex_acc": 0.9}),
            ("POST", f"/api/v1/weights/{HASH}/iteration-metrics"),
        ),
    ]
    for call, request in calls:
        assert _requests_of(server, call) == [request]
    for number in numbers:
        assert server_api.store.get_experiment(project, number).ex_metrics == {"ex_audit": "ok"}
        assert [c.spec.name for c in server_api.store.list_charts(project, number)] == ["roc"]
        assert len(server_api.store.read_iteration_metrics(project, number)) == 1


# --- all or nothing --------------------------------------------------------------------------------
def _assert_nothing_written(store, project: int, numbers: list[int]) -> None:
    for number in numbers:
        assert store.get_experiment(project, number).ex_metrics == {}
        assert store.list_charts(project, number) == []
        assert store.read_iteration_metrics(project, number) == []


def _writes(api: Api) -> list:
    return [
        lambda: api.experiments.update_metrics({"ex_audit": "ok"}, weights_hash=HASH),
        lambda: api.experiments.update_chart(
            "roc", weights_hash=HASH, chart_x=[1, 2], chart_y=[0.5, 0.7]
        ),
        lambda: api.experiments.update_metrics_per_iteration(HASH, {"ex_acc": 0.9}),
    ]


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_a_refused_target_leaves_no_partial_write(
    mode: str, migrated_db_url: str, server_factory, request: pytest.FixtureRequest
) -> None:
    sql = SqlStore.open(migrated_db_url)
    server = server_factory(migrated_db_url) if mode == "server" else None
    store = HttpStore(server.url, server.admin_token, retries=2, backoff=0.05) if server else sql
    try:
        project, numbers = _seed(store)
        for table in ("external_metrics", "charts", "iteration_metrics"):
            refuse_rows_of(sql, table, project, numbers[-1])  # the last target fails
        for write in _writes(Api(store)):
            with pytest.raises(Exception) as failure:
                write()
            if server:
                assert isinstance(failure.value, MltrailError)
            assert "refused by the test" in str(failure.value) or server
        _assert_nothing_written(store, project, numbers)
    finally:
        if server:
            store.close()
        sql.close()
