"""The real MLflow client's tracking calls against a real ``mltrail server`` (SQLite and
PostgreSQL): what it logs is an ordinary mltrail experiment, and what mltrail records reads back
through the MLflow client."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlflow_user import MlflowUser, mlflow

from mltrail.core.types import MetricBatch, SeriesChunk
from support.servers import unique_name


def log_a_run(tmp_path: Path) -> str:
    """The fluent API as a training script uses it; returns the run id."""
    mlflow.set_experiment(unique_name("mlflow-exp"))
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"batch_size": 32, "optimizer": "adam"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"validation/acc": step / 10, "odd": float("nan")}, step=step)
        mlflow.set_tags({"team": "vision", "mlflow.note.content": "first try"})
        (tmp_path / "notes.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="more/deep")
    return str(run.info.run_id)


def test_a_fluent_run_reads_back_through_the_mlflow_client(
    user: MlflowUser, tmp_path: Path
) -> None:
    run_id = log_a_run(tmp_path)
    run = user.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "baseline"
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
    assert run.data.params == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert run.data.metrics["loss"] == pytest.approx(0.2)
    assert run.data.metrics["validation/acc"] == pytest.approx(0.4)
    assert math.isnan(run.data.metrics["odd"])
    assert run.data.tags["team"] == "vision"
    assert run.data.tags["mlflow.note.content"] == "first try"
    history = user.client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert all(m.timestamp >= run.info.start_time for m in history)
    assert user.client.get_metric_history(run_id, "never-logged") == []
    top = {(f.path, f.is_dir) for f in user.client.list_artifacts(run_id)}
    assert top == {("notes.txt", False), ("more", True)}
    assert [f.path for f in user.client.list_artifacts(run_id, "more/deep")] == [
        "more/deep/notes.txt"
    ]
    local = user.client.download_artifacts(run_id, "more/deep/notes.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello"


def test_an_mlflow_run_is_an_ordinary_mltrail_experiment(user: MlflowUser, tmp_path: Path) -> None:
    run_id = log_a_run(tmp_path)
    project, number = (int(x) for x in run_id.split("-"))
    [listed] = user.api.experiments.list(project)
    assert listed["experiment_id"] == number
    assert listed["display_name"] == "baseline" and listed["status"] == "done"
    assert listed["description"] == "first try"
    assert listed["hyperparameters"] == {"lr": "0.01", "batch_size": "32", "optimizer": "adam"}
    assert listed["metrics"]["train/loss"] == pytest.approx(0.2)
    assert listed["metrics"]["validation/acc"] == pytest.approx(0.4)
    assert "team=vision" in listed["tags"]
    series = user.api.store.read_series(project, number, "acc", "validation")
    assert series.iterations.tolist() == [0, 1, 2, 3, 4]
    paths = {a["path"] for a in user.api.artifacts.list(project, number)}
    assert paths == {"notes.txt", "more/deep/notes.txt"}


def test_an_mltrail_experiment_reads_through_the_mlflow_client(user: MlflowUser) -> None:
    store = user.api.store
    project = store.create_project(unique_name("sdk"))
    exp = store.create_experiment(
        project.id, display_name="sdk-run", hyperparameters={"lr": 0.1, "layers": [2, 3]}
    )
    steps = np.arange(0, 300, 3, dtype=np.int64)
    chunk = SeriesChunk(
        "loss",
        "validation",
        steps,
        np.zeros(len(steps), np.int64),
        np.linspace(1.0, 0.1, len(steps)),
        np.full(len(steps), 1_700_000_000.0),
    )
    store.append_points(project.id, exp.experiment_id, MetricBatch("c", 0, (chunk,)))
    run_id = f"{project.id}-{exp.experiment_id}"
    run = user.client.get_run(run_id)
    assert run.info.run_name == "sdk-run" and run.info.status == "RUNNING"
    assert run.info.experiment_id == str(project.id)
    assert run.data.params == {"lr": "0.1", "layers": "[2, 3]"}
    assert run.data.metrics == {"validation/loss": pytest.approx(0.1)}
    history = user.client.get_metric_history(run_id, "validation/loss")
    assert [m.step for m in history] == steps.tolist()
    assert {m.timestamp for m in history} == {1_700_000_000_000}
    assert user.client.get_experiment(str(project.id)).name == project.display_name
    found = user.client.search_runs([str(project.id)])
    assert [r.info.run_id for r in found] == [run_id]


def test_experiments_by_name_and_the_default_experiment(user: MlflowUser) -> None:
    name = unique_name("by-name")
    eid = user.client.create_experiment(name, tags={"mlflow.note.content": "about it"})
    assert user.client.get_experiment_by_name(name).experiment_id == eid
    assert user.client.get_experiment(eid).tags == {"mlflow.note.content": "about it"}
    assert user.client.get_experiment_by_name(unique_name("missing")) is None
    with pytest.raises(mlflow.exceptions.MlflowException) as taken:
        user.client.create_experiment(name)
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert name in {e.name for e in user.client.search_experiments()}
    # no experiment set: the fluent client logs to MLflow's Default (id 0)
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0)
    default = user.client.get_experiment(run.info.experiment_id)
    assert default.name == "Default"
    assert user.client.get_experiment("0").experiment_id == default.experiment_id


def test_update_status_name_and_tags(user: MlflowUser) -> None:
    eid = user.client.create_experiment(unique_name("updates"))
    run = user.client.create_run(eid, run_name="first-name", tags={"keep": "1", "drop": "2"})
    rid = run.info.run_id
    assert run.info.status == "RUNNING"
    user.client.set_tag(rid, "mlflow.runName", "second-name")
    user.client.delete_tag(rid, "drop")
    user.client.set_tag(rid, "keep", "changed")
    user.client.set_terminated(rid, status="KILLED")
    got = user.client.get_run(rid)
    assert got.info.run_name == "second-name" and got.info.status == "KILLED"
    assert got.data.tags["keep"] == "changed" and "drop" not in got.data.tags
    project, number = (int(x) for x in rid.split("-"))
    assert user.api.store.get_experiment(project, number).status == "stopped"


def test_create_run_keeps_the_start_time_the_client_gives(user: MlflowUser) -> None:
    eid = user.client.create_experiment(unique_name("start-time"))
    run = user.client.create_run(eid, start_time=1_600_000_000_123)
    assert user.client.get_run(run.info.run_id).info.start_time == 1_600_000_000_123
    project, number = (int(x) for x in run.info.run_id.split("-"))
    assert user.api.store.get_experiment(project, number).started_at == 1_600_000_000.123


def test_set_terminated_keeps_the_end_time_the_client_gives(user: MlflowUser) -> None:
    c = user.client
    eid = c.create_experiment(unique_name("end-time"))
    rid = c.create_run(eid, start_time=1_600_000_000_123).info.run_id
    c.set_terminated(rid, status="FAILED", end_time=1_600_000_360_456)
    info = c.get_run(rid).info
    assert (info.status, info.end_time) == ("FAILED", 1_600_000_360_456)
    project, number = (int(x) for x in rid.split("-"))
    assert user.api.store.get_experiment(project, number).ended_at == 1_600_000_360.456
    [listed] = user.api.experiments.search(project, "ended = 1600000360.456")  # mltrail's own
    assert listed["experiment_id"] == number
    [found] = c.search_runs([eid], "attributes.end_time = 1600000360456")
    assert found.info.run_id == rid
    c.update_run(rid, status="FINISHED")  # the client sends the end it read: kept
    assert c.get_run(rid).info.end_time == 1_600_000_360_456
    c.set_terminated(rid, end_time=1_600_000_720_000)  # a finished run's end, moved
    assert c.get_run(rid).info.end_time == 1_600_000_720_000


def test_log_batch_and_the_bulk_interval_read_keep_each_buckets_extremes(
    user: MlflowUser,
) -> None:
    eid = user.client.create_experiment(unique_name("bulk"))
    rid = user.client.create_run(eid).info.run_id
    Metric = mlflow.entities.Metric
    values = np.sin(np.arange(10_000) / 50.0) * np.linspace(1, 3, 10_000)
    for start in range(0, 10_000, 1000):
        batch = [Metric("wave", float(values[i]), 1000 + i, i) for i in range(start, start + 1000)]
        user.client.log_batch(rid, metrics=batch)
    assert len(user.client.get_metric_history(rid, "wave")) == 10_000
    sampled = bulk_interval(user, run_ids=[rid], metric_key="wave", max_results=200)
    assert 2 <= len(sampled) <= 200
    got = [m["value"] for m in sampled]
    assert max(got) == values.max() and min(got) == values.min()
    assert {m["run_id"] for m in sampled} == {rid}
    ranged = bulk_interval(
        user, run_ids=[rid], metric_key="wave", max_results=50, start_step=2000, end_step=2999
    )
    assert ranged and all(2000 <= m["step"] <= 2999 for m in ranged)
    assert max(m["value"] for m in ranged) == values[2000:3000].max()


def test_steps_logged_out_of_order_read_back_by_step(user: MlflowUser) -> None:
    """MLflow clients may log steps in any order and re-log one: every point is kept, the
    history comes by step (a re-logged step's points in the order logged) and the run's
    metric is the highest step's, as MLflow's own server answers."""
    eid = user.client.create_experiment(unique_name("order"))
    rid = user.client.create_run(eid).info.run_id
    Metric = mlflow.entities.Metric
    steps = [5, 4, 3, 2, 1, 9, 0]
    user.client.log_batch(rid, metrics=[Metric("m", float(s), 1000 + s, s) for s in steps])
    user.client.log_metric(rid, "m", 2.5, timestamp=2000, step=2)  # re-logged, a later batch
    history = user.client.get_metric_history(rid, "m")
    assert [(m.step, m.value) for m in history] == [
        (0, 0.0),
        (1, 1.0),
        (2, 2.0),
        (2, 2.5),
        (3, 3.0),
        (4, 4.0),
        (5, 5.0),
        (9, 9.0),
    ]
    assert user.client.get_run(rid).data.metrics["m"] == 9.0
    ranged = bulk_interval(
        user, run_ids=[rid], metric_key="m", max_results=100, start_step=2, end_step=4
    )
    assert [m["step"] for m in ranged] == [2, 2, 3, 4]


def bulk_interval(user: MlflowUser, **params: object) -> list[dict]:
    """The UI's call (the Python client has none): ``get-history-bulk-interval``."""
    answer = httpx.get(
        f"{user.server.url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params=params,
        headers={"Authorization": f"Bearer {user.token}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["metrics"]


def test_search_runs_with_mlflow_filters_and_order(user: MlflowUser) -> None:
    c = user.client
    eid = c.create_experiment(unique_name("search"))
    made = {}
    for i, (lr, opt) in enumerate([("0.1", "adam"), ("0.01", "sgd"), ("0.001", "adam")]):
        run = c.create_run(eid, run_name=f"run-{i}", tags={"team": "a" if i < 2 else "b"})
        rid = run.info.run_id
        c.log_batch(
            rid,
            metrics=[mlflow.entities.Metric("loss", 1.0 - i / 10, 1, 5)],
            params=[mlflow.entities.Param("lr", lr), mlflow.entities.Param("opt", opt)],
        )
        c.set_terminated(rid, status="FINISHED" if i != 1 else "FAILED")
        made[i] = rid

    def ids(filter_string: str = "", order_by: list[str] | None = None) -> list[str]:
        found = c.search_runs([eid], filter_string, order_by=order_by)
        return [r.info.run_id for r in found]

    assert ids() == [made[2], made[1], made[0]]  # MLflow's default: newest first
    assert ids("metrics.loss < 0.95", ["metrics.loss ASC"]) == [made[2], made[1]]
    assert ids("params.opt = 'adam'", ["params.lr DESC"]) == [made[0], made[2]]
    assert ids("tags.team = 'a' and attributes.status = 'FINISHED'") == [made[0]]
    assert ids("tags.`mlflow.runName` LIKE 'run-%'", ["attributes.run_name DESC"]) == [
        made[2], made[1], made[0],
    ]  # fmt: skip
    assert ids(f"attributes.run_id IN ('{made[0]}', '{made[2]}')", ["start_time"]) == [
        made[0], made[2],
    ]  # fmt: skip
    page = c.search_runs([eid], max_results=2)
    assert len(page) == 2 and page.token
    rest = c.search_runs([eid], max_results=2, page_token=page.token)
    assert [r.info.run_id for r in rest] == [made[0]] and not rest.token
    with pytest.raises(mlflow.exceptions.MlflowException) as bad:
        c.search_runs([eid], "metrics.loss < 'low'")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE" and "position" in bad.value.message


def test_delete_restore_and_run_again(user: MlflowUser) -> None:
    c = user.client
    eid = c.create_experiment(unique_name("lifecycle"))
    rid = c.create_run(eid).info.run_id
    c.set_terminated(rid)
    c.delete_run(rid)
    assert c.get_run(rid).info.lifecycle_stage == "deleted"
    assert c.search_runs([eid]) == []
    ViewType = mlflow.entities.ViewType
    assert [r.info.run_id for r in c.search_runs([eid], run_view_type=ViewType.DELETED_ONLY)] == [
        rid
    ]
    c.restore_run(rid)
    assert [r.info.run_id for r in c.search_runs([eid])] == [rid]
    with mlflow.start_run(run_id=rid):  # MLflow runs a finished run again: mltrail resumes it
        mlflow.log_metric("after", 1.0)
        assert c.get_run(rid).info.status == "RUNNING"
    assert c.get_run(rid).info.status == "FINISHED"
    assert c.get_run(rid).data.metrics == {"after": 1.0}


def test_rename_delete_and_restore_an_experiment(user: MlflowUser) -> None:
    """As against MLflow's own server: a deleted experiment keeps its name, is found by id and
    by name as ``deleted``, is listed only by the view types that ask for it, takes no run and
    cannot be set active or renamed until restored."""
    name, other = unique_name("lifecycle"), unique_name("taken")
    eid = user.client.create_experiment(name)
    user.client.create_experiment(other)
    with pytest.raises(mlflow.exceptions.MlflowException) as taken:
        user.client.rename_experiment(eid, other)
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"
    renamed = name + "-renamed"
    user.client.rename_experiment(eid, renamed)
    assert user.client.get_experiment(eid).name == renamed
    assert user.api.projects.get(int(eid))["display_name"] == renamed
    run = user.client.create_run(eid)
    user.client.delete_experiment(eid)
    assert user.client.get_experiment(eid).lifecycle_stage == "deleted"
    assert user.client.get_experiment_by_name(renamed).lifecycle_stage == "deleted"
    view = mlflow.entities.ViewType
    listed = {
        v: {e.experiment_id for e in user.client.search_experiments(view_type=v)}
        for v in (view.ACTIVE_ONLY, view.DELETED_ONLY, view.ALL)
    }
    assert eid not in listed[view.ACTIVE_ONLY] and listed[view.DELETED_ONLY] == {eid}
    assert listed[view.ALL] == listed[view.ACTIVE_ONLY] | {eid}
    assert [p["project_id"] for p in user.api.projects.list("deleted")] == [int(eid)]
    with pytest.raises(mlflow.exceptions.MlflowException, match="Cannot set a deleted"):
        mlflow.set_experiment(renamed)
    with pytest.raises(mlflow.exceptions.MlflowException) as closed:
        user.client.create_run(eid)
    assert closed.value.error_code == "INVALID_PARAMETER_VALUE"
    for call, code in (
        (lambda: user.client.create_experiment(renamed), "RESOURCE_ALREADY_EXISTS"),
        (lambda: user.client.rename_experiment(eid, unique_name("x")), "INVALID_STATE"),
        (lambda: user.client.delete_experiment(eid), "RESOURCE_DOES_NOT_EXIST"),
    ):
        with pytest.raises(mlflow.exceptions.MlflowException) as refused:
            call()
        assert refused.value.error_code == code
    assert user.client.get_run(run.info.run_id).info.run_id == run.info.run_id  # kept
    rid = run.info.run_id
    for write in (  # MLflow's server refuses them too (its runs are deleted with the experiment)
        lambda: user.client.log_metric(rid, "loss", 0.5, step=1),
        lambda: user.client.set_tag(rid, "k", "v"),
        lambda: user.client.log_param(rid, "lr", "0.1"),
        lambda: user.client.log_batch(rid, metrics=[mlflow.entities.Metric("m", 1.0, 1, 2)]),
        lambda: user.client.set_terminated(rid),
    ):
        with pytest.raises(mlflow.exceptions.MlflowException, match=f"project {eid} is deleted"):
            write()
    assert user.client.get_run(rid).data.metrics == {}
    user.client.restore_experiment(eid)
    assert user.client.get_experiment(eid).lifecycle_stage == "active"
    user.client.log_metric(rid, "loss", 0.5, step=1)
    assert user.client.get_run(rid).data.metrics == {"loss": 0.5}
    with pytest.raises(mlflow.exceptions.MlflowException) as active:
        user.client.restore_experiment(eid)
    assert active.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow.set_experiment(renamed).experiment_id == eid
