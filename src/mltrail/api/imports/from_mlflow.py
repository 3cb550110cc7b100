"""``mltrail import mlflow``: copy an MLflow tracking server (or its database) into the store,
through the real ``mlflow`` client (the ``mlflow`` extra).

MLflow experiment -> project (by name, reused when it exists), run -> experiment with its
name, description, status, start and end times, params (hyperparameters, kept as MLflow's
strings), tags, every metric point (step, value, timestamp) and every artifact file. The run
is created under the client id ``mlflow-<run_id>`` and its points are sent as numbered
batches, so an interrupted import run again completes it without doubling anything; the tag
``mlflow.run_id=<run_id>``, added last, marks a run as done and a second import skips it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mltrail.api.artifacts import upload_file
from mltrail.api.imports import ImportReport, append_series, chunk_of, project_named
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.types import Experiment, Status
from mltrail.store.base import Store

RUN_ID_TAG = "mlflow.run_id"
MAX_TAG = 250  # mltrail's longest tag ("key=value")
_STATUS = {
    "RUNNING": Status.RUNNING,
    "SCHEDULED": Status.QUEUED,
    "FINISHED": Status.DONE,
    "FAILED": Status.FAILED,
    "KILLED": Status.STOPPED,
}
_SOURCE_TAGS = {
    "mlflow.source.git.commit": "commit",
    "mlflow.source.git.branch": "branch",
    "mlflow.source.git.repoURL": "remote",
}
_NAME_TAG, _NOTE_TAG = "mlflow.runName", "mlflow.note.content"
_DEFAULT_EXPERIMENT = "0"  # the experiment every MLflow server starts with, named "Default"

Progress = Callable[[int, int], None]  # (runs done, runs in all)


def mlflow_client(uri: str) -> Any:
    """The MLflow client on ``uri``, once it is known to answer (the client itself retries a
    dead server for minutes, and on a missing SQLite file would create an empty database)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ValidationError(
            "needs the mlflow package: pip install 'mltrail[mlflow]'", "mlflow"
        ) from None
    if uri.startswith(("http://", "https://")):
        _check_reachable(uri)
    elif uri.startswith("sqlite:///"):
        if not Path(uri.removeprefix("sqlite:///")).is_file():
            raise ValidationError(f"no MLflow database at {uri}", "from")
    else:
        raise ValidationError(f"must be an http(s):// URL or sqlite:/// path, got {uri!r}", "from")
    return MlflowClient(tracking_uri=uri)


def _check_reachable(url: str) -> None:
    probe = url.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        with urllib.request.urlopen(probe, timeout=10):
            return
    except urllib.error.HTTPError as exc:  # it answers: the client reports auth errors itself
        if exc.code == 404:
            raise ValidationError(f"{url} is not an MLflow tracking server (404)", "from") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ValidationError(f"cannot reach {url}: {reason}", "from") from None


def import_mlflow(
    store: Store,
    uri: str,
    names: Sequence[str] = (),
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the MLflow experiments ``names`` (all active ones by default) into ``store``;
    ``progress(done, total)`` is called after each run.

    Raises:
        ValidationError: mlflow missing, ``uri`` unreachable or not MLflow.
        NotFoundError: an experiment named is not on the MLflow server (nothing is written).
    """
    client = mlflow_client(uri)  # first: without mlflow installed, one line naming the extra
    from mlflow.exceptions import MlflowException

    report = ImportReport()
    try:
        plan = [(e, list(_runs(client, e.experiment_id))) for e in _experiments(client, names)]
        total, done = sum(len(runs) for _, runs in plan), 0
        for source, runs in plan:
            if not runs and not names and source.experiment_id == _DEFAULT_EXPERIMENT:
                continue  # every MLflow server has it: an empty "Default" project is noise
            note = source.tags.get(_NOTE_TAG, "")
            project = project_named(store, source.name, note, report)
            for run in runs:
                _import_run(client, store, project.id, run, report)
                done += 1
                if progress is not None:
                    progress(done, total)
    except MlflowException as exc:  # the server's or client's refusal, in one line
        first = str(exc.message).strip().splitlines()[0] if str(exc.message).strip() else exc
        raise ValidationError(f"MLflow answered: {first}", "from") from None
    return report


def _experiments(client: Any, names: Sequence[str]) -> list[Any]:
    if not names:
        return list(client.search_experiments())
    found = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise NotFoundError(f"no MLflow experiment named {name!r}", "experiment")
        found.append(experiment)
    return found


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["attributes.start_time ASC"], max_results=1000,
            page_token=token,
        )  # fmt: skip
        yield from page
        token = page.token
        if not token:
            return


def _import_run(client: Any, store: Store, project_id: int, run: Any, report: ImportReport) -> None:
    info, data = run.info, run.data
    made = _create(store, project_id, info, data, report)
    if f"{RUN_ID_TAG}={info.run_id}" in made.tags:
        report.runs_skipped += 1
        return
    ref = (made.project_id, made.experiment_id)
    series = [
        chunk_of(key, [(m.step, m.value, m.timestamp / 1000.0) for m in history])
        for key in sorted(data.metrics)
        if (history := client.get_metric_history(info.run_id, key))
    ]
    report.points += append_series(store, ref, f"mlflow-{info.run_id}", series)
    if _proxied(client, info):
        report.notes.append(
            f"run {info.run_id}: artifacts not copied ({info.artifact_uri} is served by the "
            "tracking server: import from its URL to copy them)"
        )
        return _mark_done(store, ref, info.run_id, report)
    with tempfile.TemporaryDirectory(prefix="mltrail-import-") as tmp:
        for path in _artifact_files(client, info.run_id, ""):
            with contextlib.redirect_stderr(io.StringIO()):  # the client's own progress bar
                local = Path(client.download_artifacts(info.run_id, path, tmp))
            upload_file(store, ref, local, path)
            report.artifacts += 1
            report.artifact_bytes += local.stat().st_size
    _mark_done(store, ref, info.run_id, report)


def _proxied(client: Any, info: Any) -> bool:
    """Artifacts behind the tracking server's proxy, read from its database instead."""
    uri = str(client.tracking_uri)
    return str(info.artifact_uri).startswith("mlflow-artifacts:") and not uri.startswith("http")


def _mark_done(store: Store, ref: tuple[int, int], run_id: str, report: ImportReport) -> None:
    store.update_experiment(*ref, add_tags=[f"{RUN_ID_TAG}={run_id}"])
    report.runs_imported += 1


def _create(
    store: Store, project_id: int, info: Any, data: Any, report: ImportReport
) -> Experiment:
    tags = dict(data.tags)
    name = tags.pop(_NAME_TAG, None) or info.run_name or None
    description = tags.pop(_NOTE_TAG, "")
    source = {field: tags.pop(tag) for tag, field in _SOURCE_TAGS.items() if tag in tags}
    labels = []
    for key, value in sorted(tags.items()):
        label = f"{key}={value}" if value else key
        if len(label) > MAX_TAG:
            report.notes.append(f"run {info.run_id}: tag {key} not kept ({len(label)} characters)")
            continue
        labels.append(label)
    status = _STATUS.get(info.status, Status.DONE)
    made = store.create_experiment(
        project_id,
        display_name=name,
        description=description,
        hyperparameters=dict(data.params),
        environment={"user": info.user_id} if info.user_id else None,
        source=source or None,
        tags=labels,
        status=status,
        client_id=f"mlflow-{info.run_id}",
        started_at=info.start_time / 1000.0 if info.start_time else None,
        ended_at=info.end_time / 1000.0 if info.end_time and status.is_final else None,
    )
    if f"{RUN_ID_TAG}={info.run_id}" not in made.tags:
        report.params += len(data.params)
        report.tags += len(labels)
    return made


def _artifact_files(client: Any, run_id: str, folder: str) -> Iterator[str]:
    for entry in client.list_artifacts(run_id, folder or None):
        if entry.is_dir:
            yield from _artifact_files(client, run_id, entry.path)
        else:
            yield entry.path
