"""The client's ``ml experiments ...`` commands against a real server: the same results as
mltrail's own methods with the same arguments, and bad input as one clear line."""

from __future__ import annotations

import json

import missinglink_seed as seed
from missinglink_seed import Setup
from test_missinglink_api import charts_of, iteration_metrics_of, twins


def ml_ok(s: Setup, *commands: list[str]) -> list[str]:
    """The stdout of each command, run in one client process; each must succeed."""
    outputs = []
    for done in s.client.ml_batch(*commands):
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    return outputs


def test_ml_experiments_commands_land_as_mltrails_methods(setup: Setup) -> None:
    s = setup
    p = str(s.project)
    (a, hash_a), (b, hash_b) = twins(s)
    metrics = '{"ex_cost": 42.5, "approved": false}'
    chart = ["-c", "pr", "-cxn", "class", "-cyn", '["p", "r"]', "-cs", "validation"]
    chart += ["-cx", '["cat", "dog"]', "-cy", "[[0.9, 0.8], [0.7, 0.6]]"]
    per_iteration = '{"ex_holdout": 0.9}'
    # the client's commands on a (listing it last), mltrail's methods on its twin b
    *_, listed_json, table = ml_ok(
        s,
        ["experiments", "update-metrics", "-p", p, "-e", str(a), "-m", metrics],
        ["experiments", "update-metrics", "--weights-hash", hash_a, "-m", '{"ex_audit": "ok"}'],
        ["experiments", "update-chart", "-p", p, "-e", str(a), *chart],
        ["experiments", "update-chart", "--weights-hash", hash_a, "-c", "roc",
         "-cx", "[0.0, 0.5, 1.0]", "-cy", "[0.0, 0.8, 1.0]"],
        ["experiments", "update-metrics-per-iteration", "--weights-hash", hash_a,
         "-m", per_iteration],
        ["-o", "json", "experiments", "list", "-p", p],
        ["experiments", "list", "-p", p],
    )  # fmt: skip
    s.mltrail.experiments.update_metrics(metrics, project=s.project, experiment=b)
    s.mltrail.experiments.update_metrics('{"ex_audit": "ok"}', weights_hash=hash_b)
    s.mltrail.experiments.update_chart(
        "pr", project=s.project, experiment=b, chart_x_name="class", chart_y_name='["p", "r"]',
        chart_scope="validation", chart_x='["cat", "dog"]', chart_y="[[0.9, 0.8], [0.7, 0.6]]",
    )  # fmt: skip
    s.mltrail.experiments.update_chart(
        "roc", weights_hash=hash_b, chart_x="[0.0, 0.5, 1.0]", chart_y="[0.0, 0.8, 1.0]"
    )
    s.mltrail.experiments.update_metrics_per_iteration(hash_b, per_iteration)

    ex_a = s.mltrail.experiments.get(s.project, a)["ex_metrics"]
    assert ex_a == s.mltrail.experiments.get(s.project, b)["ex_metrics"]
    assert ex_a == {"ex_cost": 42.5, "ex_approved": False, "ex_audit": "ok"}
    assert charts_of(s.mltrail, s.project, a) == charts_of(s.mltrail, s.project, b)
    assert len(charts_of(s.mltrail, s.project, a)) == 2
    assert iteration_metrics_of(s.mltrail, s.project, a) == iteration_metrics_of(
        s.mltrail, s.project, b
    )
    listed = json.loads(listed_json)
    assert [e["experiment_id"] for e in listed] == [a, b]
    assert listed[0]["ex_cost"] == 42.5 and listed[0]["lr"] == 0.1
    assert "ex_cost" in table and "42.5" in table


def test_ml_bad_input_is_one_clear_line(setup: Setup) -> None:
    s = setup
    a = seed.experiment(s.mltrail, s.project)
    chart, metrics = s.client.ml_batch(
        ["experiments", "update-chart", "-p", str(s.project), "-e", str(a), "-c", "x",
         "-cx", "[1, 2]", "-cy", '["a", "b"]'],
        ["experiments", "update-metrics", "-p", str(s.project), "-e", "9999",
         "-m", '{"ex_a": 1}'],
    )  # fmt: skip
    assert chart.returncode != 0
    assert "chart_y" in chart.stderr and "500" not in chart.stderr
    assert metrics.returncode != 0 and "9999" in metrics.stderr
