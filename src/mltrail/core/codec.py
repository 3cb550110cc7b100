"""Domain objects to and from their one JSON wire form: the REST API's bodies, the spool's files.

One module, used by the server to answer, by HttpStore to read the answers and by the SDK's
spool, so every side agrees by construction; the Python API renders the same shapes for people
(ISO times, plain floats). Non-finite floats travel tagged and big integers exactly (see
:mod:`mltrail.core.wire`); times are unix seconds; metric columns travel packed with
:func:`~mltrail.core.wire.pack_array`. Key names follow docs/architecture.md: a record's own
ids are ``<noun>_id``; references to a project or experiment are ``project`` / ``experiment``.
Metric points (series, chunks, batches) have their own module, :mod:`mltrail.core.series_codec`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from mltrail.core.artifacts import Artifact
from mltrail.core.jobs import Agent, HeartbeatReply, Job
from mltrail.core.liveness import Liveness
from mltrail.core.text import as_text, escape_text, unescape_text
from mltrail.core.types import (
    Chart,
    ChartSpec,
    ExMetrics,
    Experiment,
    ExperimentRef,
    Invitation,
    IterationMetric,
    LogBatch,
    LogLine,
    LogTail,
    Project,
    Status,
    Target,
    User,
    WeightsLink,
    assemble,
)
from mltrail.core.wire import (
    from_wire,
    parse_json,
    to_wire,
)

__all__ = ["parse_json"]  # and every *_to_wire / *_from_wire below

Json = dict[str, Any]


# --- projects, users --------------------------------------------------------------------------
def project_to_wire(p: Project) -> Json:
    return {
        "id": p.id,
        "display_name": p.display_name,
        "description": p.description,
        "created_at": p.created_at,
        "experiment_count": p.experiment_count,
        "last_activity": p.last_activity,
        "deleted_at": p.deleted_at,
    }


def project_from_wire(d: Json) -> Project:
    return Project(
        id=d["id"],
        display_name=d["display_name"],
        description=d["description"],
        created_at=d["created_at"],
        experiment_count=d.get("experiment_count", 0),
        last_activity=d.get("last_activity"),
        deleted_at=d.get("deleted_at"),
    )


def invitation_to_wire(i: Invitation) -> Json:
    return dataclasses.asdict(i)


def invitation_from_wire(d: Mapping[str, Any]) -> Invitation:
    return Invitation(
        project_id=d["project_id"],
        display_name=d["display_name"],
        invited_by=d.get("invited_by"),
        created_at=d["created_at"],
    )


def user_to_wire(u: User) -> Json:
    return {"id": u.id, "name": u.name, "is_admin": u.is_admin}


def user_from_wire(d: Json) -> User:
    return User(id=d["id"], name=d["name"], is_admin=d["is_admin"])


# --- experiments ------------------------------------------------------------------------------
_PLAIN = frozenset({str, int, bool, type(None)})
_STATUSES = {s.value: s for s in Status}
_STATUS_TEXT = {s: s.value for s in Status}  # Status(e.status) each time cost a microsecond


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


def experiment_record(e: Experiment, mapping: Callable[[Mapping[str, Any]], Json] = dict) -> Json:
    """An experiment's one shape, in the contract's key order; ``mapping`` converts its
    mapping fields (``dict`` for Python values, tagging for the wire)."""
    return {
        "project_id": e.project_id,
        "experiment_id": e.experiment_id,
        "display_name": e.display_name,
        "description": e.description,
        "status": _STATUS_TEXT.get(e.status) or Status(e.status).value,
        "created_at": e.created_at,
        "started_at": e.started_at,
        "ended_at": e.ended_at,
        "duration": e.duration,
        "hyperparameters": mapping(e.hyperparameters),
        "metrics": mapping(e.metrics),
        "ex_metrics": mapping(e.ex_metrics),
        "tags": list(e.tags),
        "environment": mapping(e.environment),
        "source": mapping(e.source),
        "stop_requested": e.stop_requested,
        "last_heartbeat": e.last_heartbeat,
        "notes": e.notes,
        "state": e.state,
        "deleted_at": e.deleted_at,
    }


def experiment_to_wire(e: Experiment) -> Json:
    return experiment_record(e, _mapping_to_wire)


def experiment_from_wire(d: Json, *, tagged: bool = True) -> Experiment:
    """An experiment from its wire form; ``tagged=False`` promises that no value in ``d``
    is a tagged float (a page whose body lacks ``"$float"``), which skips the walk."""
    mapping = _mapping_from_wire if tagged else _same
    return assemble(
        Experiment,
        {
            "project_id": d["project_id"],
            "experiment_id": d["experiment_id"],
            "display_name": d["display_name"],
            "description": d["description"],
            "status": _STATUSES.get(d["status"]) or Status(d["status"]),
            "created_at": d["created_at"],
            "started_at": d.get("started_at"),
            "ended_at": d.get("ended_at"),
            "hyperparameters": mapping(d.get("hyperparameters") or {}),
            "environment": mapping(d.get("environment") or {}),
            "source": mapping(d.get("source") or {}),
            "tags": tuple(d.get("tags") or ()),
            "metrics": mapping(d.get("metrics") or {}),
            "ex_metrics": mapping(d.get("ex_metrics") or {}),
            "stop_requested": bool(d.get("stop_requested", False)),
            "last_heartbeat": d.get("last_heartbeat"),
            "notes": d.get("notes") or "",
            "state": d.get("state") or "active",
            "deleted_at": d.get("deleted_at"),
        },
    )


def _same(d: Json) -> Json:
    return d


# --- targets and ex_ metrics (multi-target writes) ----------------------------------------------
def ref_to_wire(ref: ExperimentRef) -> dict[str, int]:
    """``{"project": p, "experiment": e}``: how a reference to an experiment is written."""
    return {"project": ref.project_id, "experiment": ref.experiment_id}


def ref_from_wire(d: Mapping[str, Any]) -> ExperimentRef:
    return ExperimentRef(d["project"], d["experiment"])


def target_to_wire(target: Target) -> Json:
    """An experiment reference, or ``{"weights_hash": h}`` for every experiment holding it."""
    if isinstance(target, ExperimentRef):
        return ref_to_wire(target)
    return {"weights_hash": str(target)}


def ex_metrics_to_wire(metrics: ExMetrics | Mapping[str, Any]) -> Json:
    """ex_ metrics as a JSON object; non-finite values tagged, ints and floats kept apart."""
    return to_wire(dict(metrics))


def updated_to_wire(refs: list[ExperimentRef]) -> Json:
    """The answer of a multi-target write: which experiments were written."""
    return {"ok": True, "updated": [ref_to_wire(r) for r in refs]}


def updated_from_wire(d: Json) -> list[ExperimentRef]:
    return [ref_from_wire(r) for r in d["updated"]]


# --- weights, iteration metrics, charts -------------------------------------------------------
def link_to_wire(w: WeightsLink) -> Json:
    return {
        "weights_hash": w.weights_hash,
        "project": w.project_id,
        "experiment": w.experiment_id,
        "iteration": w.iteration,
        "epoch": w.epoch,
        "created_at": w.created_at,
        "checkpoint": w.checkpoint,
    }


def link_from_wire(d: Json) -> WeightsLink:
    return WeightsLink(
        weights_hash=d["weights_hash"],
        project_id=d["project"],
        experiment_id=d["experiment"],
        iteration=d.get("iteration"),
        epoch=d.get("epoch"),
        created_at=d["created_at"],
        checkpoint=d.get("checkpoint"),
    )


_ARTIFACT_FIELDS = ("path", "sha256", "size", "media_type", "created_at", "iteration", "epoch")


def artifact_to_wire(a: Artifact) -> Json:
    """An artifact's record; ``project`` / ``experiment`` reference its experiment."""
    record: Json = {"project": a.project_id, "experiment": a.experiment_id}
    record.update({name: getattr(a, name) for name in _ARTIFACT_FIELDS})
    record["weights_hash"] = a.weights_hash
    return record


def artifact_from_wire(d: Json) -> Artifact:
    return Artifact(
        project_id=d["project"],
        experiment_id=d["experiment"],
        path=d["path"],
        sha256=d["sha256"],
        size=d["size"],
        media_type=d["media_type"],
        created_at=d["created_at"],
        iteration=d.get("iteration"),
        epoch=d.get("epoch"),
        weights_hash=d.get("weights_hash"),
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
        "project": c.project_id,
        "experiment": c.experiment_id,
        "updated_at": c.updated_at,
        "spec": chart_spec_to_wire(c.spec),
    }


def chart_from_wire(d: Json) -> Chart:
    return Chart(
        chart_id=d["chart_id"],
        project_id=d["project"],
        experiment_id=d["experiment"],
        spec=chart_spec_from_wire(d["spec"]),
        updated_at=d["updated_at"],
    )


# --- logs -------------------------------------------------------------------------------------
def log_line_to_wire(line: LogLine) -> Json:
    """A line as JSON; a message holding NUL or invalid UTF-8 travels escaped, with
    ``"escaped": true`` (see :mod:`mltrail.core.text`), so every body is strict UTF-8."""
    message, escaped = escape_text(as_text(line.message))
    wire: Json = {
        "seq": line.seq,
        "time": line.time,
        "stream": line.stream,
        "level": line.level,
        "message": message,
    }
    if escaped:
        wire["escaped"] = True
    return wire


def log_line_from_wire(d: Mapping[str, Any]) -> LogLine:
    message = d["message"]
    return LogLine(
        time=d["time"],
        stream=d["stream"],
        level=d["level"],
        message=unescape_text(message, True) if d.get("escaped") else message,
        seq=d.get("seq", 0),
    )


def log_batch_to_wire(b: LogBatch) -> Json:
    lines = [{k: v for k, v in log_line_to_wire(x).items() if k != "seq"} for x in b.lines]
    return {"client_id": b.client_id, "seq": b.seq, "lines": lines}


def log_batch_from_wire(d: Mapping[str, Any]) -> LogBatch:
    lines = tuple(log_line_from_wire(x) for x in d["lines"])
    return LogBatch(client_id=d["client_id"], seq=d["seq"], lines=lines)


def log_tail_to_wire(tail: LogTail) -> Json:
    return {
        "lines": [log_line_to_wire(x) for x in tail.lines],
        "status": Status(tail.status).value,
        "last_seq": tail.last_seq,
        "last_heartbeat": tail.last_heartbeat,
    }


def log_tail_from_wire(d: Json) -> LogTail:
    lines = tuple(log_line_from_wire(x) for x in d["lines"])
    return LogTail(lines, Status(d["status"]), int(d["last_seq"]), d.get("last_heartbeat"))


def liveness_to_wire(live: Liveness) -> Json:
    return {
        "status": Status(live.status).value,
        "last_heartbeat": live.last_heartbeat,
        "crash_after": live.crash_after,
    }


def liveness_from_wire(d: Mapping[str, Any]) -> Liveness:
    return Liveness(Status(d["status"]), float(d["last_heartbeat"]), float(d["crash_after"]))


# --- jobs and agents ----------------------------------------------------------------------------
def job_to_wire(job: Job) -> Json:
    """A job as JSON: the dataclass fields, status as its value, command as a list."""
    return {**dataclasses.asdict(job), "status": job.status.value, "command": list(job.command)}


def job_from_wire(d: Mapping[str, Any]) -> Job:
    names = {f.name for f in dataclasses.fields(Job)}
    fields = {k: v for k, v in d.items() if k in names}
    return Job(**{**fields, "status": Status(d["status"]), "command": tuple(d["command"])})


def agent_to_wire(agent: Agent) -> Json:
    return {
        **dataclasses.asdict(agent),
        "queues": list(agent.queues),
        "projects": list(agent.projects),
    }


def agent_from_wire(d: Mapping[str, Any]) -> Agent:
    names = {f.name for f in dataclasses.fields(Agent)}
    fields = {k: v for k, v in d.items() if k in names}
    projects = tuple(d.get("projects") or ())
    return Agent(**{**fields, "queues": tuple(d["queues"]), "projects": projects})


def heartbeat_to_wire(reply: HeartbeatReply) -> Json:
    return {"stop_requested": reply.stop_requested, "lease_lost": reply.lease_lost}


def heartbeat_from_wire(d: Mapping[str, Any]) -> HeartbeatReply:
    return HeartbeatReply(stop_requested=d["stop_requested"], lease_lost=d["lease_lost"])
