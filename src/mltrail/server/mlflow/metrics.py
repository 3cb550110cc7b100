"""MLflow metrics: log-metric, log-batch, get-history and get-history-bulk-interval.

Points go through ``append_points`` as one batch per request (MLflow's ``step`` is mltrail's
iteration, its ``timestamp`` the point's time, epochs are not set); histories are read with
``read_series``, and get-history-bulk-interval from its min/max rollups (``max_points``,
``start``/``end``), so each bucket's smallest and largest value are kept, with their times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Response

from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.types import ExperimentRef, MetricBatch, Series, SeriesChunk
from mltrail.server.mlflow import runs, shapes
from mltrail.server.mlflow.errors import MlflowJSONResponse, MlflowRoute, small_write
from mltrail.server.mlflow.messages import MessageDep, StoreDep
from mltrail.store.base import Store

# MLflow's documented log-batch limits (mlflow/utils/validation.py)
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_RUNS_PER_BULK_READ = 100
MAX_RESULTS_PER_RUN = 2500

router = APIRouter(route_class=MlflowRoute)

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step


@router.post("/runs/log-metric")
@small_write
def log_metric(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """One point of a series."""
    ref = message.run()
    append_one(store, ref, _point(message.fields, ""))
    return {}


@router.post("/runs/log-batch")
def log_batch(message: MessageDep, store: StoreDep) -> dict[str, Any]:
    """Metrics, params and tags of one run (MLflow's limits: 1,000 metrics, 100 params, 100
    tags, 1,000 in all)."""
    ref = message.run()
    metrics = message.items("metrics", MAX_METRICS_PER_BATCH)
    raw_params = message.items("params", MAX_PARAMS_TAGS_PER_BATCH)
    raw_tags = message.items("tags", MAX_PARAMS_TAGS_PER_BATCH)
    if len(metrics) + len(raw_params) + len(raw_tags) > MAX_ENTITIES_PER_BATCH:
        raise ValidationError(
            f"must hold at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in all", "body"
        )
    points = parse_points(metrics)
    params = _params(raw_params)
    tags: dict[str, str | None] = dict(shapes.tag_pairs(raw_tags))
    runs.log_params(store, ref, params)
    runs.set_tags(store, ref, tags)
    append(store, ref, points)
    return {}


@router.get("/metrics/get-history")
def get_history(message: MessageDep, store: StoreDep) -> Response:
    """Every point of a metric by step, a re-logged step's points in the order logged (empty
    for a metric never logged)."""
    ref = message.run()
    name = shapes.key(message.get("metric_key"), "metric_key")
    phase, key = shapes.series_of(name)
    try:
        series = store.read_series(ref.project_id, ref.experiment_id, key, phase, times=True)
    except NotFoundError as exc:
        if exc.field != "key":
            raise
        return MlflowJSONResponse({"metrics": []})
    body = shapes.history_json(name, series.values, _millis(series), series.iterations)
    return Response(body, media_type="application/json")


@router.get("/metrics/get-history-bulk-interval")
def get_history_bulk_interval(message: MessageDep, store: StoreDep) -> Response:
    """A metric of up to 100 runs, each downsampled to ``max_results`` points over
    ``start_step..end_step`` from the min/max rollups: every bucket's extremes are kept."""
    run_ids = message.items("run_ids", MAX_RUNS_PER_BULK_READ)
    if not run_ids:
        raise ValidationError("is required: at least one run id", "run_ids")
    refs = [shapes.parse_run_id(r, f"run_ids[{i}]") for i, r in enumerate(run_ids)]
    name = shapes.key(message.get("metric_key"), "metric_key")
    max_results = shapes.integer(message.get("max_results"), "max_results", MAX_RESULTS_PER_RUN)
    if not 1 <= max_results <= MAX_RESULTS_PER_RUN:
        raise ValidationError(f"must be between 1 and {MAX_RESULTS_PER_RUN}", "max_results")
    start, end = _step_range(message.get("start_step"), message.get("end_step"))
    phase, key = shapes.series_of(name)
    found: list[dict[str, Any]] = []
    for ref in refs:
        try:
            series = store.read_series(
                ref.project_id,
                ref.experiment_id,
                key,
                phase,
                max_points=max(max_results, 2),
                start=start,
                end=end,
                times=True,
            )
        except NotFoundError as exc:
            if exc.field != "key":
                raise
            continue
        rid = shapes.run_id(ref)
        found += [{**m, "run_id": rid} for m in _history(series, name)]
    return MlflowJSONResponse({"metrics": found})


@dataclass(frozen=True)
class Points:
    """A request's metric points, column by column (MLflow's key, value, ms, step)."""

    names: list[str]
    values: np.ndarray
    millis: np.ndarray
    steps: np.ndarray


def parse_points(items: list[Any]) -> Points:
    """log-batch's metrics as columns: checked a column at a time (each distinct key once);
    a batch that fails is read again point by point, so the error names the point and field."""
    fast = _columns(items)
    if fast is not None:
        return fast
    return _rows([_point(m, f"metrics[{i}].") for i, m in enumerate(items)])


_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _columns(items: list[Any]) -> Points | None:
    """The columns of a well-formed batch, None for anything the point-by-point read must
    judge (strings for int64s or other than protobuf's non-finite values, a bad key, a
    missing field, an overflow, a negative step, a time past ``shapes.MAX_MILLIS``). A batch
    holding a NaN stays here: read point by point, a 1,000-metric batch took 3x as long."""
    try:
        names = [m["key"] for m in items]
        values = [m["value"] for m in items]
        millis = [m["timestamp"] for m in items]
        steps = [m.get("step", 0) for m in items]
    except (TypeError, KeyError, AttributeError):
        return None
    value_types = set(map(type, values))
    if str in value_types:  # protobuf JSON's "NaN", "Infinity", "-Infinity" (any other: None)
        values = [_NON_FINITE.get(v, v) if type(v) is str else v for v in values]
        value_types = set(map(type, values))
    plain = value_types <= {int, float} and set(map(type, millis)) <= {int}
    if not (plain and set(map(type, steps)) <= {int} and set(map(type, names)) <= {str}):
        return None  # (a list or dict key cannot even go in the set of names)
    try:
        for name in set(names):
            shapes.key(name)
        columns = (
            np.array(values, np.float64),
            np.array(millis, np.int64),
            np.array(steps, np.int64),
        )
    except (ValidationError, OverflowError):
        return None
    times, iterations = columns[1], columns[2]  # compared, not np.abs'd: -2**63 has no abs
    if len(items) and not (
        iterations.min() >= 0
        and -shapes.MAX_MILLIS <= times.min() <= times.max() <= shapes.MAX_MILLIS
    ):
        return None
    return Points(names, *columns)


def _rows(rows: list[Point]) -> Points:
    return Points(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], np.float64),
        np.array([r[2] for r in rows], np.int64),
        np.array([r[3] for r in rows], np.int64),
    )


def append(store: Store, ref: ExperimentRef, points: Points) -> None:
    """The points as one batch: a series per key, each in step order (as the SDK sends; the
    sort is stable, so points of one step keep the order they came in)."""
    if not points.names:
        return
    keys = sorted(set(points.names))
    order, ends = _key_order(points, keys)
    # the columns put in order once; each series' chunk is a slice of them
    steps, values = points.steps[order], points.values[order]
    times, epochs = points.millis[order] / 1000.0, np.full(len(order), -1, np.int64)
    chunks = []
    for name, lo, hi in zip(keys, [0, *ends[:-1]], ends, strict=True):
        phase, key = shapes.series_of(name)
        part = slice(lo, hi)
        chunks.append(SeriesChunk(key, phase, steps[part], epochs[part], values[part], times[part]))
    # each MLflow request is a batch of its own, without a receipt: the client does not
    # number its retries, so no later request could be recognised as this one again
    batch = MetricBatch(client_id=None, seq=0, chunks=tuple(chunks))
    store.append_points(ref.project_id, ref.experiment_id, batch)


def append_one(store: Store, ref: ExperimentRef, point: Point) -> None:
    """:func:`append` of one point, its chunk built straight from it (the grouping and
    ordering of a batch's columns was a tenth of a log_metric's own Python)."""
    name, value, millis, step = point
    phase, key = shapes.series_of(name)
    chunk = SeriesChunk(key, phase, np.array([step], np.int64), np.array([-1], np.int64),
                        np.array([value], np.float64), np.array([millis / 1000.0]))  # fmt: skip
    batch = MetricBatch(client_id=None, seq=0, chunks=(chunk,))  # no receipt: see append
    store.append_points(ref.project_id, ref.experiment_id, batch)


def _key_order(points: Points, keys: list[str]) -> tuple[np.ndarray, list[int]]:
    """The points' indices grouped by key (``keys`` sorted), each key's in step order (stable),
    and where each key's group ends."""
    if len(keys) == 1:  # a log_metric, or a batch of one metric: nothing to group
        return np.argsort(points.steps, kind="stable"), [len(points.names)]
    index = {name: i for i, name in enumerate(keys)}  # np.unique sorted every point's string
    which = np.fromiter(map(index.__getitem__, points.names), np.int64, len(points.names))
    order = np.lexsort((points.steps, which))
    return order, np.cumsum(np.bincount(which, minlength=len(keys))).tolist()


def _point(fields: Mapping[str, Any], prefix: str) -> Point:
    if not isinstance(fields, Mapping):
        raise ValidationError("must be an object", prefix.rstrip(".") or "body")
    name = shapes.key(fields.get("key"), f"{prefix}key")
    value = shapes.number(fields.get("value"), f"{prefix}value")
    timestamp = shapes.millis(fields.get("timestamp"), f"{prefix}timestamp")
    step = shapes.integer(fields.get("step"), f"{prefix}step", 0)
    if step < 0:  # MLflow takes negative steps; mltrail's iterations count from 0
        raise ValidationError(f"must be >= 0 (mltrail's iterations start at 0), got {step}",
                              f"{prefix}step")  # fmt: skip
    return name, value, timestamp, step


def _params(items: Iterable[Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValidationError("must be an object with key and value", f"params[{i}]")
        name = shapes.key(item.get("key"), f"params[{i}].key")
        value = shapes.text_value(item.get("value"), f"params[{i}].value", shapes.MAX_PARAM_VAL_LEN)
        if name in found and found[name] != value:
            raise ValidationError(f"gives {name!r} two different values", f"params[{i}]")
        found[name] = value
    return found


def _step_range(start: Any, end: Any) -> tuple[int | None, int | None]:
    if (start is None) != (end is None):
        raise ValidationError("give both start_step and end_step, or neither", "start_step")
    if start is None:
        return None, None
    lo, hi = shapes.integer(start, "start_step"), shapes.integer(end, "end_step")
    if lo > hi:
        raise ValidationError(f"must be >= start_step ({lo}), got {hi}", "end_step")
    return lo, hi


def _history(series: Series, name: str) -> list[dict[str, Any]]:
    """The points as MLflow ``Metric`` records (see :func:`_millis`)."""
    values = shapes.json_floats(series.values)
    return [
        {"key": name, "value": v, "timestamp": t, "step": s}
        for v, t, s in zip(
            values, _millis(series).tolist(), series.iterations.tolist(), strict=True
        )
    ]


def _millis(series: Series) -> np.ndarray:
    """The points' times in ms (0 where none is known)."""
    times = series.times if series.times is not None else np.zeros(len(series.values))
    return np.round(np.nan_to_num(times, nan=0.0) * 1000.0).astype(np.int64)
