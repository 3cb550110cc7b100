"""The experiments half of HttpStore: ``/api/v1/projects/{p}/experiments``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.core import codec, lifecycle
from mltrail.core.lifecycle import Lifecycle, include_text
from mltrail.core.liveness import Liveness
from mltrail.core.query import Query
from mltrail.core.query_text import order_text, to_text
from mltrail.core.types import Experiment, Page, Status
from mltrail.core.wire import to_wire
from mltrail.store.experiments import LIST_PAGE_SIZE, ExperimentStore
from mltrail.store.http.transport import HttpNoun

# RFC 7240: the client has no use for the changed resource (docs/rest.md, PATCH experiment)
RETURN_MINIMAL = {"Prefer": "return=minimal"}


class HttpExperiments(HttpNoun, ExperimentStore):
    """The experiments half of HttpStore: each :class:`ExperimentStore` method is one request."""

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
        client_id: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> Experiment:
        body = {
            "client_id": client_id,
            "started_at": started_at,
            "ended_at": ended_at,
            "display_name": display_name,
            "description": description,
            "hyperparameters": _plain(hyperparameters),
            "environment": _plain(environment),
            "source": _plain(source),
            "tags": list(tags),
            "status": Status(status).value,
        }
        path = f"/projects/{int(project_id)}/experiments"
        # with a client_id a repeat returns the same experiment, so it is safe to retry
        answer = self._http.call("POST", path, body=to_wire(body), repeatable=client_id is not None)
        return codec.experiment_from_wire(answer)

    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        return codec.experiment_from_wire(
            self._get(self._experiment_path(project_id, experiment_id))
        )

    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        return self.search_experiments(project_id, offset=offset, limit=limit)

    def search_experiments(
        self,
        project_id: int,
        query: Query | None = None,
        *,
        offset: int = 0,
        limit: int = LIST_PAGE_SIZE,
        include: tuple[Lifecycle, ...] = (Lifecycle.ACTIVE,),
    ) -> Page:
        path = f"/projects/{int(project_id)}/experiments"
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if query is not None and query.filter is not None:
            params["filter"] = to_text(query.filter)
        if query is not None and query.order_by:
            params["order_by"] = order_text(query.order_by)
        if include != (Lifecycle.ACTIVE,):
            params["include"] = include_text(lifecycle.include(include))
        content = self._http.call("GET", path, params=params, repeatable=True, raw=True)
        page = codec.parse_json(content)
        tagged = b'"$float"' in content  # else no value needs from_wire's walk
        items = tuple(codec.experiment_from_wire(e, tagged=tagged) for e in page["items"])
        exact = page.get("total_exact", True)
        return Page(items=items, total=page["total"], offset=page["offset"], total_exact=exact)

    def latest_experiment(self, project_id: int) -> Experiment:
        return codec.experiment_from_wire(
            self._get(f"/projects/{int(project_id)}/experiments/latest")
        )

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
        notes: str | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
        resume: bool = False,
        ended_at: float | None = None,
        keep_hyperparameters: bool = False,
    ) -> Experiment:
        changes = {
            "notes": notes,
            "keep_hyperparameters": keep_hyperparameters or None,
            "ended_at": ended_at,
            "add_tags": list(add_tags) or None,
            "remove_tags": list(remove_tags) or None,
            "resume": resume or None,
            "status": None if status is None else Status(status).value,
            "display_name": display_name,
            "description": description,
            "hyperparameters": _plain(hyperparameters),
            "environment": _plain(environment),
            "source": _plain(source),
            "tags": None if tags is None else list(tags),
        }
        body = to_wire({k: v for k, v in changes.items() if v is not None})
        path = self._experiment_path(project_id, experiment_id)
        # a repeated merge-update leaves the same state: safe to retry
        answer = self._http.call("PATCH", path, body=body, repeatable=True)
        return codec.experiment_from_wire(answer)

    def record_status(self, project_id: int, experiment_id: int, status: Status) -> None:
        path = self._experiment_path(project_id, experiment_id)
        body = {"status": Status(status).value}
        # no answer wanted: the server skips reading the experiment back (204, no body; an
        # older server's 200 with the experiment is read and dropped)
        self._http.call("PATCH", path, body=body, repeatable=True, headers=RETURN_MINIMAL)

    def delete_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._experiment_path(project_id, experiment_id)
        # moving to the trash twice leaves it in the trash: safe to retry
        return codec.experiment_from_wire(self._http.call("DELETE", path, repeatable=True))

    def archive_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._experiment_path(project_id, experiment_id) + "/archive"
        return codec.experiment_from_wire(self._http.call("POST", path, repeatable=True))

    def restore_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._experiment_path(project_id, experiment_id) + "/restore"
        return codec.experiment_from_wire(self._http.call("POST", path, repeatable=True))

    def purge_experiment(self, project_id: int, experiment_id: int) -> int:
        path = self._experiment_path(project_id, experiment_id) + "/purge"
        return int(self._http.call("POST", path)["blobs_removed"])

    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._experiment_path(project_id, experiment_id) + "/stop"
        return codec.experiment_from_wire(self._http.call("POST", path))

    def resume_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        path = self._experiment_path(project_id, experiment_id) + "/resume"
        # resuming a running run changes nothing but its heartbeat: safe to retry
        return codec.experiment_from_wire(self._http.call("POST", path, repeatable=True))

    def record_heartbeat(self, project_id: int, experiment_id: int) -> Liveness:
        path = self._experiment_path(project_id, experiment_id) + "/heartbeat"
        # a repeated heartbeat only moves the time on: safe to retry
        return codec.liveness_from_wire(self._http.call("POST", path, repeatable=True))


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)
