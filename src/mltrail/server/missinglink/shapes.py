"""Pure translation between the MissingLink client's JSON shapes and mltrail's values.

No behaviour lives here: the client's shapes in, checked values out (by the parse constructors
every other entrance uses), records back in the client's shapes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from mltrail.api import experiment_dict
from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import ChartSpec, Experiment, LogLine

# the client reads a run's logs from logs/read once its status is one of these, else it
# follows the live stream; MissingLink had no "crashed", which is final: it reads as failed
_CLIENT_STATUS = {"crashed": "failed"}
_X_FIELDS = ("x_int", "x_float", "x_str")


def experiment_shape(experiment: Experiment) -> dict[str, Any]:
    """An experiment as the client lists it: fixed fields plus ``values`` as key/val pairs.

    ``values`` holds the hyperparameters, the last value of every metric (``phase/key``) and
    the ``ex_`` metrics, in that order, as mltrail's own list returns them.
    """
    e = experiment_dict(experiment)
    values = [*e["hyperparameters"].items(), *e["metrics"].items(), *e["ex_metrics"].items()]
    return {
        "experiment_id": e["experiment_id"],
        "project_id": e["project_id"],
        "created_at": e["created_at"],
        "display_name": e["display_name"],
        "description": e["description"],
        "status": _CLIENT_STATUS.get(e["status"], e["status"]),
        "values": [{"key": key, "val": val} for key, val in values],
    }


def client_chart_id(name: str) -> str:
    """The chart id the client puts in the path: sha256 of the lower-cased, stripped UTF-8."""
    return hashlib.sha256(name.encode("utf-8").lower().strip()).hexdigest()


def chart_spec(body: Any, chart_id: str) -> ChartSpec:
    """The client's chart body, checked by the parse constructor ``update_chart`` uses.

    The client sends ``{"name", "labels": [x name, y name...], "x_int"|"x_float"|"x_str",
    "y_data" (flattened row by row), "chart", "scope"}``; a multi-line chart's rows are
    rebuilt from the number of values per x.

    Raises:
        ValidationError: a body that is not that shape, or a path id of another name.
    """
    name, labels, xs = _chart_name_labels_x(body, chart_id)
    ys = body.get("y_data")
    if isinstance(xs, list) and isinstance(ys, list) and xs and len(ys) % len(xs) == 0:
        width = len(ys) // len(xs)  # the client flattened one row of `width` values per x
        ys = ys if width == 1 else [ys[i * width : (i + 1) * width] for i in range(len(xs))]
    return validation.chart(
        name,
        chart_x_name=labels[0],
        chart_y_name=labels[1] if len(labels) == 2 else labels[1:],
        chart_scope=body.get("scope", "test"),
        chart_type=body.get("chart", "line"),
        chart_x=xs,
        chart_y=ys,
    )


def _chart_name_labels_x(body: Any, chart_id: str) -> tuple[str, list[Any], Any]:
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body")
    name = body.get("name")
    if not isinstance(name, str):
        raise ValidationError("is required: the chart's name", "name")
    if chart_id != client_chart_id(name):
        raise ValidationError(f"is not the id of the chart named {name!r}", "chart_id")
    x_fields = [f for f in _X_FIELDS if f in body]
    if len(x_fields) != 1:
        raise ValidationError(f"give exactly one of {', '.join(_X_FIELDS)}", "x")
    labels = body.get("labels")
    if not (isinstance(labels, list) and len(labels) >= 2):
        raise ValidationError("must be [x name, y name, ...]", "labels")
    return name, labels, body[x_fields[0]]


def log_timestamp(line: LogLine) -> str:
    """The line's time as the client shows it and pages by: UTC ISO 8601 to the microsecond.

    Strings of this one format sort as their times do.
    """
    return datetime.fromtimestamp(line.time, timezone.utc).isoformat(timespec="microseconds")


def parse_log_timestamp(value: str) -> str:
    """A ``timestamp`` paging cursor, normalised to :func:`log_timestamp`'s format.

    Raises:
        ValidationError: not an ISO 8601 time.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"must be a log line's timestamp (ISO 8601), got {value!r}", "timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat(timespec="microseconds")


def log_record(line: LogLine, time_key: str = "timestamp") -> dict[str, Any]:
    """A line as ``logs/read`` returns it; the live stream carries it with ``time_key="ts"``
    (Firebase's ``put`` of one child)."""
    return {
        time_key: log_timestamp(line),
        "category": line.stream,
        "level": line.level,
        "message": line.message,
    }
