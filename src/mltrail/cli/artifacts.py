"""``mltrail artifacts``: an experiment's files; ``mltrail gc``: free unreferenced bytes."""

from __future__ import annotations

from typing import Any

import click

from mltrail.cli.common import PROJECT, echo_json, echo_table, output_format_option, with_api

project_option = click.option(
    "--project", "-p", type=PROJECT, required=True, help="Project id or name."
)
experiment_option = click.option(
    "--experiment", "-e", type=int, required=True, help="Experiment id."
)


def human_size(size: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@click.group()
def artifacts() -> None:
    """List, download and upload the files of an experiment."""


@artifacts.command("list")
@project_option
@experiment_option
@click.option("--prefix", default=None, help="Only the artifacts under this folder.")
@output_format_option
@with_api
def list_artifacts(
    api: Any, project: int, experiment: int, prefix: str | None, output_format: str
) -> None:
    """The experiment's artifacts: path, size, epoch, weights hash, sha256."""
    rows = api.artifacts.list(project, experiment, prefix)
    if output_format == "json":
        echo_json(rows)
        return
    if not rows:
        click.echo(f"experiment {experiment} of project {project} has no artifacts")
        return
    columns = ("path", "size", "epoch", "weights_hash", "sha256")
    echo_table(
        columns,
        (
            [r["path"], human_size(r["size"]), r["epoch"], r["weights_hash"], r["sha256"][:12]]
            for r in rows
        ),
    )


@artifacts.command("download")
@project_option
@experiment_option
@click.option("--name", "-n", required=True, help="The artifact's path (or a folder of them).")
@click.option("--dest", "-d", default=".", show_default=True, help="File or folder to write.")
@with_api
def download(api: Any, project: int, experiment: int, name: str, dest: str) -> None:
    """Download an artifact (verified against its sha256) or a folder of them."""
    written = api.artifacts.download(project, experiment, name, dest)
    click.echo(f"downloaded {name} to {written}")


@artifacts.command("upload")
@project_option
@experiment_option
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", "-n", default=None, help="Path in the tree [default: the file's name].")
@click.option("--epoch", type=int, default=None, help="The epoch it belongs to.")
@click.option("--iteration", type=int, default=None, help="The iteration it belongs to.")
@with_api
def upload(
    api: Any,
    project: int,
    experiment: int,
    path: str,
    name: str | None,
    epoch: int | None,
    iteration: int | None,
) -> None:
    """Upload a file or a folder to an experiment (after its run too)."""
    stored = api.artifacts.upload(project, experiment, path, name, epoch=epoch, iteration=iteration)
    for artifact in stored:
        click.echo(
            f"{artifact['path']}  {human_size(artifact['size'])}  sha256 {artifact['sha256']}"
        )


@artifacts.command("delete")
@project_option
@experiment_option
@click.option("--name", "-n", required=True, help="The artifact's path.")
@with_api
def delete(api: Any, project: int, experiment: int, name: str) -> None:
    """Remove an artifact from the tree (`mltrail gc` frees its bytes)."""
    api.artifacts.delete(project, experiment, name)
    click.echo(f"deleted {name}")


@click.command()
@click.option(
    "--older-than",
    "older_than",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds an unrecorded blob or upload leftover must be old to be removed.",
)
@with_api
def gc(api: Any, older_than: float) -> None:
    """Delete artifact bytes no experiment references any more (administrators)."""
    report = api.artifacts.collect_garbage(older_than)
    click.echo(
        f"removed {report.blobs} blobs ({human_size(report.bytes)}) and "
        f"{report.staging} upload leftovers"
    )
