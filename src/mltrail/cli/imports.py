"""``mltrail import``: copy runs from MLflow or TensorBoard into the configured store."""

from __future__ import annotations

import click

from mltrail.cli.common import get_api, progress_bar


@click.group(name="import")
def import_group() -> None:
    """Copy runs recorded with MLflow or TensorBoard into mltrail (again: skips what is there)."""


@import_group.command(name="mlflow")
@click.option(
    "--from", "uri", required=True, metavar="URL",
    help="The MLflow tracking server (http://host:port) or its database (sqlite:///path).",
)  # fmt: skip
@click.option(
    "--experiment", "experiments", multiple=True, metavar="NAME",
    help="Import only this MLflow experiment (repeatable); all active ones by default.",
)  # fmt: skip
def mlflow_command(uri: str, experiments: tuple[str, ...]) -> None:
    """Copy MLflow experiments (as projects) and their runs (as experiments): params, tags,
    every metric point with its step and time, and artifacts. Needs `pip install
    'mltrail[mlflow]'`."""
    from mltrail.api.imports.from_mlflow import import_mlflow

    with progress_bar("runs") as progress:
        report = import_mlflow(get_api().store, uri, experiments, progress=progress)
    _print(report)


@import_group.command(name="tensorboard")
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "-p", "--project", metavar="PROJECT",
    help="Project id or name (created when missing); the folder's name by default.",
)  # fmt: skip
def tensorboard_command(path: str, project: str | None) -> None:
    """Import TensorBoard event files under PATH: each folder of event files is one experiment
    (scalars as series, add_hparams values as hyperparameters). Needs `pip install
    'mltrail[tensorboard]'`."""
    from mltrail.api.imports.from_tensorboard import import_tensorboard

    target: str | int | None = int(project) if project and project.isdigit() else project
    with progress_bar("runs") as progress:
        report = import_tensorboard(get_api().store, path, target, progress=progress)
    _print(report)


def _print(report: object) -> None:
    from mltrail.api.imports import ImportReport

    assert isinstance(report, ImportReport)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(report.summary())
