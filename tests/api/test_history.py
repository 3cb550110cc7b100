"""History out of the store: records, DataFrames and export files equal to the stored values,
embedded and through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
import sys
import uuid

import numpy as np
import orjson
import pandas as pd
import pytest

from mltrail.api import Api
from mltrail.core.errors import ValidationError
from mltrail.sdk.experiment import start
from mltrail.store.base import Store
from support.factories import batch, chunk

SPECIAL = [float("nan"), float("inf"), -float("inf"), 1e-300, -0.0, 0.1 + 0.2]


@pytest.fixture
def api(mode_store: Store) -> Api:
    return Api(mode_store)  # mode_store closes the store


@pytest.fixture
def run(api: Api, settings) -> tuple[int, int]:
    """Two experiments: train and validation series with special values, epochs, no epochs."""
    refs = []
    project = f"history-{uuid.uuid4().hex[:8]}"  # the shared servers' databases outlive a test
    for name in ("a", "b"):
        with start(project, name, settings=settings, store=api.store) as exp:
            for i in range(300):
                exp.log({"loss": SPECIAL[i % len(SPECIAL)] if i < 12 else 1 / (i + 1)})
                if i % 100 == 99:
                    exp.epoch_end({"acc": i / 300})
        refs.append((exp.project_id, exp.experiment_id))
    return refs[1]


@pytest.fixture
def settings():
    from mltrail.config import Settings

    return Settings.from_env().with_(strict=True, system_metrics=False)  # exact row counts


def _stored(api: Api, ref: tuple[int, int]) -> pd.DataFrame:
    """What the store holds, read series by series (the reference every output must equal)."""
    frames = []
    for summary in api.store.list_series(*ref):
        s = api.store.read_series(*ref, summary.key, summary.phase, times=True)
        frames.append(
            pd.DataFrame(
                {
                    "key": s.key,
                    "phase": s.phase,
                    "iteration": s.iterations,
                    "epoch": pd.array([None if e < 0 else e for e in s.epochs], dtype="Int64"),
                    "value": s.values,
                    "time": s.times,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _same(frame: pd.DataFrame, stored: pd.DataFrame) -> None:
    assert len(frame) == len(stored)
    for column in ("iteration", "epoch"):
        assert frame[column].astype("Int64").tolist() == stored[column].tolist(), column
    assert frame["key"].astype(str).tolist() == stored["key"].tolist()
    assert frame["phase"].astype(str).tolist() == stored["phase"].tolist()
    # bit-exact values: NaN, infinities, -0.0 and 0.1 + 0.2 included
    got = np.asarray(frame["value"], dtype=np.float64)
    assert np.array_equal(got.view(np.int64), stored["value"].to_numpy().view(np.int64))
    assert np.allclose(frame["time"].astype(float), stored["time"], atol=1e-3, equal_nan=True)


def test_history_as_a_dataframe_equals_the_stored_values(api, run):
    frame = api.experiments.history(*run, to="pandas")
    stored = _stored(api, run)
    assert len(stored) == 300 + 3  # 300 train points, 3 validation ones
    _same(frame, stored)
    assert set(frame["experiment"]) == {run[1]}


def test_history_records_and_key_selection(api, run):
    rows = api.experiments.history(*run, keys=["validation/acc"])
    assert [(r["key"], r["phase"], r["iteration"], r["epoch"]) for r in rows] == [
        ("acc", "validation", 99, 0),
        ("acc", "validation", 199, 1),
        ("acc", "validation", 299, 2),
    ]
    loss = api.experiments.history(*run, keys="loss")
    assert len(loss) == 300 and math.isnan(loss[0]["value"]) and loss[0]["epoch"] is None
    assert len(api.experiments.history(*run, keys="loss", max_points=50)) <= 50


def test_exports_equal_the_stored_values(api, run):
    stored = pd.concat([_stored(api, (run[0], run[1] - 1)), _stored(api, run)], ignore_index=True)
    out = {fmt: io.BytesIO() for fmt in ("csv", "parquet", "jsonl")}
    seen: list[tuple[int, int]] = []
    for fmt, buffer in out.items():
        written = api.experiments.export(
            run[0], buffer, format=fmt, progress=lambda d, t: seen.append((d, t))
        )
        assert written == len(stored) == 606
    assert seen[-1] == (606, 606)
    _same(pd.read_parquet(io.BytesIO(out["parquet"].getvalue())), stored)
    csv = pd.read_csv(io.BytesIO(out["csv"].getvalue()))  # shortest round-trip text
    _same(csv, stored)
    lines = [orjson.loads(line) for line in out["jsonl"].getvalue().splitlines()]
    for row in lines:
        if isinstance(row["value"], dict):
            row["value"] = float(row["value"]["$float"])
    _same(pd.DataFrame(lines), stored)
    one = io.BytesIO()
    assert api.experiments.export(run[0], one, experiment=run[1], format="jsonl") == 303


def test_csv_export_needs_no_pyarrow_and_parquet_says_what_to_install(api, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # pyarrow is an optional dependency
    out = io.BytesIO()
    assert api.experiments.export(run[0], out, experiment=run[1], format="csv") == 303
    with pytest.raises(
        ValidationError, match=r"format: needs pyarrow: pip install 'mltrail\[parquet\]'"
    ):
        api.experiments.export(run[0], io.BytesIO(), format="parquet")
    monkeypatch.undo()  # pandas reads text columns through pyarrow
    _same(pd.read_csv(io.BytesIO(out.getvalue())), _stored(api, run))


def test_bad_output_choices_name_the_field(api, run):
    with pytest.raises(ValidationError, match="to: must be one of records, pandas"):
        api.experiments.history(*run, to="numpy")
    with pytest.raises(ValidationError, match="format: must be one of csv, parquet, jsonl"):
        api.experiments.export(run[0], io.BytesIO(), format="xml")
    with pytest.raises(ValidationError, match="max_points"):
        api.experiments.history(*run, max_points=1)


def test_list_as_a_dataframe_flattens_params_and_metrics(api, run):
    api.experiments.update_metrics({"ex_cost": 3}, project=run[0], experiment=run[1])
    frame = api.experiments.list(run[0], to="pandas")
    assert frame["experiment_id"].tolist() == [run[1] - 1, run[1]]
    assert frame["display_name"].tolist() == ["a", "b"]
    stored = api.store.get_experiment(*run)
    last = frame.iloc[1]
    assert last["metrics.validation/acc"] == stored.metrics["validation/acc"]
    assert last["metrics.ex_cost"] == 3
    assert api.experiments.list(run[0]) == api.experiments.list(run[0], to="records")


def test_search_as_a_dataframe_equals_the_stored_values(api, run):
    pid = run[0]
    api.experiments.update_metrics({"ex_cost": 0.1 + 0.2}, project=pid, experiment=run[1])
    api.experiments.add_tags(pid, run[1], ["best", "b"])
    frame = api.experiments.search(pid, "metrics.validation/acc > 0", "created desc", to="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert frame["experiment_id"].tolist() == [run[1], run[1] - 1]
    for row in frame.itertuples(index=False):
        stored = api.store.get_experiment(pid, row.experiment_id)
        got = row._asdict()
        assert got["display_name"] == stored.display_name
        assert got["status"] == stored.status.value
        assert got["tags"] == ",".join(stored.tags)
        for key, value in stored.metrics.items():
            assert frame.loc[frame.experiment_id == row.experiment_id, f"metrics.{key}"].item() == (
                value
            ), key
    cost = frame.loc[frame.experiment_id == run[1], "metrics.ex_cost"].item()
    assert cost == 0.1 + 0.2  # the float as stored, not a rounded copy
    records = api.experiments.search(pid, "metrics.validation/acc > 0", "created desc")
    assert records == api.experiments.search(
        pid, "metrics.validation/acc > 0", "created desc", to="records"
    )
    assert [r["experiment_id"] for r in records] == frame["experiment_id"].tolist()
    with pytest.raises(ValidationError, match="to: must be one of records, pandas"):
        api.experiments.search(pid, to="polars")


def test_search_as_a_dataframe_without_pandas_says_what_to_install(api, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas is an optional dependency
    with pytest.raises(ValidationError, match=r"to: needs pandas: pip install 'mltrail\[pandas\]'"):
        api.experiments.search(run[0], to="pandas")
    assert len(api.experiments.search(run[0])) == 2  # records need nothing extra


def test_notebook_cards_escape_what_they_show(api, settings):
    with start("notebook", "<b>run</b>", settings=settings, store=api.store) as exp:
        exp.log({"loss": 1.0})
        card = exp._repr_html_()
    assert "&lt;b&gt;run&lt;/b&gt;" in card and "<b>run" not in card
    assert "<th style='text-align:left;padding-right:1em'>iteration</th>" in card
    assert "experiments" in api._repr_html_()


def test_an_export_of_points_logged_out_of_order_is_in_iteration_order(api):
    """Steps logged in any order (a re-logged one in a later batch) export by iteration, the
    re-logged step's points in arrival order, values bit for bit."""
    project = api.store.create_project(f"order-{uuid.uuid4().hex[:8]}")
    exp = api.store.create_experiment(project.id)
    ref = (project.id, exp.experiment_id)
    odd = [float("nan"), -0.0, float("inf"), 3.0, -float("inf"), 9.5, 0.0]
    api.store.append_points(*ref, batch(0, chunk("m", [5, 4, 3, 2, 1, 9, 0], odd)))
    api.store.append_points(*ref, batch(1, chunk("m", [2], [2.5])))
    out = io.BytesIO()
    assert api.experiments.export(project.id, out, format="jsonl") == 8
    rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 2, 3, 4, 5, 9]
    got = [
        float(r["value"]["$float"]) if isinstance(r["value"], dict) else r["value"] for r in rows
    ]
    want = [odd[i] for i in (6, 4, 3)] + [2.5] + [odd[i] for i in (2, 1, 0, 5)]
    assert np.array(got).view(np.int64).tolist() == np.array(want).view(np.int64).tolist()
