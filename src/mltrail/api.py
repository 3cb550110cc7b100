"""The contract: ``as_api()`` with its ``projects``, ``experiments`` and ``models`` namespaces.

Behaviour lives here and in the store, once: the CLI and the server only carry it. Methods take
exactly the parameters of the "Experiments Methods" reference; JSON strings and the equivalent
Python objects are both accepted.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from mltrail.config import Settings
from mltrail.core import validation as v
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.types import Experiment, ExperimentRef, LogLine, Project, Status, WeightsLink
from mltrail.store import open_store
from mltrail.store.base import LIST_PAGE_SIZE, Store

FOLLOW_POLL_SECONDS = 0.5

_LEVEL_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_STDERR_COLOUR = "\x1b[35m"
_RESET = "\x1b[0m"


class Api:
    """What ``mltrail.as_api()`` returns."""

    def __init__(self, store: Store, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.projects = ProjectsApi(store)
        self.experiments = ExperimentsApi(store, sleep=sleep)
        self.models = ModelsApi(store)

    @classmethod
    def from_settings(cls, settings: Settings) -> Api:
        return cls(open_store(settings))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProjectsApi:
    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self) -> list[dict[str, Any]]:
        """Every project you are a member of, with experiment counts and last activity."""
        return [project_dict(p) for p in self._store.list_projects()]

    def create(self, display_name: str, description: str = "") -> dict[str, Any]:
        """Create a project (display name 1-140 characters, description up to 140)."""
        name = v.project_name(display_name)
        return project_dict(self._store.create_project(name, v.project_description(description)))

    def get(self, project: int) -> dict[str, Any]:
        return project_dict(self._store.get_project(_project_id(project)))

    def add_member(self, project: int, user_name: str) -> None:
        """Let another user see and change the project."""
        self._store.add_project_member(
            _project_id(project), v.require_text(user_name, "user_name", min_len=1, max_len=140)
        )


class ExperimentsApi:
    def __init__(
        self,
        store: Store,
        *,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = LIST_PAGE_SIZE,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._page_size = page_size

    # --- the contract ------------------------------------------------------------------------
    def logs(
        self,
        project: int,
        experiment: int | None = None,
        disable_colors: bool = False,
        *,
        follow: bool = True,
        file: IO[str] | None = None,
    ) -> builtins.list[LogLine]:
        """Print the experiment's log lines, following them while it runs.

        Args:
            project: project id.
            experiment: experiment id; the project's latest experiment when omitted.
            disable_colors: print without ANSI colours.
            follow: keep printing new lines until the experiment ends (Ctrl-C stops).
            file: where to print; stdout by default.

        Returns:
            The lines printed.
        """
        project_id = _project_id(project)
        if experiment is None:
            experiment_id = self._store.latest_experiment(project_id).experiment_id
        else:
            experiment_id = _experiment_id(experiment)
            self._store.get_experiment(project_id, experiment_id)
        out = file or sys.stdout
        printed: builtins.list[LogLine] = []
        with contextlib.suppress(KeyboardInterrupt):
            self._print_logs(
                project_id, experiment_id, out, printed, colours=not disable_colors, follow=follow
            )
        return printed

    def list(self, project: int) -> builtins.list[dict[str, Any]]:
        """Every experiment of the project, with hyperparameters and last metric values."""
        project_id = _project_id(project)
        items: builtins.list[Experiment] = []
        while True:
            page = self._store.list_experiments(
                project_id, offset=len(items), limit=self._page_size
            )
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                return [experiment_dict(e) for e in items]

    def update_metrics(
        self,
        metrics: str | dict[str, Any],
        project: int | None = None,
        experiment: int | None = None,
        weights_hash: str | None = None,
    ) -> builtins.list[dict[str, int]]:
        """Add ex_ metrics to an experiment, or to every experiment holding ``weights_hash``.

        Returns:
            The experiments updated, as ``{"project": p, "experiment": e}``.
        """
        values = v.ex_metrics(metrics)
        refs = self._targets(project, experiment, weights_hash)
        self._store.put_external_metrics(refs, values)
        return [_ref_dict(r) for r in refs]

    def update_chart(
        self,
        chart_name: str,
        weights_hash: str | None = None,
        project: int | None = None,
        experiment: int | None = None,
        chart_x_name: str = "X",
        chart_y_name: str = "Y",
        chart_scope: str = "test",
        chart_type: str = "line",
        chart_x: str | builtins.list[Any] | None = None,
        chart_y: str | builtins.list[Any] | None = None,
    ) -> builtins.list[dict[str, int]]:
        """Create or replace a custom chart (single- or multi-line) on the chosen experiments."""
        spec = v.chart(
            chart_name,
            chart_x_name=chart_x_name,
            chart_y_name=chart_y_name,
            chart_scope=chart_scope,
            chart_type=chart_type,
            chart_x=chart_x,
            chart_y=chart_y,
        )
        refs = self._targets(project, experiment, weights_hash)
        self._store.put_chart(refs, spec)
        return [_ref_dict(r) for r in refs]

    def update_metrics_per_iteration(self, weights_hash: str, metrics: str | dict[str, Any]) -> int:
        """Attach ex_ metrics to every (experiment, iteration, epoch) that produced the hash.

        Returns:
            How many (experiment, iteration, epoch) links were touched.
        """
        return self._store.put_iteration_metrics(
            v.weights_hash(weights_hash), v.ex_metrics(metrics)
        )

    # --- beyond the contract ------------------------------------------------------------------
    def get(self, project: int, experiment: int) -> dict[str, Any]:
        """One experiment with environment, source, metric summaries and weights hashes."""
        project_id, experiment_id = _project_id(project), _experiment_id(experiment)
        result = experiment_dict(self._store.get_experiment(project_id, experiment_id))
        result["summaries"] = [
            s.__dict__ | {"name": s.name}
            for s in self._store.list_series(project_id, experiment_id)
        ]
        result["weights"] = [
            link_dict(w) for w in self._store.list_weights_links(project_id, experiment_id)
        ]
        return result

    def stop(self, project: int, experiment: int) -> dict[str, Any]:
        """Ask a queued or running experiment to stop (the SDK or agent sees it within seconds)."""
        return experiment_dict(
            self._store.request_stop(_project_id(project), _experiment_id(experiment))
        )

    def series(
        self,
        project: int,
        experiment: int,
        key: str,
        phase: str = "train",
        max_points: int | None = None,
    ) -> dict[str, Any]:
        """A metric series, downsampled to ``max_points`` when given."""
        if max_points is not None:
            max_points = v.require_int(max_points, "max_points", minimum=2)
        s = self._store.read_series(
            _project_id(project),
            _experiment_id(experiment),
            v.metric_key(key),
            v.phase(phase),
            max_points=max_points,
        )
        epochs = [None if e < 0 else e for e in s.epochs.tolist()]
        return {
            "key": s.key,
            "phase": s.phase,
            "total": s.total,
            "downsampled": s.downsampled,
            "iterations": s.iterations.tolist(),
            "epochs": epochs,
            "values": s.values.tolist(),
        }

    # --- helpers -----------------------------------------------------------------------------
    def _targets(
        self, project: Any, experiment: Any, weights_hash: Any
    ) -> builtins.list[ExperimentRef]:
        """(project, experiment) when both are given, else every experiment holding the hash."""
        if project is not None and experiment is not None:
            ref = ExperimentRef(_project_id(project), _experiment_id(experiment))
            self._store.get_experiment(ref.project_id, ref.experiment_id)
            return [ref]
        if project is not None or experiment is not None:
            given, missing = (
                ("project", "experiment") if project is not None else ("experiment", "project")
            )
            raise ValidationError(
                f"is required when {given} is given (or pass weights_hash alone)", missing
            )
        if weights_hash is None:
            raise ValidationError("give project and experiment, or weights_hash", "weights_hash")
        links = self._store.find_weights_hash(v.weights_hash(weights_hash))
        if not links:
            raise NotFoundError(f"no experiment has weights hash {weights_hash}", "weights_hash")
        return sorted(
            {ExperimentRef(link.project_id, link.experiment_id) for link in links},
            key=lambda r: (r.project_id, r.experiment_id),
        )

    def _print_logs(
        self,
        project_id: int,
        experiment_id: int,
        out: IO[str],
        printed: builtins.list[LogLine],
        *,
        colours: bool,
        follow: bool,
    ) -> None:
        after = 0
        ended = False  # once the experiment has ended, one more empty read finishes
        while True:
            lines = self._store.read_logs(project_id, experiment_id, after_seq=after)
            for line in lines:
                out.write(format_log_line(line, colours=colours) + "\n")
            out.flush()
            printed.extend(lines)
            if lines:  # read pages until caught up, following or not
                after = lines[-1].seq
                continue
            if ended or not follow:
                return
            ended = Status(self._store.get_experiment(project_id, experiment_id).status).is_final
            if not ended:
                self._sleep(FOLLOW_POLL_SECONDS)


class ModelsApi:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get_weights_hash(self, framework: str, model_path: str) -> str:
        """The weights hash of a saved model file (never unpickled unsafely)."""
        from mltrail.checkpoints import weights_hash_from_file

        return weights_hash_from_file(framework, model_path)

    def find(self, weights_hash: str) -> list[dict[str, Any]]:
        """Which experiments, iterations and epochs produced this hash."""
        return [link_dict(w) for w in self._store.find_weights_hash(v.weights_hash(weights_hash))]


def format_log_line(line: LogLine, *, colours: bool) -> str:
    """``2026-11-28 12:00:01.123 stdout INFO message``, coloured by level and stream."""
    stamp = datetime.fromtimestamp(line.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    text = f"{stamp} {line.stream} {line.level} {line.message}"
    if not colours:
        return text
    colour = _LEVEL_COLOURS.get(line.level, "")
    if not colour and line.stream == "stderr":
        colour = _STDERR_COLOUR
    return f"{colour}{text}{_RESET}" if colour else text


def iso_time(ts: float | None) -> str | None:
    """UTC ISO 8601 to the second; strftime is twice as fast as datetime on 1,000-row lists."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))


def project_dict(p: Project) -> dict[str, Any]:
    return {
        "project_id": p.id,
        "display_name": p.display_name,
        "description": p.description,
        "created_at": iso_time(p.created_at),
        "experiment_count": p.experiment_count,
        "last_activity": iso_time(p.last_activity),
    }


def experiment_dict(e: Experiment) -> dict[str, Any]:
    return {
        "project_id": e.project_id,
        "experiment_id": e.experiment_id,
        "display_name": e.display_name,
        "description": e.description,
        "status": Status(e.status).value,
        "created_at": iso_time(e.created_at),
        "started_at": iso_time(e.started_at),
        "ended_at": iso_time(e.ended_at),
        "duration": e.duration,
        "hyperparameters": dict(e.hyperparameters),
        "metrics": dict(e.metrics),
        "ex_metrics": dict(e.ex_metrics),
        "tags": list(e.tags),
        "environment": dict(e.environment),
        "source": dict(e.source),
        "stop_requested": e.stop_requested,
    }


def link_dict(w: WeightsLink) -> dict[str, Any]:
    return {
        "weights_hash": w.weights_hash,
        "project": w.project_id,
        "experiment": w.experiment_id,
        "iteration": w.iteration,
        "epoch": w.epoch,
        "created_at": iso_time(w.created_at),
    }


def _ref_dict(ref: ExperimentRef) -> dict[str, int]:
    return {"project": ref.project_id, "experiment": ref.experiment_id}


def _project_id(value: Any) -> int:
    if value is None:
        raise ValidationError("is required", "project")
    return v.require_int(value, "project", minimum=1)


def _experiment_id(value: Any) -> int:
    if value is None:
        raise ValidationError("is required", "experiment")
    return v.require_int(value, "experiment", minimum=1)
