"""``api.experiments``: the contract's methods (``logs``, ``list``, ``update_metrics``,
``update_chart``, ``update_metrics_per_iteration``) and a few more.

Each method adapts the contract's parameter forms (JSON strings or Python objects, positional
order, defaults), parses them once with :mod:`mltrail.core.validation`, makes one Store call and
renders what it answers. Behaviour lives in the Store.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
from typing import IO, Any

from mltrail.api.history import OUTPUTS, HistoryMethods, check_choice, experiments_output
from mltrail.api.logs import print_logs
from mltrail.api.models import link_dict
from mltrail.api.projects import project_id, resolve_project
from mltrail.api.render import with_iso_times
from mltrail.core import codec, lifecycle, series_codec, validation
from mltrail.core.errors import ValidationError
from mltrail.core.query import parse_query
from mltrail.core.types import Experiment, ExperimentRef, LogLine
from mltrail.store.base import LIST_PAGE_SIZE, Store

_TIMES = ("created_at", "started_at", "ended_at", "last_heartbeat")


class ExperimentsApi(HistoryMethods):
    """``api.experiments``: the contract's methods and a few more."""

    def __init__(self, store: Store, *, page_size: int = LIST_PAGE_SIZE) -> None:
        self._store = store
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
        collect: bool = True,
        catch_interrupt: bool = True,
    ) -> builtins.list[LogLine]:
        """Print the experiment's log lines, following them while it runs.

        Args:
            project: project id.
            experiment: experiment id; the project's latest experiment when omitted.
            disable_colors: print without ANSI colours.
            follow: keep printing new lines until the experiment ends (Ctrl-C stops); a
                server restart or a rate limit (429, each wait what its Retry-After asks, at
                most 60 s) is ridden out (one note on stderr, then the lines after the last
                one printed; TransportError after 5 minutes of one outage).
            file: where to print; stdout by default.
            collect: return the lines printed; False keeps none (an export of millions of
                lines then runs in bounded memory, page by page).
            catch_interrupt: Ctrl-C ends the follow and the lines printed are returned (the
                contract's behaviour); False lets ``KeyboardInterrupt`` through (the CLI, so
                its exit status says it was interrupted).

        Returns:
            The lines printed (empty with ``collect=False``).
        """
        pid = project_id(project)
        if experiment is None:
            number = self._store.latest_experiment(pid).experiment_id
        else:
            number = experiment_id(experiment)
        printed: builtins.list[LogLine] | None = [] if collect else None
        interrupt: tuple[type[BaseException], ...] = (KeyboardInterrupt,) if catch_interrupt else ()
        with contextlib.suppress(*interrupt):
            print_logs(
                self._store,
                pid,
                number,
                file or sys.stdout,
                printed,
                colours=not disable_colors,
                follow=follow,
            )
        return printed or []

    def list(self, project: int, *, to: str = "records") -> Any:
        """Every experiment of the project, with hyperparameters and last metric values.

        ``to="pandas"`` returns a DataFrame (``params.NAME`` and ``metrics.NAME`` columns)."""
        pid = project_id(project)
        to = check_choice(to, "to", OUTPUTS)
        items: builtins.list[Experiment] = []
        while True:
            page = self._store.list_experiments(pid, offset=len(items), limit=self._page_size)
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                return experiments_output([experiment_dict(e) for e in items], to)

    def update_metrics(
        self,
        metrics: str | dict[str, Any],
        project: int | None = None,
        experiment: int | None = None,
        weights_hash: str | None = None,
    ) -> builtins.list[dict[str, int]]:
        """Add ex_ metrics to an experiment, or to every experiment holding ``weights_hash``;
        all or none, in one Store call (one request in server mode).

        Returns:
            The experiments updated, as ``{"project": p, "experiment": e}``.
        """
        values = validation.ex_metrics(metrics)
        targets = validation.targets(project, experiment, weights_hash)
        return _refs(self._store.put_external_metrics(targets, values))

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
        """Create or replace a custom chart (single- or multi-line) on the chosen experiments,
        all or none, in one Store call."""
        spec = validation.chart(
            chart_name,
            chart_x_name=chart_x_name,
            chart_y_name=chart_y_name,
            chart_scope=chart_scope,
            chart_type=chart_type,
            chart_x=chart_x,
            chart_y=chart_y,
        )
        targets = validation.targets(project, experiment, weights_hash)
        return _refs(self._store.put_chart(targets, spec))

    def update_metrics_per_iteration(self, weights_hash: str, metrics: str | dict[str, Any]) -> int:
        """Attach ex_ metrics to every (experiment, iteration, epoch) that produced the hash.

        Returns:
            How many (experiment, iteration, epoch) links were touched.
        """
        values = validation.ex_metrics(metrics)
        return self._store.put_iteration_metrics(validation.weights_hash(weights_hash), values)

    # --- beyond the contract ------------------------------------------------------------------
    def search(
        self,
        project: int | str,
        filter: str | None = None,
        order_by: str | builtins.list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include: str = "active",
        to: str | None = None,
    ) -> Any:
        """Experiments matching ``filter``, in ``order_by`` order, run in the database.

        Args:
            project: project id or display name.
            filter: e.g. ``"metrics.validation/loss < 0.5 and params.lr >= 1e-3"`` (the grammar
                of :mod:`mltrail.core.query`); every experiment when None.
            order_by: ``["metrics.validation/loss asc", "created desc"]``; by number when None.
            limit: at most this many; every match when None.
            offset: skip this many matches first.
            include: ``active`` (default), ``archived``, ``deleted`` (the trash) or ``all``.
            to: ``records`` (None, the default: a list of dicts) or ``pandas`` (a DataFrame of
                one row per experiment with ``params.NAME`` and ``metrics.NAME`` columns, as
                :meth:`list` gives; needs pandas).

        Returns:
            The experiments as :meth:`list` renders them, in ``to``'s form.

        Raises:
            ValidationError: a filter or order that does not parse (naming position and token),
                an unknown ``to``, or ``to="pandas"`` without pandas installed.
        """
        to = check_choice("records" if to is None else to, "to", OUTPUTS)
        query = parse_query(filter, order_by)
        states = lifecycle.include(include)
        pid = self._project(project)
        start = 0 if offset is None else validation.require_int(offset, "offset", minimum=0)
        wanted = None if limit is None else validation.require_int(limit, "limit", minimum=1)
        items: builtins.list[Experiment] = []
        while wanted is None or len(items) < wanted:
            size = self._page_size if wanted is None else min(self._page_size, wanted - len(items))
            page = self._store.search_experiments(
                pid, query, offset=start + len(items), limit=size, include=states
            )
            items.extend(page.items)
            if not page.items or start + len(items) >= page.total:
                break
        return experiments_output([experiment_dict(e) for e in items], to)

    def rename(self, project: int | str, experiment: int, name: str) -> dict[str, Any]:
        """Change the experiment's display name."""
        return self._update(project, experiment, display_name=validation.experiment_name(name))

    def set_description(self, project: int | str, experiment: int, text: str) -> dict[str, Any]:
        return self._update(
            project, experiment, description=validation.experiment_description(text)
        )

    def set_notes(self, project: int | str, experiment: int, notes: str) -> dict[str, Any]:
        """Replace the experiment's notes (markdown)."""
        return self._update(project, experiment, notes=validation.experiment_notes(notes))

    def add_tags(
        self, project: int | str, experiment: int, tags: builtins.list[str]
    ) -> dict[str, Any]:
        return self._update(project, experiment, add_tags=_tag_list(tags))

    def remove_tags(
        self, project: int | str, experiment: int, tags: builtins.list[str]
    ) -> dict[str, Any]:
        return self._update(project, experiment, remove_tags=_tag_list(tags))

    def delete(self, project: int | str, experiment: int) -> dict[str, Any]:
        """Move the experiment to the trash (restorable for ``MLTRAIL_TRASH_DAYS`` days)."""
        pid, number = self._project(project), experiment_id(experiment)
        return experiment_dict(self._store.delete_experiment(pid, number))

    def archive(self, project: int | str, experiment: int) -> dict[str, Any]:
        """Hide the experiment from lists; ``search(..., include="archived")`` shows it."""
        pid, number = self._project(project), experiment_id(experiment)
        return experiment_dict(self._store.archive_experiment(pid, number))

    def restore(self, project: int | str, experiment: int) -> dict[str, Any]:
        """Bring an archived or deleted experiment back to the active list."""
        pid, number = self._project(project), experiment_id(experiment)
        return experiment_dict(self._store.restore_experiment(pid, number))

    def purge(self, project: int | str, experiment: int) -> dict[str, Any]:
        """Remove the experiment and everything it owns for good; its number is not reused.

        Returns:
            ``{"project", "experiment", "blobs_removed"}``.
        """
        pid, number = self._project(project), experiment_id(experiment)
        removed = self._store.purge_experiment(pid, number)
        return {"project": pid, "experiment": number, "blobs_removed": removed}

    def _update(self, project: int | str, experiment: int, **changes: Any) -> dict[str, Any]:
        pid, number = self._project(project), experiment_id(experiment)
        return experiment_dict(self._store.update_experiment(pid, number, **changes))

    def _project(self, project: int | str) -> int:
        """An id as is (no request); a display name looked up."""
        if isinstance(project, str) and not project.strip().isdigit():
            return resolve_project(self._store, project, create=False)
        return project_id(project)

    def get(self, project: int, experiment: int) -> dict[str, Any]:
        """One experiment with environment, source, metric summaries and weights hashes."""
        pid, number = project_id(project), experiment_id(experiment)
        result = experiment_dict(self._store.get_experiment(pid, number))
        result["summaries"] = [
            s.__dict__ | {"name": s.name} for s in self._store.list_series(pid, number)
        ]
        result["weights"] = [link_dict(w) for w in self._store.list_weights_links(pid, number)]
        return result

    def stop(self, project: int, experiment: int) -> dict[str, Any]:
        """Ask a queued or running experiment to stop (the SDK or agent sees it within seconds)."""
        return experiment_dict(
            self._store.request_stop(project_id(project), experiment_id(experiment))
        )

    def series(
        self,
        project: int,
        experiment: int,
        key: str,
        phase: str = "train",
        max_points: int | None = None,
        times: bool = False,
    ) -> dict[str, Any]:
        """A metric series, downsampled to ``max_points`` when given.

        Args:
            times: add ``times``, each point's wall-clock time (unix seconds; None where
                unknown), for charts and exports over wall time or time since the start.
        """
        if max_points is not None:
            max_points = validation.require_int(max_points, "max_points", minimum=2)
        s = self._store.read_series(
            project_id(project),
            experiment_id(experiment),
            validation.metric_key(key),
            validation.phase(phase),
            max_points=max_points,
            times=bool(times),
        )
        return series_codec.series_to_wire(s, tagged=False)


def experiment_dict(e: Experiment) -> dict[str, Any]:
    """The experiment's record for people (ISO times, plain floats)."""
    return with_iso_times(codec.experiment_record(e), _TIMES)


def experiment_id(value: Any) -> int:
    """The contract's ``experiment`` parameter: required, an integer >= 1."""
    if value is None:
        raise ValidationError("is required", "experiment")
    return validation.require_int(value, "experiment", minimum=1)


def _tag_list(tags: Any) -> builtins.list[str]:
    if isinstance(tags, str):
        tags = [tags]
    values = validation.sequence_of(tags, "tags")
    return [validation.require_text(t, "tags", min_len=1, max_len=250) for t in values]


def _refs(refs: builtins.list[ExperimentRef]) -> builtins.list[dict[str, int]]:
    return [codec.ref_to_wire(r) for r in refs]
