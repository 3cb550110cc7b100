"""The real MLflow client configured for a fresh mltrail user on a real server, and that
user's own mltrail ``Api`` to check what landed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mltrail.api import Api
from mltrail.store.http import HttpStore
from support.servers import ServerProcess, unique_name

mlflow = pytest.importorskip("mlflow")


@dataclass
class MlflowUser:
    """A fresh mltrail user, the MLflow client configured for them, and their mltrail Api."""

    server: ServerProcess
    token: str
    api: Api
    client: mlflow.MlflowClient


def configure(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> MlflowUser:
    """Point the MLflow client at ``server`` as a new user: the two variables a user sets."""
    token = server.make_token(unique_name())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    # a 4xx is never retried; a bug answering 5xx should fail the test fast, not after retries
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.url)
    # the fluent client keeps the last set_experiment in a module global: forget the previous
    # test's (another user's) experiment, as a new process would
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set_experiment sets them
        monkeypatch.delenv(name, raising=False)
    # the client caches artifact repositories by run id for the process, and run ids are only
    # unique per server (docs/mlflow.md): this process talks to two servers in turn
    mlflow.tracking._tracking_service.utils._artifact_repos_cache.clear()
    return MlflowUser(server, token, Api(HttpStore(server.url, token)), mlflow.MlflowClient())


def user_session(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowUser]:
    """A fixture's body: a configured user, any run left active ended afterwards."""
    found = configure(server, monkeypatch)
    yield found
    while mlflow.active_run() is not None:
        mlflow.end_run()
    found.api.close()
