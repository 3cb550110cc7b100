"""HttpStore: the Store interface over a mltrail server's REST API (httpx).

It only carries calls: behaviour lives in the server's SqlStore, so embedded and server mode
match. Errors the server sends come back as the same :mod:`mltrail.core.errors` classes.
Requests that are safe to repeat (reads, idempotent batch appends, set-style writes) are retried
with backoff on connection faults and 502/503/504; creates are retried only when the request was
never sent (connection refused). Light on purpose: httpx and orjson, no FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from mltrail.core import codec
from mltrail.core.errors import MltrailError, TransportError, error_from_dict
from mltrail.core.types import (
    Chart,
    ChartSpec,
    Experiment,
    ExperimentRef,
    IterationMetric,
    JsonScalar,
    LogBatch,
    LogLine,
    MetricBatch,
    MetricSummary,
    Page,
    Project,
    Series,
    Status,
    User,
    WeightsLink,
)
from mltrail.core.wire import to_wire
from mltrail.store.base import LIST_PAGE_SIZE, Store
from mltrail.store.http_jobs import HttpJobStore

RETRY_STATUSES = frozenset({502, 503, 504})
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 5
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def _encode(body: Any) -> bytes:
    """JSON bytes; orjson, or the standard library for integers beyond 64 bits."""
    try:
        return orjson.dumps(body, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


class HttpStore(HttpJobStore, Store):
    """A Store that talks to ``mltrail server``.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:5870``.
        token: API token sent as ``Authorization: Bearer``.
        transport: an httpx transport (tests pass ``httpx.ASGITransport(app)`` or a
            ``MockTransport``); default: real HTTP.
        timeout: seconds per request (long-poll reads add their wait).
        retries: extra attempts for requests that may be repeated.
        backoff: first retry delay in seconds, doubled each attempt (capped at 5 s).
        sleep: injectable for tests.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = url.rstrip("/")
        base = base[: -len("/api/v1")] if base.endswith("/api/v1") else base
        headers = {"Accept": "application/json", "User-Agent": "mltrail-httpstore"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = base
        self._client = httpx.Client(
            base_url=base + "/api/v1", headers=headers, transport=transport, timeout=timeout
        )
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep

    # --- plumbing ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        repeatable: bool = False,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one request, retrying as its kind allows; the decoded JSON answer (its bytes
        with ``raw``)."""
        content = None
        headers = {}
        if body is not None:
            content = _encode(to_wire(body))
            headers["Content-Type"] = "application/json"
        request = self._client.build_request(
            method,
            path,
            content=content,
            params=params,
            headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._client.send(request)
            except _NEVER_SENT as exc:
                if last:
                    raise self._unreachable(exc) from exc
            except httpx.TransportError as exc:
                if last or not repeatable:
                    raise self._unreachable(exc) from exc
            else:
                if not (repeatable and response.status_code in RETRY_STATUSES and not last):
                    return self._decode(response, raw)
            self._sleep(min(self._backoff * 2**attempt, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: Exception) -> TransportError:
        return TransportError(f"cannot reach the mltrail server at {self.url}: {exc}")

    @staticmethod
    def _decode(response: httpx.Response, raw: bool = False) -> Any:
        if response.is_success and raw:
            return response.content
        if response.is_success:
            # orjson unless the body may hold integers beyond 64 bits (see codec.parse_json)
            return codec.parse_json(response.content) if response.content else None
        try:
            error = json.loads(response.content)["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        if isinstance(error, dict):
            raise error_from_dict(error, response.status_code)
        cls = TransportError if response.status_code >= 500 else MltrailError
        raise cls(f"server answered HTTP {response.status_code}: {response.text[:200]}")

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._request("GET", path, params=clean, repeatable=True)

    @staticmethod
    def _exp(project_id: int, experiment_id: int) -> str:
        return f"/projects/{int(project_id)}/experiments/{int(experiment_id)}"

    @staticmethod
    def _targets(refs: Sequence[ExperimentRef]) -> list[dict[str, int]]:
        return [{"project_id": r.project_id, "experiment_id": r.experiment_id} for r in refs]

    def me(self) -> User:
        """The token's user."""
        return codec.user_from_wire(self._get("/me"))

    # --- projects ------------------------------------------------------------------------------
    def create_project(self, display_name: str, description: str = "") -> Project:
        body = {"display_name": display_name, "description": description}
        return codec.project_from_wire(self._request("POST", "/projects", body=body))

    def list_projects(self) -> list[Project]:
        return [codec.project_from_wire(p) for p in self._get("/projects")]

    def get_project(self, project_id: int) -> Project:
        return codec.project_from_wire(self._get(f"/projects/{int(project_id)}"))

    def find_project(self, display_name: str) -> Project | None:
        found = self._get("/projects", display_name=display_name)
        return codec.project_from_wire(found[0]) if found else None

    def add_project_member(self, project_id: int, user_name: str) -> None:
        path = f"/projects/{int(project_id)}/members"
        self._request("POST", path, body={"user_name": user_name})

    # --- experiments ---------------------------------------------------------------------------
    def create_experiment(
        self,
        project_id: int,
        *,
        display_name: str | None = None,
        description: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        status: Status = Status.RUNNING,
    ) -> Experiment:
        body = {
            "display_name": display_name,
            "description": description,
            "hyperparameters": _plain(hyperparameters),
            "environment": _plain(environment),
            "source": _plain(source),
            "tags": list(tags),
            "status": Status(status).value,
        }
        path = f"/projects/{int(project_id)}/experiments"
        return codec.experiment_from_wire(self._request("POST", path, body=body))

    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        return codec.experiment_from_wire(self._get(self._exp(project_id, experiment_id)))

    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        path = f"/projects/{int(project_id)}/experiments"
        params = {"offset": offset, "limit": limit}
        content = self._request("GET", path, params=params, repeatable=True, raw=True)
        page = codec.parse_json(content)
        tagged = b'"$float"' in content  # else no value needs from_wire's walk
        items = tuple(codec.experiment_from_wire(e, tagged=tagged) for e in page["items"])
        return Page(items=items, total=page["total"], offset=page["offset"])

    def latest_experiment(self, project_id: int) -> Experiment:
        path = f"/projects/{int(project_id)}/experiments/latest"
        return codec.experiment_from_wire(self._get(path))

    def update_experiment(
        self,
        project_id: int,
        experiment_id: int,
        *,
        status: Status | None = None,
        display_name: str | None = None,
        description: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> Experiment:
        changes = {
            "status": None if status is None else Status(status).value,
            "display_name": display_name,
            "description": description,
            "hyperparameters": _plain(hyperparameters),
            "environment": _plain(environment),
            "source": _plain(source),
            "tags": None if tags is None else list(tags),
        }
        body = {k: v for k, v in changes.items() if v is not None}
        path = self._exp(project_id, experiment_id)
        # a repeated merge-update leaves the same state: safe to retry
        return codec.experiment_from_wire(self._request("PATCH", path, body=body, repeatable=True))

    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._exp(project_id, experiment_id) + "/stop"
        return codec.experiment_from_wire(self._request("POST", path))

    # --- metric points -------------------------------------------------------------------------
    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        path = self._exp(project_id, experiment_id) + "/points"
        body = codec.metric_batch_to_wire(batch)
        return int(self._request("POST", path, body=body, repeatable=True)["stored"])

    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        found = self._get(self._exp(project_id, experiment_id) + "/series")
        return [codec.summary_from_wire(s) for s in found]

    def read_series(
        self,
        project_id: int,
        experiment_id: int,
        key: str,
        phase: str,
        *,
        max_points: int | None = None,
    ) -> Series:
        path = self._exp(project_id, experiment_id) + "/series/read"
        params: dict[str, Any] = {"key": key, "phase": phase, "format": "packed"}
        if max_points is not None:
            params["max_points"] = max_points
        content = self._request("GET", path, params=params, repeatable=True, raw=True)
        # a packed body is mostly base64 text, which the standard library parses as fast as
        # orjson: parse_json's digit scan would only add to a 100,000-point export
        return codec.series_from_packed(json.loads(content))

    # --- external metrics, weights hashes, charts ----------------------------------------------
    def put_external_metrics(
        self, refs: Sequence[ExperimentRef], metrics: Mapping[str, JsonScalar]
    ) -> None:
        # JSON text (allow_nan) so NaN/Infinity and int-vs-float survive the trip
        body = {"targets": self._targets(refs), "metrics": json.dumps(dict(metrics))}
        self._request("POST", "/external-metrics", body=body, repeatable=True)

    def link_weights_hash(
        self,
        project_id: int,
        experiment_id: int,
        weights_hash: str,
        *,
        iteration: int | None,
        epoch: int | None,
    ) -> WeightsLink:
        path = self._exp(project_id, experiment_id) + "/weights"
        body = {"weights_hash": weights_hash, "iteration": iteration, "epoch": epoch}
        return codec.link_from_wire(self._request("POST", path, body=body))

    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        found = self._get(f"/weights/{quote(str(weights_hash), safe='')}")
        return [codec.link_from_wire(w) for w in found]

    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        found = self._get(self._exp(project_id, experiment_id) + "/weights")
        return [codec.link_from_wire(w) for w in found]

    def put_iteration_metrics(self, weights_hash: str, metrics: Mapping[str, JsonScalar]) -> int:
        path = f"/weights/{quote(str(weights_hash), safe='')}/iteration-metrics"
        body = {"metrics": json.dumps(dict(metrics))}
        return int(self._request("POST", path, body=body, repeatable=True)["touched"])

    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        found = self._get(self._exp(project_id, experiment_id) + "/iteration-metrics")
        return [codec.iteration_metric_from_wire(m) for m in found]

    def put_chart(self, refs: Sequence[ExperimentRef], chart: ChartSpec) -> None:
        body = {"targets": self._targets(refs), "chart": codec.chart_spec_to_wire(chart)}
        self._request("POST", "/charts", body=body, repeatable=True)

    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        found = self._get(self._exp(project_id, experiment_id) + "/charts")
        return [codec.chart_from_wire(c) for c in found]

    # --- logs ----------------------------------------------------------------------------------
    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        path = self._exp(project_id, experiment_id) + "/logs"
        body = codec.log_batch_to_wire(batch)
        return int(self._request("POST", path, body=body, repeatable=True)["stored"])

    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[LogLine]:
        path = self._exp(project_id, experiment_id) + "/logs"
        found = self._get(path, after_seq=after_seq, limit=limit)
        return [codec.log_line_from_wire(x) for x in found["lines"]]

    def wait_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, wait: float = 10.0
    ) -> tuple[list[LogLine], Status]:
        """Long-poll: lines after ``after_seq``, waiting up to ``wait`` s while the run is live."""
        path = self._exp(project_id, experiment_id) + "/logs"
        params = {"after_seq": after_seq, "wait": wait}
        timeout = self._client.timeout.read or 60.0
        found = self._request("GET", path, params=params, repeatable=True, timeout=timeout + wait)
        return [codec.log_line_from_wire(x) for x in found["lines"]], Status(found["status"])

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)
