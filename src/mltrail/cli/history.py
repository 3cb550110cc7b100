"""``mltrail experiments export``: whole metric histories as CSV, Parquet or JSON lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from mltrail.cli.common import with_api

PROGRESS_MIN_POINTS = 1_000_000  # a shorter export finishes before a bar would help


@click.command("export")
@click.option("--project", "-p", required=True, help="Project id or display name.")
@click.option("--experiment", "-e", type=int, help="Only this experiment (default: all).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "jsonl"]),
    default="csv",
    show_default=True,
    help="csv and parquet need pyarrow (pip install 'mltrail[parquet]').",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output; required for parquet).",
)
@with_api
def export(api: Any, project: str, experiment: int | None, fmt: str, output: Path | None) -> None:
    """Stream every point (project, experiment, key, phase, iteration, epoch, value, time) of
    the project's experiments, or of one, series by series; a bar shows long exports."""
    if output is None and fmt == "parquet":
        raise click.UsageError("--output is required for parquet")
    project_id = api.projects.resolve(project)
    with _destination(output) as out, _progress_bar() as progress:
        written = api.experiments.export(
            project_id, out, experiment=experiment, format=fmt, progress=progress
        )
    if output is not None:
        click.echo(f"exported {written} points to {output}", err=True)


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with open(partial, "wb") as f:
            yield f
        partial.replace(output)  # nothing half-written under the name asked for
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _progress_bar() -> Iterator[Any]:
    """A progress callback drawing a bar on stderr (a terminal) once an export is long."""
    console = Console(stderr=True)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task: list[Any] = []

    def progress(done: int, total: int) -> None:
        if total < PROGRESS_MIN_POINTS or not console.is_terminal:
            return
        if not task:
            bar.start()
            task.append(bar.add_task("points", total=total))
        bar.update(task[0], completed=done)

    try:
        yield progress
    finally:
        if task:
            bar.stop()
