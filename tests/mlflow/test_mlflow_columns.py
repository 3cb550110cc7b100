"""log-batch's column-wise read and a run's JSON written straight from the record, held to
what the point-by-point read and MLflow's shapes give (in-process: no client, no server)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from mltrail.core.errors import ValidationError
from mltrail.core.types import Experiment, MetricSummary, Status
from mltrail.server.mlflow import metrics, shapes
from mltrail.server.mlflow.messages import Message
from mltrail.store.sql.store import SqlStore

NON_FINITE = ["NaN", "Infinity", "-Infinity"]  # how MLflow's client sends them (protobuf JSON)


def _batch(values: list[object], steps: list[object] | None = None) -> list[dict[str, object]]:
    found = []
    for i, value in enumerate(values):
        metric = {"key": f"m{i % 3}", "value": value, "timestamp": 1_700_000_000_000 + i}
        if steps is None or steps[i] is not None:
            metric["step"] = i if steps is None else steps[i]
        found.append(metric)
    return found


def _point_by_point(items: list[dict[str, object]]) -> metrics.Points:
    return metrics._rows([metrics._point(m, f"metrics[{i}].") for i, m in enumerate(items)])


def test_a_batch_holding_protobufs_non_finite_values_is_read_as_columns() -> None:
    items = _batch([1.5, *NON_FINITE, 2, -0.0, *NON_FINITE])
    assert metrics._columns(items) is not None  # not sent to the point-by-point read
    got, want = metrics.parse_points(items), _point_by_point(items)
    assert np.array_equal(got.values, want.values, equal_nan=True)
    assert got.values[1:4].tolist()[1:] == [math.inf, -math.inf] and math.isnan(got.values[1])
    assert math.copysign(1.0, got.values[5]) == -1.0  # -0.0 kept
    assert got.names == want.names and got.steps.tolist() == want.steps.tolist()
    assert got.millis.tolist() == want.millis.tolist()


@pytest.mark.parametrize("value", ["nan", "inf", "1.5", "", None, True, [1.0]])
def test_any_other_value_is_judged_point_by_point_naming_it(value: object) -> None:
    items = _batch([1.0, "NaN", value])
    assert metrics._columns(items) is None
    with pytest.raises(ValidationError) as caught:
        metrics.parse_points(items)
    assert caught.value.field == "metrics[2].value"


def test_a_missing_step_is_zero_and_a_missing_timestamp_is_refused_naming_it() -> None:
    points = metrics.parse_points(_batch([1.0, "NaN", 3.0], steps=[None, 4, None]))
    assert points.steps.tolist() == [0, 4, 0]
    items = _batch([1.0, "Infinity"])
    del items[1]["timestamp"]
    with pytest.raises(ValidationError) as caught:
        metrics.parse_points(items)
    assert caught.value.field == "metrics[1].timestamp"


def test_repeated_keys_and_steps_keep_their_order_with_non_finite_values(
    sqlite_store: SqlStore,
) -> None:
    project = sqlite_store.create_project("p")
    run = sqlite_store.create_experiment(project.id, status=Status.RUNNING)
    sent = [("loss", "NaN", 1), ("loss", 0.5, 0), ("loss", "Infinity", 1), ("acc", 1.0, 1),
            ("loss", "-Infinity", 1), ("acc", "NaN", 0)]  # fmt: skip
    body = orjson.dumps({
        "run_id": shapes.run_id(run),
        "metrics": [{"key": k, "value": v, "timestamp": 1000, "step": s} for k, v, s in sent],
    })  # fmt: skip
    metrics.log_batch(Message(body=body), sqlite_store)
    loss = sqlite_store.read_series(project.id, run.experiment_id, "loss", "train")
    assert loss.iterations.tolist() == [0, 1, 1, 1]
    assert loss.values[0] == 0.5 and math.isnan(loss.values[1])
    assert loss.values[2:].tolist() == [math.inf, -math.inf]
    acc = sqlite_store.read_series(project.id, run.experiment_id, "acc", "train")
    assert acc.iterations.tolist() == [0, 1] and math.isnan(acc.values[0])


def test_the_batch_limits_still_refuse_a_batch_of_non_finite_values() -> None:
    body = orjson.dumps({"run_id": "1-1", "metrics": _batch(["NaN"] * 1001)})
    with pytest.raises(ValidationError) as caught:
        metrics.log_batch(Message(body=body), None)  # type: ignore[arg-type]  # refused first
    assert caught.value.field == "metrics" and "at most 1000" in caught.value.message


def test_a_runs_json_is_mlflows_run_shape() -> None:
    run = Experiment(
        project_id=3, experiment_id=12, display_name='say "hi"\n\u00e9\u4e2d',
        description="notes", status=Status.DONE, created_at=10.0, started_at=11.0005,
        ended_at=12.25, hyperparameters={"lr": "0.1", "layers": [1, 2], 'q"\\': "\x01"},
        environment={"user": "ann"}, tags=("team=a b", "solo"),
        metrics={"train/loss": 0.25, "validation/acc": math.nan, "test/x": -math.inf,
                 "train/big": 1e16, "train/tiny": 1e-05},
        ex_metrics={"ex_cost": 7, "ex_flag": True, "ex_note": "text", "ex_inf": math.inf},
    )  # fmt: skip
    series = [MetricSummary("loss", "train", 3, 0.25, 0.1, 0.9, 41, None)]
    got = orjson.loads(orjson.dumps({"run": shapes.run_shape(run, series)}))["run"]
    metric = {"timestamp": 12250}
    assert got["data"]["metrics"] == [
        {"key": "loss", "value": 0.25, **metric, "step": 41},
        {"key": "validation/acc", "value": "NaN", **metric, "step": 0},
        {"key": "test/x", "value": "-Infinity", **metric, "step": 0},
        {"key": "big", "value": 1e16, **metric, "step": 0},
        {"key": "tiny", "value": 1e-05, **metric, "step": 0},
        {"key": "ex_cost", "value": 7.0, **metric, "step": 0},
        {"key": "ex_inf", "value": "Infinity", **metric, "step": 0},
    ]
    assert got["data"]["params"] == [
        {"key": "lr", "value": "0.1"},
        {"key": "layers", "value": "[1, 2]"},
        {"key": 'q"\\', "value": "\x01"},
    ]
    assert got["data"]["tags"] == [
        {"key": shapes.RUN_NAME_TAG, "value": run.display_name},
        {"key": shapes.NOTE_TAG, "value": "notes"},
        {"key": "team", "value": "a b"},
        {"key": "solo", "value": ""},
    ]
    assert got["info"] == {
        "run_id": "3-12", "run_uuid": "3-12", "run_name": run.display_name,
        "experiment_id": "3", "user_id": "ann", "status": "FINISHED", "start_time": 11000,
        "end_time": 12250, "artifact_uri": "mlflow-artifacts:/3/3-12/artifacts",
        "lifecycle_stage": "active",
    }  # fmt: skip
    assert got["inputs"] == {}


@pytest.mark.parametrize("name", ["loss", "validation/ä b:c-1.2"])
@pytest.mark.parametrize("values", [
    [],
    [0.1],
    [1e-7, 1e16, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3, 2.5, 100.0],
    [1.5, math.nan, math.inf, -math.inf, 0.0],
])  # fmt: skip
def test_history_json_is_the_json_of_the_records_point_by_point(
    name: str, values: list[float]
) -> None:
    column = np.array(values, np.float64)
    millis = np.arange(len(values), dtype=np.int64) * 10**12 - 10**15
    steps = np.arange(len(values), dtype=np.int64) * (2**61)
    records = [
        {"key": name, "value": shapes.json_float(v), "timestamp": t, "step": s}
        for v, t, s in zip(values, millis.tolist(), steps.tolist(), strict=True)
    ]
    got = shapes.history_json(name, column, millis, steps)
    assert got == orjson.dumps({"metrics": records})
