"""The original client's ``as_api().experiments`` against a real ``mltrail server`` (SQLite and
PostgreSQL): each write lands exactly as mltrail's own method with the same arguments lands on a
twin experiment, read back through mltrail's ``as_api()``."""

from __future__ import annotations

import re
from typing import Any

import missinglink_seed as seed
from missinglink_seed import Setup

from mltrail.api import Api
from mltrail.store.http import HttpStore
from support.servers import unique_name


def charts_of(api: Api, project: int, experiment: int) -> dict[str, Any]:
    return {c.chart_id: c.spec for c in api.store.list_charts(project, experiment)}


def iteration_metrics_of(api: Api, project: int, experiment: int) -> list[tuple]:
    rows = api.store.read_iteration_metrics(project, experiment)
    return sorted((m.key, m.iteration, m.epoch, m.value) for m in rows)


def twins(s: Setup) -> tuple[tuple[int, str], tuple[int, str]]:
    """Two experiments of the same shape, each with its own weights hash."""
    first, second = seed.new_hash(), seed.new_hash()
    return (
        (seed.experiment(s.mltrail, s.project, weights_hash=first), first),
        (seed.experiment(s.mltrail, s.project, weights_hash=second), second),
    )


def test_list_is_mltrails_list_in_the_clients_shape(setup: Setup) -> None:
    s = setup
    (a, _), (b, _) = twins(s)
    s.mltrail.experiments.update_metrics('{"ex_cost": 99, "approved": true}', s.project, a)
    listed = s.client.api("list", project=s.project)
    own = s.mltrail.experiments.list(s.project)
    assert [e["experiment_id"] for e in listed] == [e["experiment_id"] for e in own] == [a, b]
    for theirs, ours in zip(listed, own, strict=True):
        for field in ("created_at", "display_name", "description", "status"):
            assert theirs[field] == ours[field]
        values = {**ours["hyperparameters"], **ours["metrics"], **ours["ex_metrics"]}
        assert {k: theirs[k] for k in values} == values
    assert listed[0]["ex_cost"] == 99 and listed[0]["ex_approved"] is True


def test_list_pages_through_more_than_a_hundred(setup: Setup) -> None:
    s = setup
    for _ in range(101):
        s.mltrail.store.create_experiment(s.project)
    listed = s.client.api("list", project=s.project)
    assert [e["experiment_id"] for e in listed] == list(range(1, 102))


def test_update_metrics_by_ids_and_by_hash_land_as_mltrails(setup: Setup) -> None:
    s = setup
    (a, hash_a), (b, hash_b) = twins(s)
    metrics = '{"ex_cost": 99, "approved": true, "note": "checked", "ratio": 0.25}'
    by_ids, by_hash = s.client.api_calls(  # one client process: it takes seconds to start
        ("update_metrics", {"metrics": metrics, "project": s.project, "experiment": a}),
        ("update_metrics", {"metrics": '{"ex_audit": "passed"}', "weights_hash": hash_a}),
    )
    s.mltrail.experiments.update_metrics(metrics, project=s.project, experiment=b)
    assert by_ids["result"]["updated"] == [{"project": s.project, "experiment": a}]
    assert "result" in by_hash, by_hash
    s.mltrail.experiments.update_metrics('{"ex_audit": "passed"}', weights_hash=hash_b)
    ours = s.mltrail.experiments.get(s.project, a)["ex_metrics"]
    assert ours == s.mltrail.experiments.get(s.project, b)["ex_metrics"]
    assert ours == {
        "ex_cost": 99,
        "ex_approved": True,
        "ex_note": "checked",
        "ex_ratio": 0.25,
        "ex_audit": "passed",
    }


CHARTS = [
    {"chart_name": "roc", "chart_x": "[1, 2, 3]", "chart_y": "[0.5, 0.75, 1.0]"},
    {
        "chart_name": "Loss by LR",
        "chart_x_name": "lr",
        "chart_y_name": "loss",
        "chart_scope": "validation",
        "chart_x": "[0.001, 0.01, 0.1]",
        "chart_y": "[0.9, 0.5, 0.7]",
    },
    {
        "chart_name": "precision and recall",
        "chart_x_name": "class",
        "chart_y_name": '["precision", "recall"]',
        "chart_scope": "train",
        "chart_x": '["cat", "dog"]',
        "chart_y": "[[0.97, 0.96], [0.95, 0.98]]",
    },
    {
        "chart_name": "three lines",
        "chart_y_name": '["a", "b", "c"]',
        "chart_x": "[10, 20]",
        "chart_y": "[[1, 2, 3], [4, 5, 6]]",
    },
]


def test_update_chart_single_and_multi_line_by_ids_and_by_hash_lands_as_mltrails(
    setup: Setup,
) -> None:
    s = setup
    (a, hash_a), (b, hash_b) = twins(s)
    (c, hash_c), (d, hash_d) = twins(s)
    calls = [("update_chart", {**chart, "project": s.project, "experiment": a}) for chart in CHARTS]
    calls += [("update_chart", {**chart, "weights_hash": hash_c}) for chart in CHARTS]
    outcomes = s.client.api_calls(*calls)
    assert all("result" in outcome for outcome in outcomes), outcomes
    for chart in CHARTS:
        s.mltrail.experiments.update_chart(**chart, project=s.project, experiment=b)
        s.mltrail.experiments.update_chart(**chart, weights_hash=hash_d)
    by_ids, by_hash = charts_of(s.mltrail, s.project, a), charts_of(s.mltrail, s.project, c)
    assert len(by_ids) == len(CHARTS)
    assert by_ids == charts_of(s.mltrail, s.project, b)
    assert by_hash == charts_of(s.mltrail, s.project, d) == by_ids
    # the same name again replaces the chart
    again = {**CHARTS[0], "chart_y": "[1, 1, 1]", "project": s.project, "experiment": a}
    s.client.api("update_chart", **again)
    after = charts_of(s.mltrail, s.project, a)
    assert len(after) == len(CHARTS)
    assert [spec.y for spec in after.values() if spec.name == "roc"] == [((1.0,), (1.0,), (1.0,))]
    assert hash_a != hash_b


def test_update_metrics_per_iteration_lands_as_mltrails(setup: Setup) -> None:
    s = setup
    (a, hash_a), (b, hash_b) = twins(s)
    metrics = '{"ex_holdout_accuracy": 0.968, "reviewed": "yes"}'
    result = s.client.api("update_metrics_per_iteration", weights_hash=hash_a, metrics=metrics)
    assert result["touched"] == s.mltrail.experiments.update_metrics_per_iteration(hash_b, metrics)
    ours = iteration_metrics_of(s.mltrail, s.project, a)
    assert ours == iteration_metrics_of(s.mltrail, s.project, b)
    assert ("ex_holdout_accuracy", 19, 1, 0.968) in ours and len(ours) == 4


# (call, what its message says)
BAD_CALLS: list[tuple[tuple[str, dict[str, Any]], str]] = [
    (("update_metrics", {"metrics": "[1, 2]"}), "metrics: must be a JSON object"),
    (("update_metrics", {"metrics": '{"ex_a": 1}', "experiment": 999}), "999"),
    (("update_metrics", {"metrics": '{"ex_a": 1}', "weights_hash": "xyz"}), "weights_hash"),
    (
        ("update_metrics_per_iteration", {"metrics": '{"a": 1}', "weights_hash": "a" * 40}),
        "weights hash",
    ),
    (
        (
            "update_chart",
            {
                "chart_name": "bad",
                "chart_y_name": '["a", "b", "c"]',
                "chart_x": "[1, 2]",
                "chart_y": "[[1, 2], [3, 4]]",
            },
        ),
        "chart_y_name",
    ),
    (
        ("update_chart", {"chart_name": "bad", "chart_x": "[1, 2]", "chart_y": '["a", "b"]'}),
        "chart_y",
    ),
]


def test_bad_input_reaches_the_client_as_a_clear_message(setup: Setup) -> None:
    s = setup
    a = seed.experiment(s.mltrail, s.project)
    calls = [
        (
            method,
            kwargs
            if "weights_hash" in kwargs
            else {"project": s.project, "experiment": a, **kwargs},
        )
        for (method, kwargs), _ in BAD_CALLS
    ]
    outcomes = s.client.api_calls(*calls)  # one client process: it takes seconds to start
    for ((method, _), message), outcome in zip(BAD_CALLS, outcomes, strict=True):
        assert "error" in outcome, (method, outcome)
        assert re.search(message, outcome["message"]), (message, outcome)


def test_another_users_project_is_refused(setup: Setup) -> None:
    s = setup
    with Api(HttpStore(s.server.url, s.server.make_token(unique_name()))) as theirs:
        project = theirs.projects.create(unique_name("private"))["project_id"]
        exp = seed.experiment(theirs, project)
    listed, updated = s.client.api_calls(
        ("list", {"project": project}),
        ("update_metrics", {"metrics": '{"ex_a": 1}', "project": project, "experiment": exp}),
    )
    for outcome in (listed, updated):
        assert "error" in outcome and re.search(r"project", outcome["message"]), outcome
