"""Each validation rule runs once per REST call: the route parses into checked values
(ExMetrics, WeightsHash, ChartSpec, ExperimentRef) and the store below trusts them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from mltrail.core import validation
from mltrail.store.sql import SqlStore
from support.inprocess import app_client, ok_json

HASH = "ab" * 20
RULES = ("ex_metrics", "weights_hash", "chart", "experiment_ref")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each parse constructor ran (wrapped in place, so every caller is counted)."""
    counted: Counter[str] = Counter()

    def counting(name: str, rule: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return rule(*args, **kwargs)

        return wrapper

    for name in RULES:
        monkeypatch.setattr(validation, name, counting(name, getattr(validation, name)))
    return counted


@pytest.fixture
def client(sqlite_store: SqlStore) -> Iterator[TestClient]:
    project = sqlite_store.create_project("once")
    for _ in range(2):
        exp = sqlite_store.create_experiment(project.id)
        sqlite_store.link_weights_hash(project.id, exp.experiment_id, HASH, iteration=1, epoch=0)
    with app_client(sqlite_store) as test_client:
        yield test_client


def test_ex_metrics_by_hash_are_checked_once(client: TestClient, calls: Counter[str]) -> None:
    body = {"targets": [{"weights_hash": HASH}], "metrics": {"cost": 1.5, "ok": True}}
    answer = ok_json(client.post("/api/v1/external-metrics", json=body))
    assert answer["updated"] == [{"project": 1, "experiment": 1}, {"project": 1, "experiment": 2}]
    assert calls == Counter({"ex_metrics": 1, "weights_hash": 1})


def test_ex_metrics_by_experiment_are_checked_once(client: TestClient, calls: Counter[str]):
    body = {"targets": [{"project_id": 1, "experiment_id": 2}], "metrics": '{"ex_cost": 2}'}
    assert ok_json(client.post("/api/v1/external-metrics", json=body))["updated"] == [
        {"project": 1, "experiment": 2}
    ]
    assert calls == Counter({"ex_metrics": 1, "experiment_ref": 1})


def test_a_chart_is_checked_once(client: TestClient, calls: Counter[str]) -> None:
    chart = {
        "name": "roc",
        "x": [0.0, 0.5, 1.0],
        "y": [[0, 0], [0.6, 0.4], [1, 1]],
        "y_names": ["a", "b"],
    }
    body = {"targets": [{"weights_hash": HASH}], "chart": chart}
    assert len(ok_json(client.post("/api/v1/charts", json=body))["updated"]) == 2
    assert calls == Counter({"chart": 1, "weights_hash": 1})


def test_iteration_metrics_are_checked_once(client: TestClient, calls: Counter[str]) -> None:
    body = {"metrics": {"ex_acc": 0.9}}
    answer = ok_json(client.post(f"/api/v1/weights/{HASH}/iteration-metrics", json=body))
    assert answer == {"touched": 2}
    assert calls == Counter({"ex_metrics": 1, "weights_hash": 1})
