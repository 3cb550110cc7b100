"""The five Experiments methods, end to end, in every mode (see conftest.MODES)."""

from __future__ import annotations

import io
import math
import threading
import time
import uuid

import pytest
from contract_seed import seed_experiment, seed_logs

from mltrail import NotFoundError, PermissionDeniedError, ValidationError
from mltrail.core.types import Status
from support.bulk import bulk_experiments


@pytest.fixture
def hashes() -> tuple[str, str]:
    """Two weights hashes no other test uses (backends are shared by the session)."""
    return uuid.uuid4().hex + "a" * 8, uuid.uuid4().hex + "b" * 8


@pytest.fixture
def project(api) -> int:
    return api.projects.create("contract", "contract tests")["project_id"]


# --- list ------------------------------------------------------------------------------------------
def test_list_returns_every_experiment_with_hparams_last_metrics_and_ex_metrics(api, project):
    first = seed_experiment(api.store, project, n=10, hparams={"lr": 0.1, "layers": [64, 32]})
    second = seed_experiment(api.store, project, n=4, hparams={"lr": 0.01})
    api.experiments.update_metrics({"ex_cost": 99}, project=project, experiment=second)

    rows = api.experiments.list(project)

    assert [r["experiment_id"] for r in rows] == [first, second]
    assert rows[0]["hyperparameters"] == {"lr": 0.1, "layers": [64, 32]}
    assert rows[0]["metrics"]["train/loss"] == pytest.approx(1 / 10)
    assert rows[0]["metrics"]["validation/accuracy"] == pytest.approx(9 / 10)
    assert rows[1]["ex_metrics"] == {"ex_cost": 99}
    assert rows[1]["status"] == "done"
    assert {"created_at", "display_name", "description"} <= set(rows[0])


def test_experiments_are_numbered_per_project(api):
    p1 = api.projects.create("one")["project_id"]
    p2 = api.projects.create("two")["project_id"]
    ids = [api.store.create_experiment(p).experiment_id for p in (p1, p1, p2)]
    assert ids == [1, 2, 1]


def test_list_pages_through_to_the_last_experiment(api):
    project = api.projects.create("many")["project_id"]
    for _ in range(250):
        api.store.create_experiment(project)
    api.experiments._page_size = 100  # three pages, the last one partial
    rows = api.experiments.list(project)
    assert [r["experiment_id"] for r in rows] == list(range(1, 251))


def test_list_is_complete_for_ten_thousand_experiments(mode):
    if mode.name != "embedded-sqlite":
        pytest.skip("10,000 experiments once is enough; paging is tested in every mode above")
    project = mode.api.projects.create("ten thousand")["project_id"]
    # written in one transaction: 10,000 create_experiment calls took 20 s and are not what is
    # tested here (creation is, one call at a time, above)
    bulk_experiments(mode.api.store.url, project, 10_000)
    rows = mode.api.experiments.list(project)
    assert [r["experiment_id"] for r in rows] == list(range(1, 10_001))
    assert rows[-1]["display_name"] == "sweep-10000"


def test_list_unknown_project_is_not_found(api):
    with pytest.raises(NotFoundError) as err:
        api.experiments.list(987654)
    assert err.value.field == "project"


@pytest.mark.parametrize("bad", [0, -1, "abc", 1.5, True])
def test_list_rejects_bad_project_ids(api, bad):
    with pytest.raises(ValidationError) as err:
        api.experiments.list(bad)
    assert err.value.field == "project"


# --- update_metrics --------------------------------------------------------------------------------
def test_update_metrics_values_round_trip_with_their_type_and_get_the_ex_prefix(api, project):
    exp = seed_experiment(api.store, project)
    api.experiments.update_metrics(
        '{"ex_cost": 99, "ratio": 0.5, "note": "ok", "flag": true, "big": Infinity}',
        project=project,
        experiment=exp,
    )
    ex = api.experiments.list(project)[0]["ex_metrics"]
    assert ex["ex_cost"] == 99 and type(ex["ex_cost"]) is int
    assert ex["ex_ratio"] == 0.5 and type(ex["ex_ratio"]) is float
    assert ex["ex_note"] == "ok"
    assert ex["ex_flag"] is True
    assert ex["ex_big"] == math.inf


def test_update_metrics_by_weights_hash_reaches_every_experiment_holding_it(api, project, hashes):
    hash_a, hash_b = hashes
    e1, e2, e3 = (seed_experiment(api.store, project) for _ in range(3))
    api.store.link_weights_hash(project, e1, hash_a, iteration=10, epoch=1)
    api.store.link_weights_hash(project, e2, hash_a, iteration=20, epoch=2)
    api.store.link_weights_hash(project, e3, hash_b, iteration=20, epoch=2)

    updated = api.experiments.update_metrics({"ex_score": 1.5}, weights_hash=hash_a.upper())

    assert updated == [
        {"project": project, "experiment": e1},
        {"project": project, "experiment": e2},
    ]
    by_id = {r["experiment_id"]: r["ex_metrics"] for r in api.experiments.list(project)}
    assert by_id[e1] == by_id[e2] == {"ex_score": 1.5}
    assert by_id[e3] == {}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"project": 1}, "experiment"),
        ({"experiment": 1}, "project"),
        ({}, "weights_hash"),
        ({"weights_hash": "xyz"}, "weights_hash"),
    ],
)
def test_update_metrics_target_errors_name_the_field(api, project, kwargs, field):
    with pytest.raises(ValidationError) as err:
        api.experiments.update_metrics({"ex_a": 1}, **kwargs)
    assert err.value.field == field


def test_update_metrics_unknown_hash_and_experiment_are_not_found(api, project):
    with pytest.raises(NotFoundError) as err:
        api.experiments.update_metrics({"ex_a": 1}, weights_hash="c" * 40)
    assert err.value.field == "weights_hash"
    with pytest.raises(NotFoundError) as err:
        api.experiments.update_metrics({"ex_a": 1}, project=project, experiment=999)
    assert err.value.field == "experiment"


@pytest.mark.parametrize(
    "metrics",
    [
        '{"ex_a": 1',
        "[1, 2]",
        '{"ex_a": [1]}',
        '{"ex_a": null}',
        "{}",
        '{"": 1}',
        {"ex_a": {"b": 1}},
    ],
)
def test_update_metrics_bad_payloads_are_rejected_and_nothing_is_written(api, project, metrics):
    exp = seed_experiment(api.store, project)
    with pytest.raises(ValidationError) as err:
        api.experiments.update_metrics(metrics, project=project, experiment=exp)
    assert err.value.field.startswith("metrics")
    assert api.experiments.list(project)[0]["ex_metrics"] == {}


def test_update_metrics_with_one_bad_value_writes_none_of_them(api, project):
    exp = seed_experiment(api.store, project)
    with pytest.raises(ValidationError) as err:
        api.experiments.update_metrics(
            '{"ex_good": 1, "ex_bad": [1]}', project=project, experiment=exp
        )
    assert err.value.field == "metrics.ex_bad"
    assert api.experiments.list(project)[0]["ex_metrics"] == {}


# --- update_chart ----------------------------------------------------------------------------------
def test_update_chart_single_and_multi_line_and_replace_by_name(api, project):
    exp = seed_experiment(api.store, project)
    api.experiments.update_chart(
        "ROC",
        project=project,
        experiment=exp,
        chart_x="[0.0, 0.5, 1.0]",
        chart_y="[0.0, 0.8, 1.0]",
        chart_x_name="FPR",
        chart_y_name="TPR",
    )
    api.experiments.update_chart(
        "Per class",
        project=project,
        experiment=exp,
        chart_scope="validation",
        chart_x='["cat", "dog"]',
        chart_y="[[0.9, 0.8, 0.7], [0.6, 0.5, 0.4]]",
        chart_y_name='["precision", "recall", "f1"]',
    )
    api.experiments.update_chart(
        " roc ", project=project, experiment=exp, chart_x=[1, 2], chart_y=[3, 4]
    )

    charts = {c.spec.name.lower(): c.spec for c in api.store.list_charts(project, exp)}
    assert set(charts) == {"roc", "per class"}
    assert charts["roc"].x == (1, 2) and charts["roc"].y == ((3.0,), (4.0,))
    multi = charts["per class"]
    assert multi.scope == "validation"
    assert multi.y_names == ("precision", "recall", "f1")
    assert multi.x == ("cat", "dog") and multi.y[1] == (0.6, 0.5, 0.4)


def test_update_chart_keeps_its_chart_type(api, project):
    exp = seed_experiment(api.store, project)
    api.experiments.update_chart(
        "per class",
        project=project,
        experiment=exp,
        chart_type="bar",
        chart_x='["cat", "dog"]',
        chart_y="[0.9, 0.8]",
    )
    (chart,) = api.store.list_charts(project, exp)
    assert chart.spec.type == "bar"


def test_update_chart_by_weights_hash(api, project, hashes):
    hash_a, _ = hashes
    e1, e2 = seed_experiment(api.store, project), seed_experiment(api.store, project)
    api.store.link_weights_hash(project, e1, hash_a, iteration=1, epoch=0)
    api.store.link_weights_hash(project, e2, hash_a, iteration=1, epoch=0)
    api.experiments.update_chart(
        "pr", weights_hash=hash_a, chart_x=[1, 2, 3], chart_y=[0.1, 0.2, float("nan")]
    )
    for exp in (e1, e2):
        (chart,) = api.store.list_charts(project, exp)
        assert chart.spec.x == (1, 2, 3)
        assert math.isnan(chart.spec.y[2][0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"chart_scope": "prod"}, "chart_scope"),
        ({"chart_type": "pie"}, "chart_type"),
        ({"chart_x": '[1, "a"]', "chart_y": "[1, 2]"}, "chart_x"),
        ({"chart_x": "[1, 2, 3]", "chart_y": "[1, 2]"}, "chart_y"),
        ({"chart_x": "[1, 2]", "chart_y": "[[1, 2], [3]]"}, "chart_y"),
        (
            {"chart_x": "[1, 2]", "chart_y": "[[1, 2], [3, 4]]", "chart_y_name": '["a"]'},
            "chart_y_name",
        ),
        ({"chart_x": "[1, 2", "chart_y": "[1, 2]"}, "chart_x"),
        ({"chart_x": None}, "chart_x"),
        ({"chart_name": "  "}, "chart_name"),
    ],
)
def test_update_chart_bad_input_names_the_field(api, project, kwargs, field):
    exp = seed_experiment(api.store, project)
    args = {
        "chart_name": "c",
        "project": project,
        "experiment": exp,
        "chart_x": "[1, 2]",
        "chart_y": "[1, 2]",
    } | kwargs
    with pytest.raises(ValidationError) as err:
        api.experiments.update_chart(**args)
    assert err.value.field == field
    assert api.store.list_charts(project, exp) == []


# --- update_metrics_per_iteration ---------------------------------------------------------------------
def test_update_metrics_per_iteration_fans_out_to_every_experiment_and_epoch(api, project, hashes):
    hash_a, hash_b = hashes
    e1, e2 = seed_experiment(api.store, project), seed_experiment(api.store, project)
    api.store.link_weights_hash(project, e1, hash_a, iteration=100, epoch=1)
    api.store.link_weights_hash(project, e1, hash_a, iteration=200, epoch=2)
    api.store.link_weights_hash(project, e2, hash_a, iteration=300, epoch=3)
    api.store.link_weights_hash(project, e2, hash_b, iteration=400, epoch=4)

    touched = api.experiments.update_metrics_per_iteration(
        hash_a, '{"accuracy": 0.93, "split": "holdout"}'
    )

    assert touched == 3
    first = {
        (m.key, m.iteration, m.epoch): m.value
        for m in api.store.read_iteration_metrics(project, e1)
    }
    assert first == {
        ("ex_accuracy", 100, 1): 0.93,
        ("ex_split", 100, 1): "holdout",
        ("ex_accuracy", 200, 2): 0.93,
        ("ex_split", 200, 2): "holdout",
    }
    second = {(m.key, m.iteration, m.epoch) for m in api.store.read_iteration_metrics(project, e2)}
    assert second == {("ex_accuracy", 300, 3), ("ex_split", 300, 3)}


def test_update_metrics_per_iteration_unknown_hash_is_an_error(api):
    with pytest.raises(NotFoundError) as err:
        api.experiments.update_metrics_per_iteration("d" * 40, {"ex_a": 1})
    assert err.value.field == "weights_hash"
    with pytest.raises(ValidationError):
        api.experiments.update_metrics_per_iteration("not-a-hash", {"ex_a": 1})


# --- logs ------------------------------------------------------------------------------------------
def test_logs_prints_lines_coloured_by_level_and_returns_them(api, project):
    exp = seed_experiment(api.store, project)
    seed_logs(
        api.store, project, exp, [("stdout", "INFO", "epoch 1"), ("stderr", "ERROR", "boom <b>")]
    )
    out = io.StringIO()
    lines = api.experiments.logs(project, exp, file=out)
    assert [line.message for line in lines] == ["epoch 1", "boom <b>"]
    text = out.getvalue()
    assert "stdout INFO epoch 1" in text
    assert "\x1b[31m" in text and "boom <b>" in text

    plain = io.StringIO()
    api.experiments.logs(project, exp, disable_colors=True, file=plain)
    assert "\x1b[" not in plain.getvalue()
    assert plain.getvalue().count("\n") == 2


def test_logs_defaults_to_the_latest_experiment(api, project):
    seed_experiment(api.store, project)
    latest = seed_experiment(api.store, project)
    seed_logs(api.store, project, latest, [("stdout", "INFO", "from the latest")])
    out = io.StringIO()
    api.experiments.logs(project, file=out, disable_colors=True)
    assert "from the latest" in out.getvalue()


def test_logs_follows_a_running_experiment_until_it_ends(api, project):
    exp = api.store.create_experiment(project, status=Status.RUNNING).experiment_id

    def training() -> None:
        for i in range(5):
            time.sleep(0.2)
            seed_logs(api.store, project, exp, [("stdout", "INFO", f"step {i}")], seq=i + 1)
        api.store.update_experiment(project, exp, status=Status.DONE)

    thread = threading.Thread(target=training)
    thread.start()
    out = io.StringIO()
    lines = api.experiments.logs(project, exp, disable_colors=True, file=out)
    thread.join()
    assert [line.message for line in lines] == [f"step {i}" for i in range(5)]


def test_logs_without_following_prints_every_page(api, project):
    exp = seed_experiment(api.store, project)
    for batch in range(3):
        lines = [("stdout", "INFO", f"line {batch * 5000 + i}") for i in range(5000)]
        seed_logs(api.store, project, exp, lines, seq=batch + 1)
    printed = api.experiments.logs(
        project, exp, follow=False, disable_colors=True, file=io.StringIO()
    )
    assert [line.message for line in printed] == [f"line {i}" for i in range(15_000)]


def test_logs_without_collecting_prints_the_same_and_keeps_nothing(api, project):
    """``collect=False`` (the CLI's export of millions of lines) prints what a collecting
    call prints, page by page, and returns no lines."""
    exp = seed_experiment(api.store, project)
    for batch in range(2):
        lines = [("stdout", "INFO", f"line {batch * 6000 + i}") for i in range(6000)]
        seed_logs(api.store, project, exp, lines, seq=batch + 1)
    kept, streamed = io.StringIO(), io.StringIO()
    api.experiments.logs(project, exp, follow=False, disable_colors=True, file=kept)
    assert (
        api.experiments.logs(
            project, exp, follow=False, disable_colors=True, file=streamed, collect=False
        )
        == []
    )
    assert streamed.getvalue() == kept.getvalue() and kept.getvalue().count("\n") == 12_000


def test_logs_unknown_experiment_is_not_found(api, project):
    with pytest.raises(NotFoundError) as err:
        api.experiments.logs(project, 42)
    assert err.value.field == "experiment"


# --- isolation between users (server modes) -----------------------------------------------------------
def test_a_token_cannot_touch_a_project_it_is_not_a_member_of(mode, project, hashes):
    hash_a, _ = hashes
    if mode.new_user_api is None:
        pytest.skip("embedded mode is single-user")
    exp = seed_experiment(mode.api.store, project)
    mode.api.store.link_weights_hash(project, exp, hash_a, iteration=1, epoch=0)
    mallory = f"mallory-{uuid.uuid4().hex[:8]}"
    other = mode.new_user_api(mallory)

    calls = [
        lambda: other.experiments.list(project),
        lambda: other.experiments.update_metrics({"ex_a": 1}, project=project, experiment=exp),
        lambda: other.experiments.update_chart(
            "c", project=project, experiment=exp, chart_x=[1], chart_y=[1]
        ),
        lambda: other.experiments.logs(project, exp, follow=False, file=io.StringIO()),
        lambda: other.experiments.stop(project, exp),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError):
            call()
    # the hash is invisible to a non-member, so hash-addressed writes find nothing
    with pytest.raises(NotFoundError):
        other.experiments.update_metrics({"ex_a": 1}, weights_hash=hash_a)
    with pytest.raises(NotFoundError):
        other.experiments.update_metrics_per_iteration(hash_a, {"ex_a": 1})
    assert other.projects.list() == []
    assert mode.api.experiments.list(project)[0]["ex_metrics"] == {}

    mode.api.projects.add_member(project, mallory)
    assert [r["experiment_id"] for r in other.experiments.list(project)] == [exp]
