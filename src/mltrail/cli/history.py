"""``mltrail experiments export``: whole metric histories as CSV, Parquet or JSON lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from mltrail.cli.common import progress_bar, with_api

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
    help="parquet needs pyarrow, which also makes csv fast (pip install 'mltrail[parquet]').",
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
    with _destination(output) as out, progress_bar("points", PROGRESS_MIN_POINTS) as progress:
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
