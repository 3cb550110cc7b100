"""Schemathesis over the OpenAPI description: whatever a client sends, never a 500.

Runs the real app in-process (ASGI) on a real SQLite SqlStore.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mltrail.config import Settings
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.server import create_app
from mltrail.store.sql import SqlStore


def _seeded(path: Path) -> tuple[SqlStore, str]:
    """A store at ``path`` with an admin token, project 1 and experiment 1 with a series."""
    store = SqlStore.open(f"sqlite:///{path}")
    token = store.auth.ensure_admin()
    assert token
    project = store.create_project("fuzz")
    exp = store.create_experiment(project.id)
    n = 10
    chunk = SeriesChunk("loss", "train", np.arange(n), np.full(n, -1), np.ones(n), np.ones(n))
    store.append_points(project.id, exp.experiment_id, MetricBatch("seed", 1, (chunk,)))
    return store, token


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    """The app on a seeded store (project 1, experiment 1 with a series) and an admin token."""
    home = tmp_path_factory.mktemp("fuzz")
    store, token = _seeded(home / "fuzz.db")
    # Starlette's test client sends "Host: testserver"; the DNS-rebinding guard must allow it
    yield create_app(Settings(home=home), store, allowed_hosts=["testserver"]), token
    store.close()


SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# long-polls, event streams and the agents' job claims wait; fuzzed with the jobs tests
SKIPPED_PATHS = r"(/logs/stream$|/jobs|/agents)"


def _check_operation(
    operation, headers: dict[str, str], checks=SCHEMA_CHECKS, max_examples: int = 10
) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        # generated cases may carry made-up tokens of their own: only ``headers`` count
        case.headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
        response = case.call(headers=headers)
        assert response.status_code < 500, (operation.label, response.text)
        if response.status_code >= 400 and case.method != "HEAD":  # a HEAD answer has no body
            assert set(response.json()["error"]) == {"type", "field", "message"}
        if "Authorization" not in headers or headers["Authorization"].startswith("Bearer mltj_"):
            assert response.status_code in (400, 401, 404, 405, 413, 422), operation.label
        case.validate_response(response, checks=checks)  # status, type, body documented

    run()


def _operations(app, *, jobs: bool) -> list:
    """The schema's operations but the endless event streams (and the jobs API's long-poll
    claims unless ``jobs``: fuzzed with the jobs tests)."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/logs/stream"):
            continue
        if not jobs and ("/jobs" in operation.path or "/agents" in operation.path):
            continue
        found.append(operation)
    return found


def test_no_input_makes_a_server_error(fuzzed, monkeypatch):
    app, token = fuzzed
    # long-polls of a running experiment would wait 30 s per example
    monkeypatch.setattr("mltrail.server.routes.logs.MAX_WAIT_SECONDS", 0.2)
    operations = _operations(app, jobs=False)
    for operation in operations:
        _check_operation(operation, {"Authorization": f"Bearer {token}"})
    assert len(operations) >= 25


def test_stateful_sequences_make_no_server_error_and_match_the_schema(tmp_path, monkeypatch):
    """Sequences of calls (schemathesis links inferred from the schema), derandomised.

    Each scenario starts on its own copy of one seeded database: Hypothesis replays a
    scenario's draws and requires the same answers to the same calls, which a database
    that kept the earlier scenarios' projects and experiments does not give (it raised
    FlakyStrategyDefinition when a listing drawn from had grown)."""
    monkeypatch.setattr("mltrail.server.routes.logs.MAX_WAIT_SECONDS", 0.2)
    template, token = _seeded(tmp_path / "template.db")
    template.close()
    app = create_app(Settings(home=tmp_path), template, allowed_hosts=["testserver"])
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    machine = schema.exclude(path_regex=SKIPPED_PATHS).as_state_machine()
    calls: list[tuple[str, int]] = []
    scenarios = itertools.count()

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def setup(self):
            copy = tmp_path / f"scenario-{next(scenarios)}.db"
            shutil.copyfile(tmp_path / "template.db", copy)
            app.state.store = SqlStore.open(f"sqlite:///{copy}")

        def teardown(self):
            app.state.store.close()

        def before_call(self, case):
            # the generated cases carry made-up bearer tokens of their own: use the real one
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

        def after_call(self, response, case):
            calls.append((f"{case.method} {case.path}", response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=SCHEMA_CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=8,
            derandomize=True,  # the same sequences every run: a CI failure reproduces
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    created = [op for op, status in calls if status == 201]
    print(f"stateful calls: {len(calls)}, of which created something: {len(created)}")
    assert len(calls) >= 50 and created


def test_unauthenticated_requests_make_no_server_error(fuzzed, monkeypatch):
    """Every operation (jobs and agents too: refused before any wait), fuzzed without a token
    and with a made-up job token: a 4xx, never a 5xx."""
    app, _ = fuzzed
    monkeypatch.setattr("mltrail.server.routes.logs.MAX_WAIT_SECONDS", 0.2)
    operations = [op for op in _operations(app, jobs=True) if op.path != "/healthz"]
    for operation in operations:
        for headers in ({}, {"Authorization": "Bearer mltj_made-up"}):
            _check_operation(operation, headers, checks=[not_a_server_error], max_examples=5)
    assert len(operations) >= 25


def test_ui_paths_make_no_server_error(fuzzed):
    """The web UI's paths are not in the OpenAPI description: generated paths, no token."""
    from hypothesis import strategies as st
    from starlette.testclient import TestClient

    app, _ = fuzzed
    segment = st.text(min_size=1, max_size=300)
    client = TestClient(app, raise_server_exceptions=False)

    @given(parts=st.lists(segment, min_size=1, max_size=40), ui=st.booleans())
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def run(parts, ui) -> None:
        from urllib.parse import quote

        path = ("/ui/" if ui else "/") + "/".join(quote(p, safe="") for p in parts)
        response = client.get(path)
        assert response.status_code < 500, (path[:200], response.text[:200])

    run()
