"""Pure translation between MLflow's entities and mltrail's values (``docs/mlflow.md``).

No behaviour lives here: MLflow's ids, statuses, metric names and tags in, mltrail's typed values
out, and mltrail's records back in MLflow's JSON shapes. The MLflow client sends int64 fields as
strings or numbers alike, so both are accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import orjson

from mltrail.core import validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import Experiment, ExperimentRef, MetricSummary, Phase, Project, Status

DEFAULT_EXPERIMENT_ID = "0"
"""MLflow's "Default" experiment; mltrail maps it onto the user's project named "Default"."""
DEFAULT_EXPERIMENT_NAME = "Default"

MAX_KEY_LEN = 250  # MLflow's MAX_ENTITY_KEY_LENGTH
# mltrail keeps times as float unix seconds: a millisecond time comes back exact up to +-1e15 ms
# (year 33658); MLflow's int64 reaches 9.2e18, which float seconds would round (2**63-1 read
# back as 2**63), so a time past the bound is refused rather than stored changed
MAX_MILLIS = 10**15
MAX_PARAM_VAL_LEN = 6000
MAX_TAG_VAL_LEN = 8000

RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"
# tags kept as mltrail's source tracking fields, both ways
SOURCE_TAGS = {
    "mlflow.source.git.commit": "commit",
    "mlflow.source.git.branch": "branch",
    "mlflow.source.git.repoURL": "remote",
}

_RUN_ID = re.compile(r"^([1-9][0-9]{0,17})-([1-9][0-9]{0,17})$")
_EXPERIMENT_ID = re.compile(r"^(0|[1-9][0-9]{0,17})$")
# MLflow's own rule for metric, param and tag keys (mlflow/utils/validation.py): "=" is never
# in a key, so a tag is stored as the mltrail tag "key=value" without ambiguity
_KEY = re.compile(r"^[/\w.\- :]+$")

STATUS_TO_MLFLOW = {
    Status.QUEUED: "SCHEDULED",
    Status.RUNNING: "RUNNING",
    Status.DONE: "FINISHED",
    Status.FAILED: "FAILED",
    Status.STOPPED: "KILLED",
    Status.CRASHED: "FAILED",  # its heartbeats stopped: MLflow has no such status
}
STATUS_FROM_MLFLOW = {
    "SCHEDULED": Status.QUEUED,
    "RUNNING": Status.RUNNING,
    "FINISHED": Status.DONE,
    "FAILED": Status.FAILED,
    "KILLED": Status.STOPPED,
}
_OTHER_PHASES = tuple(p.value for p in Phase if p is not Phase.TRAIN)


# --- ids -------------------------------------------------------------------------------------
def run_id(ref: ExperimentRef | Experiment) -> str:
    """An mltrail experiment's MLflow ``run_id``: ``"<project>-<experiment>"``."""
    return f"{ref.project_id}-{ref.experiment_id}"


def parse_run_id(value: Any, field: str = "run_id") -> ExperimentRef:
    """The experiment a ``run_id`` names.

    Raises:
        ValidationError: missing, or not ``"<project>-<experiment>"``.
    """
    text = required_text(value, field, MAX_KEY_LEN)
    match = _RUN_ID.match(text)
    if match is None:
        raise ValidationError(
            f"must be an mltrail run id '<project>-<experiment>' such as '3-12', got {text!r}",
            field,
        )
    return ExperimentRef(int(match[1]), int(match[2]))


def parse_experiment_id(value: Any, field: str = "experiment_id") -> int:
    """An MLflow ``experiment_id``: an mltrail project id, or 0 for MLflow's Default (0)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    text = required_text(text, field, 20)
    if _EXPERIMENT_ID.match(text) is None:
        raise ValidationError(f"must be an experiment id (a number), got {text!r}", field)
    return int(text)


def artifact_uri(ref: ExperimentRef | Experiment) -> str:
    """Where the MLflow client sends a run's artifacts: the ``mlflow-artifacts`` proxy."""
    return f"mlflow-artifacts:/{ref.project_id}/{run_id(ref)}/artifacts"


# --- request fields --------------------------------------------------------------------------
def required_text(value: Any, field: str, max_len: int) -> str:
    """A required string field (MLflow's "Missing value for required parameter")."""
    if value is None or value == "":
        raise ValidationError("is required", field)
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field)
    if len(value) > max_len:
        raise ValidationError(f"must be at most {max_len} characters, got {len(value)}", field)
    return value


def key(value: Any, field: str = "key") -> str:
    """A metric, param or tag key by MLflow's rule: up to 250 of letters, digits, ``_ - . :
    /`` and spaces, not a path going up."""
    text = required_text(value, field, MAX_KEY_LEN)
    if _KEY.match(text) is None or any(p == ".." for p in text.split("/")) or text[0] == "/":
        raise ValidationError(
            f"{text!r} is not a valid key: use letters, digits, '_', '-', '.', ' ', ':' and '/'",
            field,
        )
    return text


def text_value(value: Any, field: str, max_len: int) -> str:
    """A param or tag value: a string (numbers and booleans rendered as MLflow does)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field)
    if len(value) > max_len:
        raise ValidationError(f"must be at most {max_len} characters, got {len(value)}", field)
    return value


def integer(value: Any, field: str, default: int | None = None) -> int:
    """An int64 field, sent as a number or a string."""
    if value is None or value == "":
        if default is None:
            raise ValidationError("is required", field)
        return default
    number = validation.require_int(value, field)
    if not -(2**63) <= number < 2**63:
        raise ValidationError("must fit in 64 bits", field)
    return number


def millis(value: Any, field: str) -> int:
    """A time in unix milliseconds, within what mltrail stores exactly (:data:`MAX_MILLIS`)."""
    found = integer(value, field)
    if not -MAX_MILLIS <= found <= MAX_MILLIS:
        raise ValidationError(
            f"must be a unix time in milliseconds within +-{MAX_MILLIS} (what mltrail stores "
            f"exactly), got {found}",
            field,
        )
    return found


def number(value: Any, field: str) -> float:
    """A metric value: a number, or protobuf JSON's "NaN" / "Infinity" / "-Infinity"."""
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    if value is None:
        raise ValidationError("is required", field)
    return validation.metric_value(value, field)


def page_offset(token: Any) -> int:
    """A ``page_token`` this server gave: the offset of the next page."""
    if token in (None, ""):
        return 0
    if not (isinstance(token, str) and token.isdigit() and len(token) <= 18):
        raise ValidationError("must be a next_page_token from the previous page", "page_token")
    return int(token)


def status(value: Any, field: str = "status") -> Status:
    """An MLflow run status as mltrail's."""
    found = STATUS_FROM_MLFLOW.get(value) if isinstance(value, str) else None
    if found is None:
        allowed = ", ".join(STATUS_FROM_MLFLOW)
        raise ValidationError(f"must be one of {allowed}, got {value!r}", field)
    return found


# --- metric names ----------------------------------------------------------------------------
def series_of(name: str) -> tuple[str, str]:
    """An MLflow metric key as mltrail's (phase, key): ``validation/...`` and ``test/...`` name
    those phases, every other key is a ``train`` series of that exact name."""
    head, sep, rest = name.partition("/")
    if sep and rest and head in _OTHER_PHASES:
        return head, rest
    return Phase.TRAIN.value, name


def metric_name(phase: str, key_: str) -> str:
    """Inverse of :func:`series_of`: ``train`` keys as they are, others ``phase/key``."""
    return key_ if phase == Phase.TRAIN.value else f"{phase}/{key_}"


# --- tags ------------------------------------------------------------------------------------
def tag_label(key_: str, value: str) -> str:
    """An MLflow tag as an mltrail tag: ``key=value``, or ``key`` alone for an empty value."""
    return f"{key_}={value}" if value else key_


def label_tag(label: str) -> tuple[str, str]:
    """Inverse of :func:`tag_label` (an mltrail tag without ``=`` has an empty value)."""
    key_, _, value = label.partition("=")
    return key_, value


def with_tags(labels: Iterable[str], changes: Mapping[str, str | None]) -> list[str]:
    """``labels`` with MLflow tags set (a value) or deleted (None), order kept."""
    kept = [t for t in labels if label_tag(t)[0] not in changes]
    return kept + [tag_label(k, v) for k, v in changes.items() if v is not None]


def params_text(value: Any) -> str:
    """A hyperparameter as an MLflow param (a string): strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


# --- records ---------------------------------------------------------------------------------
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_float(value: float) -> float | str:
    """A metric value as protobuf's JSON writes it: non-finite ones as "NaN" / "Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NON_FINITE[value]


def json_floats(values: np.ndarray) -> list[float | str]:
    """:func:`json_float` of a column, at numpy speed when every value is finite."""
    out: list[float | str] = values.tolist()
    if not np.isfinite(values).all():
        out = [json_float(v) for v in out]  # type: ignore[arg-type]
    return out


def history_json(name: str, values: np.ndarray, millis: np.ndarray, steps: np.ndarray) -> bytes:
    """get-history's answer, ``{"metrics": [Metric, ...]}``, as the JSON orjson writes for the
    records of :func:`json_floats` of ``values``, built a column at a time: each column is one
    orjson call split into its numbers, and the points are one join of text (a dict per point,
    then orjson over them, took 413 million instructions for 100,000 points, this 216; a join
    of bytes instead of text was slower than the dicts).
    """
    if not len(values):
        return b'{"metrics":[]}'
    point = '},{"key":' + orjson.dumps(name).decode() + ',"value":'
    parts = [point, "", ',"timestamp":', "", ',"step":', ""] * len(values)
    parts[1::6] = json_texts(values if np.isfinite(values).all() else json_floats(values))
    parts[3::6] = json_texts(millis)
    parts[5::6] = json_texts(steps)
    parts[0] = point[2:]  # no "}," before the first point
    return ('{"metrics":[' + "".join(parts) + "}]}").encode()


def json_texts(column: np.ndarray | list[float | str]) -> list[str]:
    """Each item's JSON text (numbers, or protobuf's "NaN" and "Infinity": none holds a comma)."""
    return orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode().split(",")


def experiment_shape(project: Project) -> dict[str, Any]:
    """An mltrail project as an MLflow experiment."""
    millis = to_millis(project.last_activity or project.created_at)
    tags = [{"key": NOTE_TAG, "value": project.description}] if project.description else []
    return {
        "experiment_id": str(project.id),
        "name": project.display_name,
        "artifact_location": f"mlflow-artifacts:/{project.id}",
        "lifecycle_stage": "active" if project.deleted_at is None else "deleted",
        "creation_time": to_millis(project.created_at),
        "last_update_time": millis,
        "tags": tags,
    }


def run_info(e: Experiment) -> dict[str, Any]:
    """The ``RunInfo`` of an mltrail experiment."""
    rid = run_id(e)
    info: dict[str, Any] = {
        "run_id": rid,
        "run_uuid": rid,
        "run_name": e.display_name,
        "experiment_id": str(e.project_id),
        "user_id": str(e.environment.get("user", "")),
        "status": STATUS_TO_MLFLOW[e.status],  # a str enum: its value finds it too
        "start_time": to_millis(e.started_at or e.created_at),
        "artifact_uri": artifact_uri(e),  # not e.ref: a search page builds 1,000 of these
        # MLflow has two stages: an archived run is hidden from lists as a deleted one is
        "lifecycle_stage": "active" if e.state == "active" else "deleted",
    }
    if e.ended_at is not None:
        info["end_time"] = to_millis(e.ended_at)
    return info


def run_shape(e: Experiment, series: list[MetricSummary] | None = None) -> dict[str, Any]:
    """A ``Run``: info, and data with the latest metric values, params and tags.

    ``series`` (the experiment's summaries) gives each metric's step; without it (a search
    page) the step is 0, where MLflow's own search gives each metric's latest step (a
    difference ``docs/mlflow.md`` lists: a page's experiments carry no steps).
    """
    millis = to_millis(e.ended_at or e.started_at or e.created_at)
    steps = {f"{s.phase}/{s.key}": s.last_iteration for s in series} if series else {}
    metrics = [
        {
            "key": name[_TRAIN_PREFIX:] if name.startswith("train/") else name,
            "value": value if math.isfinite(value) else json_float(value),
            "timestamp": millis,
            "step": steps.get(name, 0),
        }
        for name, value in e.metrics.items()  # "<phase>/<key>": metric_name's inverse
    ]
    for name, ex_value in e.ex_metrics.items() if e.ex_metrics else ():
        if isinstance(ex_value, (int, float)) and not isinstance(ex_value, bool):
            number = json_float(float(ex_value))
            metrics.append({"key": name, "value": number, "timestamp": millis, "step": 0})
    params = [
        {"key": k, "value": v if isinstance(v, str) else json.dumps(v)}  # params_text
        for k, v in e.hyperparameters.items()
    ]
    return {
        "info": run_info(e),
        "data": {"metrics": metrics, "params": params, "tags": run_tags(e)},
        "inputs": {},
    }


_TRAIN_PREFIX = len(f"{Phase.TRAIN.value}/")


def run_tags(e: Experiment) -> list[dict[str, str]]:
    """The run's MLflow tags: its name, description, source fields and mltrail tags."""
    return [{"key": k, "value": v} for k, v in tag_map(e).items()]


def tag_map(e: Experiment) -> dict[str, str]:
    """:func:`run_tags` as a mapping of keys to values."""
    tags = {RUN_NAME_TAG: e.display_name}
    if e.description:
        tags[NOTE_TAG] = e.description
    if e.source:  # most runs have none: a search page asks 1,000 times
        for tag, field in SOURCE_TAGS.items():
            if e.source.get(field):
                tags[tag] = str(e.source[field])
    if e.tags:
        tags.update(label_tag(t) for t in e.tags)
    return tags


def to_millis(seconds: float | None) -> int:
    """Unix seconds as whole milliseconds (0 for none)."""
    return 0 if seconds is None else round(seconds * 1000)


def label_changes(tags: Mapping[str, str | None]) -> dict[str, str | None]:
    """The tags of ``tags`` kept as mltrail tags (not mapped onto a field of their own)."""
    mapped = {RUN_NAME_TAG, NOTE_TAG, *SOURCE_TAGS}
    return {k: v for k, v in tags.items() if k not in mapped}


def tag_changes(tags: Mapping[str, str | None], labels: Iterable[str] = ()) -> dict[str, Any]:
    """``update_experiment`` arguments setting (a value) or deleting (None) MLflow tags.

    ``labels`` are the run's current mltrail tags, needed only when :func:`label_changes` of
    ``tags`` is not empty.
    """
    changes: dict[str, Any] = {}
    if tags.get(RUN_NAME_TAG):
        changes["display_name"] = tags[RUN_NAME_TAG]
    if NOTE_TAG in tags:
        changes["description"] = tags[NOTE_TAG] or ""
    source = {field: tags[tag] for tag, field in SOURCE_TAGS.items() if tag in tags}
    if source:
        changes["source"] = source
    others = label_changes(tags)
    if others:
        changes["tags"] = with_tags(labels, others)
    return changes


def tag_pairs(items: Iterable[Any], field: str = "tags") -> dict[str, str]:
    """``[{"key", "value"}]`` as checked keys to values (MLflow's tag limits)."""
    found: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValidationError("must be an object with key and value", f"{field}[{i}]")
        name = key(item.get("key"), f"{field}[{i}].key")
        found[name] = text_value(item.get("value"), f"{field}[{i}].value", MAX_TAG_VAL_LEN)
    return found
