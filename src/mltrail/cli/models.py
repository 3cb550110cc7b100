"""``mltrail models``: weights hashes of saved models, and which experiments produced them."""

from __future__ import annotations

from typing import Any

import click

from mltrail.cli.common import echo_json, echo_table, output_format_option, with_api

FRAMEWORK_CHOICES = ("pytorch", "keras", "numpy")


@click.group()
def models() -> None:
    """Weights hashes: compute one from a file, find where one came from, download its
    stored checkpoint."""


@models.command("get-weights-hash")
@click.option(
    "--framework", "-f", required=True, type=click.Choice(FRAMEWORK_CHOICES), help="Saved by."
)
@click.option(
    "--model",
    "-m",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="torch.save state_dict / checkpoint, .safetensors, .keras/.h5, .npz or .npy.",
)
def get_weights_hash(framework: str, model_path: str) -> None:
    """Print the weights hash of a saved model file (nothing in it is executed)."""
    from mltrail.checkpoints import weights_hash_from_file

    click.echo(weights_hash_from_file(framework, model_path))


@models.command("find")
@click.option("--weights-hash", "-w", required=True, help="40-digit hexadecimal sha1.")
@output_format_option
@with_api
def find(api: Any, weights_hash: str, output_format: str) -> None:
    """Which experiments, iterations and epochs produced a weights hash."""
    rows = api.models.find(weights_hash)
    if output_format == "json":
        echo_json(rows)
        return
    if not rows:
        click.echo(f"no experiment recorded weights hash {weights_hash}")
        return
    columns = ("project", "experiment", "iteration", "epoch", "checkpoint", "created_at")
    echo_table(
        columns,
        ([r[c] if c != "checkpoint" else r[c] or "-" for c in columns] for r in rows),
        title=weights_hash,
    )


@models.command("download")
@click.option("--weights-hash", "-w", required=True, help="40-digit hexadecimal sha1.")
@click.option("--dest", "-d", default=".", show_default=True, help="File or folder to write.")
@with_api
def download(api: Any, weights_hash: str, dest: str) -> None:
    """Download the stored checkpoint holding these weights (nothing in it is loaded)."""
    found = api.models.download(weights_hash, dest)
    point = ", ".join(
        f"{name} {found[name]}" for name in ("epoch", "iteration") if found[name] is not None
    )
    click.echo(
        f"{found['file']}: {found['path']} of project {found['project']}, experiment "
        f"{found['experiment']}{f' ({point})' if point else ''}, sha256 {found['sha256']}"
    )
