"""Spool records: each kind of unsent batch as a JSON-ready dict, read back and sent to a store.

A record is what one spool file holds besides where it belongs (see :mod:`mltrail.sdk.spool`):
``kind`` and the batch in the REST API's wire form (:mod:`mltrail.core.codec`), so a batch
replayed twice is still stored once (its ``(client_id, seq)``). :func:`read_record` checks a
whole file before anything is sent: a file that cannot be a record raises
:class:`MalformedRecord` (and is set aside by the replay), never a ``KeyError`` halfway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mltrail.core import codec, series_codec
from mltrail.core.types import LogBatch, MetricBatch, Status
from mltrail.core.wire import parse_json

if TYPE_CHECKING:
    from mltrail.store.base import Store

SPOOL_VERSION = 3  # 1: log lines as [time, stream, level, message] lists; 3: offline runs

_Send = Callable[["Store", int, int], int]


class MalformedRecord(ValueError):
    """A spool file that is not a record this mltrail can send (unreadable, or missing fields)."""


@dataclass(frozen=True)
class Record:
    """One spooled batch, checked and ready to send.

    Attributes:
        kind: ``metrics``, ``logs``, ``link``, ``status`` or ``artifact``.
        target: where it belongs (see ``spool.Target``).
        project_id / experiment_id: the experiment, or ``None`` for a run started offline
            that had no number yet (``run`` names it then).
        run: the offline run's client-generated id (``None`` for a numbered experiment).
        send: stores the batch in experiment ``(p, e)``; returns points or lines stored.
    """

    kind: str
    target: str
    project_id: int | None
    experiment_id: int | None
    run: str | None
    send: _Send


# --- writing --------------------------------------------------------------------------------------
def encode_metrics(batch: MetricBatch) -> dict[str, Any]:
    """A metric batch as a JSON-ready record: its wire form, arrays packed exactly."""
    return {"kind": "metrics", **series_codec.metric_batch_to_wire(batch)}


def encode_logs(batch: LogBatch) -> dict[str, Any]:
    return {"kind": "logs", **codec.log_batch_to_wire(batch)}


def encode_link(weights_hash: str, iteration: int | None, epoch: int | None) -> dict[str, Any]:
    return {"kind": "link", "weights_hash": weights_hash, "iteration": iteration, "epoch": epoch}


def encode_status(status: Status) -> dict[str, Any]:
    return {"kind": "status", "status": Status(status).value}


# --- reading --------------------------------------------------------------------------------------
def decode_metrics(body: dict[str, Any]) -> MetricBatch:
    return series_codec.metric_batch_from_wire(body)


def decode_logs(body: dict[str, Any]) -> LogBatch:
    if body.get("version", SPOOL_VERSION) < 2:  # written by an older mltrail
        keys = ("time", "stream", "level", "message")
        body = {**body, "lines": [dict(zip(keys, line, strict=True)) for line in body["lines"]]}
    return codec.log_batch_from_wire(body)


def read_record(data: bytes) -> Record:
    """A spool file's bytes as a checked :class:`Record`.

    Raises:
        MalformedRecord: not JSON, not an object, or a field missing or of the wrong type.
    """
    try:
        body = parse_json(data)
    except ValueError as exc:
        raise MalformedRecord(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRecord(f"not a JSON object but {type(body).__name__}")
    try:
        return _record(body)
    except MalformedRecord:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise MalformedRecord(f"{body.get('kind', 'unknown')} record: {what}") from None


def _record(body: dict[str, Any]) -> Record:
    version = body.get("version", 1)
    if not isinstance(version, int) or version > SPOOL_VERSION:
        raise MalformedRecord(f"spool version {version!r} is newer than this mltrail's")
    run = body.get("run")
    p, e = body.get("project_id"), body.get("experiment_id")
    if run is None:
        p, e = _id(p, "project_id"), _id(e, "experiment_id")
    elif not isinstance(run, str) or not run:
        raise MalformedRecord(f"run must be a run id, got {run!r}")
    target = body["target"]
    if not isinstance(target, str):
        raise MalformedRecord(f"target must be a string, got {target!r}")
    kind = body["kind"]
    send = _SENDERS.get(kind)
    if send is None:
        raise MalformedRecord(f"unknown record kind {kind!r}")
    return Record(kind, target, p, e, run, send(body))


def _id(value: Any, field: str) -> int:
    if type(value) is not int or value < 1:
        raise MalformedRecord(f"{field} must be a positive integer, got {value!r}")
    return value


def _metrics(body: dict[str, Any]) -> _Send:
    batch = decode_metrics(body)
    return lambda store, p, e: store.append_points(p, e, batch)


def _logs(body: dict[str, Any]) -> _Send:
    batch = decode_logs(body)
    return lambda store, p, e: store.append_logs(p, e, batch)


def _link(body: dict[str, Any]) -> _Send:
    weights_hash, iteration, epoch = body["weights_hash"], body["iteration"], body["epoch"]

    def send(store: Store, p: int, e: int) -> int:
        store.link_weights_hash(p, e, weights_hash, iteration=iteration, epoch=epoch)
        return 0

    return send


def _status(body: dict[str, Any]) -> _Send:
    status = Status(body["status"])

    def send(store: Store, p: int, e: int) -> int:
        store.record_status(p, e, status)
        return 0

    return send


def _artifact(body: dict[str, Any]) -> _Send:
    from mltrail.sdk.uploads import read_upload  # a reference to a kept file, never its bytes

    item = read_upload(body)
    return lambda store, p, e: _send_artifact(store, p, e, item)


def _send_artifact(store: Store, p: int, e: int, item: Any) -> int:
    from mltrail.sdk.uploads import apply_upload

    return apply_upload(store, p, e, item)


_SENDERS: dict[str, Callable[[dict[str, Any]], _Send]] = {
    "metrics": _metrics,
    "logs": _logs,
    "link": _link,
    "status": _status,
    "artifact": _artifact,
}
