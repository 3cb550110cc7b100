"""Domain objects to and from their JSON wire form (the REST API's bodies).

One module, used by the server to answer and by HttpStore to read the answers, so both sides
agree by construction. Non-finite floats travel tagged (see :mod:`mltrail.core.wire`); times are
unix seconds; metric columns travel packed with :func:`~mltrail.core.wire.pack_array`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from mltrail.core.types import (
    Chart,
    ChartSpec,
    Experiment,
    IterationMetric,
    LogBatch,
    LogLine,
    MetricBatch,
    MetricSummary,
    Project,
    Series,
    SeriesChunk,
    Status,
    User,
    WeightsLink,
)
from mltrail.core.wire import encode_float, floats_to_wire, from_wire, pack_array, to_wire
from mltrail.core.wire import unpack_array as _unpack

Json = dict[str, Any]

_SHORT_TEXT = 4096  # below this many characters a regex scan is cheapest
_LONG_DIGITS = re.compile(r"\d{19}")  # 19 digits: what an integer beyond 64 bits needs
# bytes.translate maps every digit to b"1" and everything else to b"0": one C pass, then a
# substring search, ~1 GB/s (a regex or a numpy scan took longer than parsing the body)
_DIGITS_TO_ONES = bytes(0x31 if 0x30 <= i <= 0x39 else 0x30 for i in range(256))
_DIGIT_RUN = b"1" * 19


def _may_hold_long_int(text: str | bytes) -> bool:
    """Whether ``text`` has a run of 19 digits (a superset of integers beyond 64 bits)."""
    if isinstance(text, str):
        if len(text) < _SHORT_TEXT:
            return _LONG_DIGITS.search(text) is not None
        text = text.encode()
    return _DIGIT_RUN in text.translate(_DIGITS_TO_ONES)


def parse_json(text: str | bytes) -> Any:
    """JSON text to Python values, exactly: orjson when it can be trusted, else the standard
    library.

    orjson parses several times faster, but turns integers beyond 64 bits into floats without
    a word and refuses ``NaN``/``Infinity`` tokens and lone surrogates; such texts go to
    :func:`json.loads`, which keeps all of them exact.
    """
    if not _may_hold_long_int(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


# --- projects, users --------------------------------------------------------------------------
def project_to_wire(p: Project) -> Json:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "description": p.description,
        "created_at": p.created_at,
        "experiment_count": p.experiment_count,
        "last_activity": p.last_activity,
    }


def project_from_wire(d: Json) -> Project:
    return Project(
        id=d["id"],
        display_name=d["display_name"],
        description=d["description"],
        created_at=d["created_at"],
        experiment_count=d.get("experiment_count", 0),
        last_activity=d.get("last_activity"),
    )


def user_to_wire(u: User) -> Json:
    return {"id": u.id, "name": u.name, "is_admin": u.is_admin}


def user_from_wire(d: Json) -> User:
    return User(id=d["id"], name=d["name"], is_admin=d["is_admin"])


# --- experiments ------------------------------------------------------------------------------
_PLAIN = frozenset({str, int, bool, type(None)})
_STATUSES = {s.value: s for s in Status}


def _mapping_to_wire(d: Mapping[str, Any]) -> Json:
    """``to_wire`` of a mapping, skipping the recursive walk when every value is a plain
    scalar (the usual hyperparameters and metrics: 1,000 experiments hold 5,000 of them)."""
    for v in d.values():
        if type(v) in _PLAIN or (type(v) is float and math.isfinite(v)):
            continue
        return to_wire(dict(d))
    return dict(d)


def _mapping_from_wire(d: Json) -> Json:
    """``from_wire`` of a mapping; only nested values (tagged floats, lists) need the walk."""
    for v in d.values():
        if isinstance(v, (dict, list)):
            return from_wire(d)
    return d


def experiment_to_wire(e: Experiment) -> Json:
    return {
        "project_id": e.project_id,
        "experiment_id": e.experiment_id,
        "display_name": e.display_name,
        "description": e.description,
        "status": Status(e.status).value,
        "created_at": e.created_at,
        "started_at": e.started_at,
        "ended_at": e.ended_at,
        "duration": e.duration,
        "hyperparameters": _mapping_to_wire(e.hyperparameters),
        "environment": _mapping_to_wire(e.environment),
        "source": _mapping_to_wire(e.source),
        "tags": list(e.tags),
        "metrics": _mapping_to_wire(e.metrics),
        "ex_metrics": _mapping_to_wire(e.ex_metrics),
        "stop_requested": e.stop_requested,
    }


def experiment_from_wire(d: Json, *, tagged: bool = True) -> Experiment:
    """An experiment from its wire form; ``tagged=False`` promises that no value in ``d``
    is a tagged float (a page whose body lacks ``"$float"``), which skips the walk."""
    if not tagged:
        return _experiment_from_plain(d)
    return Experiment(
        project_id=d["project_id"],
        experiment_id=d["experiment_id"],
        display_name=d["display_name"],
        description=d["description"],
        status=_STATUSES.get(d["status"]) or Status(d["status"]),
        created_at=d["created_at"],
        started_at=d.get("started_at"),
        ended_at=d.get("ended_at"),
        hyperparameters=_mapping_from_wire(d.get("hyperparameters") or {}),
        environment=_mapping_from_wire(d.get("environment") or {}),
        source=_mapping_from_wire(d.get("source") or {}),
        tags=tuple(d.get("tags") or ()),
        metrics=_mapping_from_wire(d.get("metrics") or {}),
        ex_metrics=_mapping_from_wire(d.get("ex_metrics") or {}),
        stop_requested=bool(d.get("stop_requested", False)),
    )


def _experiment_from_plain(d: Json) -> Experiment:
    return Experiment(
        project_id=d["project_id"],
        experiment_id=d["experiment_id"],
        display_name=d["display_name"],
        description=d["description"],
        status=_STATUSES.get(d["status"]) or Status(d["status"]),
        created_at=d["created_at"],
        started_at=d.get("started_at"),
        ended_at=d.get("ended_at"),
        hyperparameters=d.get("hyperparameters") or {},
        environment=d.get("environment") or {},
        source=d.get("source") or {},
        tags=tuple(d.get("tags") or ()),
        metrics=d.get("metrics") or {},
        ex_metrics=d.get("ex_metrics") or {},
        stop_requested=bool(d.get("stop_requested", False)),
    )


# --- metric points ----------------------------------------------------------------------------
def summary_to_wire(s: MetricSummary) -> Json:
    return {
        "key": s.key,
        "phase": s.phase,
        "count": s.count,
        "last": encode_float(s.last),
        "min": encode_float(s.min),
        "max": encode_float(s.max),
        "last_iteration": s.last_iteration,
        "last_epoch": s.last_epoch,
    }


def summary_from_wire(d: Json) -> MetricSummary:
    return MetricSummary(
        key=d["key"],
        phase=d["phase"],
        count=d["count"],
        last=float(from_wire(d["last"])),
        min=float(from_wire(d["min"])),
        max=float(from_wire(d["max"])),
        last_iteration=d["last_iteration"],
        last_epoch=d.get("last_epoch"),
    )


def series_to_wire(s: Series) -> Json:
    """A series for charts: epochs of -1 ("no epoch") become null."""
    epochs: list[Any] = np.asarray(s.epochs, dtype=np.int64).tolist()
    if epochs and min(epochs) < 0:
        epochs = [None if e < 0 else e for e in epochs]
    return {
        "key": s.key,
        "phase": s.phase,
        "total": s.total,
        "downsampled": s.downsampled,
        "iterations": np.asarray(s.iterations, dtype=np.int64).tolist(),
        "epochs": epochs,
        "values": floats_to_wire(s.values),
    }


def series_from_wire(d: Json) -> Series:
    values = [v if isinstance(v, (int, float)) else from_wire(v) for v in d["values"]]
    return Series(
        key=d["key"],
        phase=d["phase"],
        iterations=np.asarray(d["iterations"], dtype=np.int64),
        epochs=np.asarray([-1 if e is None else e for e in d["epochs"]], dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
        total=d["total"],
        downsampled=d["downsampled"],
    )


def series_to_packed(s: Series) -> Json:
    """A series with its columns packed (exact to the bit, compact): for exports and HttpStore."""
    return {
        "key": s.key,
        "phase": s.phase,
        "total": s.total,
        "downsampled": s.downsampled,
        "n": len(s.iterations),
        "iterations": pack_array(s.iterations, "<i8"),
        "epochs": pack_array(s.epochs, "<i8"),
        "values": pack_array(s.values, "<f8"),
    }


def series_from_packed(d: Json) -> Series:
    n = d["n"]
    return Series(
        key=d["key"],
        phase=d["phase"],
        iterations=_unpack(d["iterations"], "<i8", n, "iterations"),
        epochs=_unpack(d["epochs"], "<i8", n, "epochs"),
        values=_unpack(d["values"], "<f8", n, "values"),
        total=d["total"],
        downsampled=d["downsampled"],
    )


_COLUMNS = (("iterations", "<i8"), ("epochs", "<i8"), ("values", "<f8"), ("times", "<f8"))


def chunk_to_wire(c: SeriesChunk) -> Json:
    body: Json = {"key": c.key, "phase": c.phase, "n": len(c)}
    for name, dtype in _COLUMNS:
        body[name] = pack_array(getattr(c, name), dtype)
    return body


def chunk_from_wire(d: Mapping[str, Any], field: str = "chunks") -> SeriesChunk:
    n = d["n"]
    columns = {name: _unpack(d[name], dtype, n, f"{field}.{name}") for name, dtype in _COLUMNS}
    return SeriesChunk(key=d["key"], phase=d["phase"], **columns)


def metric_batch_to_wire(b: MetricBatch) -> Json:
    return {"client_id": b.client_id, "seq": b.seq, "chunks": [chunk_to_wire(c) for c in b.chunks]}


def metric_batch_from_wire(d: Mapping[str, Any]) -> MetricBatch:
    chunks = tuple(chunk_from_wire(c, f"chunks[{i}]") for i, c in enumerate(d["chunks"]))
    return MetricBatch(client_id=d["client_id"], seq=d["seq"], chunks=chunks)


# --- weights, iteration metrics, charts -------------------------------------------------------
def link_to_wire(w: WeightsLink) -> Json:
    return {
        "weights_hash": w.weights_hash,
        "project_id": w.project_id,
        "experiment_id": w.experiment_id,
        "iteration": w.iteration,
        "epoch": w.epoch,
        "created_at": w.created_at,
    }


def link_from_wire(d: Json) -> WeightsLink:
    return WeightsLink(
        weights_hash=d["weights_hash"],
        project_id=d["project_id"],
        experiment_id=d["experiment_id"],
        iteration=d.get("iteration"),
        epoch=d.get("epoch"),
        created_at=d["created_at"],
    )


def iteration_metric_to_wire(m: IterationMetric) -> Json:
    return {
        "key": m.key,
        "iteration": m.iteration,
        "epoch": m.epoch,
        "value": to_wire(m.value),
        "weights_hash": m.weights_hash,
    }


def iteration_metric_from_wire(d: Json) -> IterationMetric:
    return IterationMetric(
        key=d["key"],
        iteration=d.get("iteration"),
        epoch=d.get("epoch"),
        value=from_wire(d["value"]),
        weights_hash=d["weights_hash"],
    )


def chart_spec_to_wire(s: ChartSpec) -> Json:
    return {
        "name": s.name,
        "scope": s.scope,
        "type": s.type,
        "x_name": s.x_name,
        "y_names": list(s.y_names),
        "x": to_wire(list(s.x)),
        "y": [to_wire(list(row)) for row in s.y],
    }


def chart_spec_from_wire(d: Json) -> ChartSpec:
    return ChartSpec(
        name=d["name"],
        scope=d["scope"],
        type=d["type"],
        x_name=d["x_name"],
        y_names=tuple(d["y_names"]),
        x=tuple(from_wire(d["x"])),
        y=tuple(tuple(float(v) for v in from_wire(row)) for row in d["y"]),
    )


def chart_to_wire(c: Chart) -> Json:
    return {
        "chart_id": c.chart_id,
        "project_id": c.project_id,
        "experiment_id": c.experiment_id,
        "updated_at": c.updated_at,
        "spec": chart_spec_to_wire(c.spec),
    }


def chart_from_wire(d: Json) -> Chart:
    return Chart(
        chart_id=d["chart_id"],
        project_id=d["project_id"],
        experiment_id=d["experiment_id"],
        spec=chart_spec_from_wire(d["spec"]),
        updated_at=d["updated_at"],
    )


# --- logs -------------------------------------------------------------------------------------
def log_line_to_wire(line: LogLine) -> Json:
    return {
        "seq": line.seq,
        "time": line.time,
        "stream": line.stream,
        "level": line.level,
        "message": line.message,
    }


def log_line_from_wire(d: Mapping[str, Any]) -> LogLine:
    return LogLine(
        time=d["time"],
        stream=d["stream"],
        level=d["level"],
        message=d["message"],
        seq=d.get("seq", 0),
    )


def log_batch_to_wire(b: LogBatch) -> Json:
    lines = [{k: v for k, v in log_line_to_wire(x).items() if k != "seq"} for x in b.lines]
    return {"client_id": b.client_id, "seq": b.seq, "lines": lines}


def log_batch_from_wire(d: Mapping[str, Any]) -> LogBatch:
    lines = tuple(log_line_from_wire(x) for x in d["lines"])
    return LogBatch(client_id=d["client_id"], seq=d["seq"], lines=lines)
