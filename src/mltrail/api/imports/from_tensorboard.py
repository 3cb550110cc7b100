"""``mltrail import tensorboard``: TensorBoard event files (as ``torch.utils.tensorboard``'s
``SummaryWriter`` writes them) into experiments, read with the ``tensorboard`` package's own
``EventAccumulator`` (the ``tensorboard`` extra).

Each folder holding event files is one run and becomes one experiment, named by its path below
the folder imported (a sub-folder of a run holding ``add_hparams`` data, as PyTorch writes it,
belongs to that run): every scalar tag is a series (step -> iteration, wall time -> the point's
time, the value as stored, a 32-bit float), and ``add_hparams``' values are its
hyperparameters. The experiment is created under a client id made of the project and the
run's path, its points go in numbered batches, and the tag ``tensorboard.run=<path>``, added
last, marks it done: importing the folder again skips it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mltrail.api.imports import ImportReport, append_series, chunk_of, project_named
from mltrail.core.errors import ValidationError
from mltrail.core.types import Status
from mltrail.store.base import Store

RUN_TAG = "tensorboard.run"
_EVENTS = "events.out.tfevents.*"


def _accumulator_class() -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        raise ValidationError(
            "needs the tensorboard package: pip install 'mltrail[tensorboard]'", "tensorboard"
        ) from None
    return event_accumulator


def run_folders(path: Path) -> list[Path]:
    """Every folder under ``path`` (itself included) that holds event files, in path order.

    Raises:
        ValidationError: ``path`` is missing or holds no event file.
    """
    if not path.exists():
        raise ValidationError(f"no such file or folder: {path}", "path")
    if path.is_file() and not path.name.startswith("events.out.tfevents."):
        raise ValidationError(f"not a TensorBoard event file: {path}", "path")
    files = [path] if path.is_file() else sorted(f for f in path.rglob(_EVENTS) if f.is_file())
    for file in files:
        _check_event_file(file)
    folders = sorted({f.parent for f in files})
    if not folders:
        raise ValidationError(
            f"no TensorBoard event files (events.out.tfevents.*) under {path}", "path"
        )
    return folders


def _check_event_file(file: Path) -> None:
    """Refuse a file whose first record is not an event file's version header (the reader
    takes a corrupt file for an empty one)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    first = next(iter(EventFileLoader(str(file)).Load()), None)
    if first is None or not first.file_version.startswith("brain.Event"):
        raise ValidationError(f"not a TensorBoard event file: {file}", "path")


def import_tensorboard(
    store: Store,
    path: str | Path,
    project: str | int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import every run folder under ``path`` into ``project`` (a name or id; by default a
    project named after the folder, created when missing); ``progress(done, total)`` is
    called after each run."""
    root = Path(path).expanduser()
    ea = _accumulator_class()
    folders = run_folders(root)
    report = ImportReport()
    base = root if root.is_dir() else root.parent
    if isinstance(project, int):
        project_id = store.get_project(project).id
        report.projects_reused += 1
    else:
        name = project or base.resolve().name or "tensorboard"
        project_id = project_named(store, name, "", report).id
    runs = _runs(ea, folders, base)
    for done, (run, readers) in enumerate(runs.items(), 1):
        _import_run(store, project_id, run, readers, report)
        if progress is not None:
            progress(done, len(runs))
    return report


def _runs(ea: Any, folders: list[Path], base: Path) -> dict[str, list[Any]]:
    """Run name -> its folder's reader, then the readers of its ``add_hparams`` sub-folders
    (PyTorch writes the hparams of ``writer.add_hparams`` into a sub-folder of the run's)."""
    runs: dict[Path, list[Any]] = {}
    for folder in folders:  # in path order: a parent before its sub-folders
        reader = _load(ea, folder)
        if folder.parent in runs and folder != base and _hparams(reader):
            runs[folder.parent].append(reader)
        else:
            runs[folder] = [reader]
    return {
        (f.relative_to(base).as_posix() if f != base else base.resolve().name): r
        for f, r in runs.items()
    }


def _load(ea: Any, folder: Path) -> Any:
    reader = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    try:
        reader.Reload()
    except Exception as exc:  # a corrupt or foreign file: the reader's own words, one line
        raise ValidationError(f"cannot read the event files in {folder}: {exc}", "path") from None
    return reader


def _import_run(
    store: Store, project_id: int, run: str, readers: list[Any], report: ImportReport
) -> None:
    client_id = "tensorboard-" + hashlib.sha1(f"{project_id}/{run}".encode()).hexdigest()
    hyperparameters = {k: v for reader in readers for k, v in _hparams(reader).items()}
    rows: dict[str, list[tuple[int, float, float]]] = {}
    for reader in readers:
        for tag in reader.Tags()["scalars"]:
            rows.setdefault(tag, []).extend(
                (e.step, e.value, e.wall_time) for e in reader.Scalars(tag)
            )
    times = [row[2] for found in rows.values() for row in found]
    made = store.create_experiment(
        project_id,
        display_name=run[-140:],
        hyperparameters=hyperparameters,
        status=Status.DONE,
        client_id=client_id,
        started_at=min(times) if times else None,
        ended_at=max(times) if times else None,
    )
    tag = f"{RUN_TAG}={run}"[:250]
    if tag in made.tags:
        report.runs_skipped += 1
        return
    series = [chunk_of(name, rows[name]) for name in sorted(rows) if rows[name]]
    report.params += len(hyperparameters)
    report.points += append_series(store, (made.project_id, made.experiment_id), client_id, series)
    store.update_experiment(made.project_id, made.experiment_id, add_tags=[tag])
    report.runs_imported += 1


def _hparams(accumulator: Any) -> dict[str, Any]:
    """``add_hparams``' values (numbers, strings, booleans), from the hparams plugin's data."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    found: dict[str, Any] = {}
    try:
        contents = accumulator.PluginTagToContent("hparams")
    except KeyError:  # no add_hparams in this run
        return found
    for content in contents.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if not data.HasField("session_start_info"):
            continue
        for name, value in data.session_start_info.hparams.items():
            kind = value.WhichOneof("kind")
            if kind is not None:
                found[name] = getattr(value, kind)
    return found
