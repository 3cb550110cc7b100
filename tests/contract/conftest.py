"""The contract test modules run in every mode: embedded SqlStore and HttpStore -> real server,
each on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from mltrail.api import Api
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.store.base import Store

MODES = ["embedded-sqlite", "embedded-postgres", "server-sqlite", "server-postgres"]


@dataclass
class Mode:
    """How the API under test reaches its data, and how to make more users in it."""

    name: str
    api: Api
    new_user_api: Callable[[str], Api] | None  # server modes: an Api for a fresh non-admin user


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Iterator[Mode]:
    kind, backend = request.param.split("-")
    db_url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    if kind == "embedded":
        from mltrail.store.sql import SqlStore

        api = Api(SqlStore.open(db_url))
        yield Mode(request.param, api, None)
        api.close()
        return
    server = request.getfixturevalue("server_factory")(db_url)
    from mltrail.store.http import HttpStore

    opened: list[Api] = []

    def new_user_api(name: str) -> Api:
        opened.append(Api(HttpStore(server.url, server.make_token(name))))
        return opened[-1]

    api = Api(HttpStore(server.url, server.admin_token))
    yield Mode(request.param, api, new_user_api)
    for a in [api, *opened]:
        a.close()


@pytest.fixture
def api(mode: Mode) -> Api:
    return mode.api


def seed_experiment(
    store: Store, project_id: int, *, n: int = 10, hparams: dict | None = None, status: str = "done"
) -> int:
    """An experiment with a train loss and a validation accuracy series; returns its id."""
    from mltrail.core.types import Status

    exp = store.create_experiment(
        project_id, display_name=f"run-{time.time_ns()}", hyperparameters=hparams or {"lr": 0.1}
    )
    iterations = np.arange(n, dtype=np.int64)
    epochs = iterations // 5
    now = np.full(n, time.time())
    chunks = (
        SeriesChunk("loss", "train", iterations, epochs, 1.0 / (iterations + 1), now),
        SeriesChunk("accuracy", "validation", iterations, epochs, iterations / n, now),
    )
    store.append_points(project_id, exp.experiment_id, MetricBatch("seed", 1, chunks))
    store.update_experiment(project_id, exp.experiment_id, status=Status(status))
    return exp.experiment_id


def seed_logs(
    store: Store,
    project_id: int,
    experiment_id: int,
    messages: list[tuple[str, str, str]],
    seq: int = 1,
) -> None:
    lines = tuple(LogLine(time.time(), stream, level, msg) for stream, level, msg in messages)
    store.append_logs(project_id, experiment_id, LogBatch("seed-logs", seq, lines))
