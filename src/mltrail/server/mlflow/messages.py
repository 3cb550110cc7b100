"""The request message of an MLflow call: query parameters for GET, a JSON object otherwise.

The MLflow client sends GET calls' fields as query parameters (a repeated field as the same
name repeated) and every other call's as a JSON body; a handler reads both the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from mltrail.core.errors import ValidationError
from mltrail.core.wire import parse_json
from mltrail.server.mlflow import shapes
from mltrail.server.mlflow.auth import StoreDep
from mltrail.store.base import Store


class Message:
    """The fields of one request, with the accessors the handlers parse them through.

    A JSON body is parsed on the first access, in the handler, after its token is checked
    (:mod:`~mltrail.server.mlflow.auth`): a body from a caller without a valid token is never
    parsed (up to 64 MiB of JSON, a CPU second), and the parse leaves the event loop."""

    def __init__(self, fields: Mapping[str, Any] | None = None, body: bytes = b"") -> None:
        self._fields = fields
        self._body = body
        # a query gives a repeated field sent once as a single value; a JSON body gives a list
        self._query = fields is not None

    @property
    def fields(self) -> Mapping[str, Any]:
        if self._fields is None:
            self._fields, self._body = _parse_body(self._body), b""
        return self._fields

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def items(self, name: str, max_items: int | None = None) -> list[Any]:
        """A repeated field (absent: empty), at most ``max_items`` long: a JSON list in a body
        (anything else is refused, as MLflow's ``_assert_array`` does), a query parameter
        given once or repeated."""
        value = self.fields.get(name)
        if value is None:
            return []
        if not isinstance(value, list) and not self._query:
            raise ValidationError(f"must be a list, got {type(value).__name__}", name)
        found = value if isinstance(value, list) else [value]
        if max_items is not None and len(found) > max_items:
            raise ValidationError(f"must have at most {max_items} items, got {len(found)}", name)
        return found

    def run(self) -> Any:
        """The run a call names: ``run_id``, or the older ``run_uuid``."""
        return shapes.parse_run_id(self.get("run_id") or self.get("run_uuid"))


async def read_message(request: Request) -> Message:
    """The request's fields: its query for GET and DELETE, else its body (parsed later)."""
    if request.method in ("GET", "DELETE"):
        query = request.query_params
        fields: dict[str, Any] = {}
        for name in query:
            values = query.getlist(name)
            fields[name] = values[0] if len(values) == 1 else values
        return Message(fields)
    try:
        return Message(body=await request.body())
    except ClientDisconnect:  # gone before its body ended: bad input, not a traceback and a 500
        raise ValidationError("the connection ended before the body did", "body") from None


def _parse_body(raw: bytes) -> Mapping[str, Any]:
    if not raw.strip():
        return {}
    try:
        parsed = parse_json(raw)  # orjson unless the body holds what only json keeps exact
    except ValueError:
        raise ValidationError("is not valid JSON", "body") from None
    if not isinstance(parsed, dict):
        raise ValidationError(f"must be a JSON object, got {type(parsed).__name__}", "body")
    return parsed


MessageDep = Annotated[Message, Depends(read_message)]


# A route's path parameters are read from the request by a dependency: declared as plain ``str``
# parameters they made FastAPI check whether ``str`` is a pydantic.v1 model, importing pydantic.v1
# (1.5 MiB resident) into a server only MLflow clients talk to. The values are the same strings.


async def _path(request: Request) -> str:
    return str(request.path_params["path"])


async def _model(request: Request) -> str:
    return str(request.path_params["model"])


PathDep = Annotated[str, Depends(_path)]
ModelDep = Annotated[str, Depends(_model)]


def project_of(store: Store, experiment_id: Any, field: str = "experiment_id") -> int:
    """The mltrail project an MLflow ``experiment_id`` names; ``"0"`` (MLflow's Default, which
    the fluent client logs to when no experiment is set) is the user's project "Default",
    created on first use."""
    pid = shapes.parse_experiment_id(experiment_id, field)
    if pid != 0:
        return pid
    found = store.find_project(shapes.DEFAULT_EXPERIMENT_NAME)
    return (found or store.create_project(shapes.DEFAULT_EXPERIMENT_NAME)).id


__all__ = ["Message", "MessageDep", "ModelDep", "PathDep", "StoreDep", "project_of", "read_message"]
